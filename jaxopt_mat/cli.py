"""The ``jaxopt-mat`` command line: parse, read, call the library, write, exit code.

Every error a user can cause is printed as one line on stderr with a non-zero
exit code; nothing is written unless the whole input is valid.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="jaxopt-mat",
    help="Closed-loop Bayesian optimization for materials: suggest -> measure -> observe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _cache_root() -> Path:
    return Path(os.environ.get("JAXOPT_MAT_CACHE", str(Path.home() / ".cache" / "jaxopt_mat")))


def _setup_jax() -> None:
    """x64 for GP work and a persistent compilation cache, before any array exists."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_compilation_cache_dir", str(_cache_root() / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def _program_cache():
    from jaxopt_mat.program_cache import ProgramCache

    return ProgramCache(_cache_root() / "programs")


def _progress(message: str) -> None:
    # Only on a terminal: piped output stays clean for scripts.
    if sys.stderr.isatty():
        print(f"... {message}", file=sys.stderr, flush=True)


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def _guard(fn):
    """Turn the library's errors into one-line messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from jaxopt_mat.errors import JaxOptMatError

        try:
            return fn(*args, **kwargs)
        except JaxOptMatError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def _version_callback(value: bool):
    if value:
        from jaxopt_mat import __version__

        typer.echo(f"jaxopt-mat {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version_callback, is_eager=True),
):
    """Closed-loop Bayesian optimization for materials."""
    _setup_jax()


@app.command()
@_guard
def init(
    directory: Path = typer.Argument(..., help="Campaign folder to create."),
    config: Path = typer.Option(..., "--config", "-c", help="campaign.toml describing inputs, constraints and objective."),
):
    """Create a campaign folder from a validated config."""
    from jaxopt_mat.campaign import Campaign, load_config

    cfg = load_config(config)
    Campaign.create(directory, cfg)
    typer.echo(f"created campaign '{cfg.name}' in {directory} ({len(cfg.inputs)} inputs, {len(cfg.constraints)} constraints)")


@app.command()
@_guard
def suggest(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    batch: int = typer.Option(..., "--batch", "-n", help="Number of conditions to suggest (1-32)."),
    method: str = typer.Option("gp", "--method", "-m", help="gp (batch log-EI with local penalization), random or lhs."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (default: the campaign's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the CSV here instead of stdout."),
    extend_bounds: bool = typer.Option(False, "--extend-bounds", help="Widen extendable bounds the suggestions keep pressing against."),
):
    """Suggest the next batch of conditions as CSV."""
    from jaxopt_mat import loop
    from jaxopt_mat.campaign import Campaign, atomic_write_text

    camp = Campaign(directory)
    sug = loop.suggest(camp, batch, method=method, seed=seed, extend_bounds=extend_bounds, progress=_progress,
                       program_cache=_program_cache())
    text = loop.suggestion_csv(camp.config, sug)
    saved = camp.save_suggestion(text)
    for n in sug.notes:
        _note(n)
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)
        _note(f"{len(sug.x)} suggestions ({sug.method}) written to {out}; kept as {saved.relative_to(camp.dir)}")


@app.command()
@_guard
def observe(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    file: Path = typer.Argument(..., help="CSV with the input columns and the measured objective."),
):
    """Validate measurements and append them to observations.csv."""
    from jaxopt_mat.campaign import Campaign
    from jaxopt_mat.errors import DataError

    camp = Campaign(directory)
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise DataError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{file}: cannot read it ({e})") from None
    rows = camp.validate_table(text, file.name)
    batch = camp.append_observations(rows)
    total = camp.read_observations()[0].shape[0]
    typer.echo(f"recorded {rows.shape[0]} measurements as batch {batch}; {total} in total")


@app.command()
@_guard
def status(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Measurements, best condition so far and the model's fit quality."""
    from jaxopt_mat import loop
    from jaxopt_mat.campaign import Campaign

    camp = Campaign(directory)
    _progress("fitting GP for the fit-quality report")
    info = loop.status(camp, program_cache=_program_cache())
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    obj = info["objective"]
    typer.echo(f"campaign {info['name']}: {obj['direction']} {obj['name']}")
    typer.echo(f"  measurements: {info['n_observations']} ({info['n_conditions']} conditions, {info['n_batches']} batches)")
    if info["best"] is None:
        typer.echo("  best: none yet")
    else:
        best = dict(info["best"])
        value, reps = best.pop("value"), best.pop("replicates")
        recipe = ", ".join(f"{k} = {v:.4g}" for k, v in best.items())
        typer.echo(f"  best: {obj['name']} = {value:.6g} (median of {reps}) at {recipe}")
    if info["model"] is not None:
        m = info["model"]
        typer.echo(f"  GP fit: leave-one-out R^2 = {m['loo_r2']:.3f}, RMSE = {m['loo_rmse']:.4g}, noise std = {m['noise_std']:.3g}")
        ls = ", ".join(f"{k} {v:.3g}" for k, v in m["lengthscales"].items())
        typer.echo(f"  length-scales (unit cube): {ls}")


@app.command()
@_guard
def demo(
    out: Path = typer.Option(Path("demo_campaign"), "--out", help="Folder for the demo campaign (replaced if it holds a demo)."),
    rounds: int = typer.Option(6, "--rounds", help="Rounds after the initial design."),
    batch: int = typer.Option(5, "--batch", help="Batch size per round."),
    seed: int = typer.Option(0, "--seed"),
):
    """Closed loop on a built-in virtual lab (Hartmann-6 with noise), through the campaign files."""
    import shutil

    from jaxopt_mat import simulate
    from jaxopt_mat.campaign import Campaign, parse_config
    from jaxopt_mat.errors import CampaignError
    from jaxopt_mat.test_functions import HARTMANN6

    if out.exists():
        if not (out / ".demo").exists():
            raise CampaignError(f"{out} exists and is not a demo folder; choose another --out")
        shutil.rmtree(out)
    cfg = parse_config({
        "name": "demo-hartmann6",
        "seed": seed,
        "initial_design": 12,
        "inputs": [{"name": f"x{i + 1}", "low": 0.0, "high": 1.0} for i in range(6)],
        "objective": {"name": "response", "direction": "minimize"},
    })
    camp = Campaign.create(out, cfg)
    (out / ".demo").touch()
    lab = simulate.FunctionLab(HARTMANN6.fn, noise_std=0.01)
    typer.echo(f"demo: Hartmann-6 (minimum {HARTMANN6.minimum}) in {out}")

    def report(r: simulate.Round):
        typer.echo(f"round {r.index:2d} [{r.method:>6}] n = {r.n_measured:3d}  best = {r.best:+.4f}  "
                   f"batch median = {float(sorted(r.batch_values)[len(r.batch_values) // 2]):+.4f}  ({r.seconds:.1f} s)")

    t0 = time.perf_counter()
    simulate.run(camp, lab, rounds=1, batch=12, seed=seed, on_round=report)
    simulate.run(camp, lab, rounds=rounds, batch=batch, seed=seed + 1, on_round=report)
    typer.echo(f"done in {time.perf_counter() - t0:.1f} s; inspect with: jaxopt-mat status {out}")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
