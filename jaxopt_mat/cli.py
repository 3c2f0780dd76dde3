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

import numpy as np
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


def _ensemble_cache():
    from jaxopt_mat.ensemble_cache import EnsembleCache

    return EnsembleCache(_cache_root() / "ensembles")


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
        except BrokenPipeError:  # the reader of our output has gone (``status | head``): not an error to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
            raise typer.Exit(141) from None  # 128 + SIGPIPE, as a shell reports a command its pipe ended
        except OSError as e:  # a file or folder the system refuses (missing folder, no permission, disk full)
            where = f"{e.filename}: " if e.filename else ""
            print(f"error: {where}{e.strerror or e}", file=sys.stderr)
            raise typer.Exit(1) from None

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
    camp = Campaign.create(directory, cfg, source_dir=config.parent)
    if camp.config.is_pool:
        pool = camp.pool
        what = f"{len(pool.ids)} candidates with {len(pool.names)} features"
        if camp.config.embedding:
            what += f" (kernel mean embedding of {camp.config.embedding['source']})"
    else:
        what = f"{len(cfg.inputs)} inputs, {len(cfg.constraints)} constraints"
    typer.echo(f"created campaign '{cfg.name}' in {directory} ({what})")


@app.command()
@_guard
def suggest(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    batch: int = typer.Option(..., "--batch", "-n", help="Number of conditions to suggest (1-32)."),
    method: Optional[str] = typer.Option(
        None, "--method", "-m",
        help="gp (batch log-EI with local penalization), random or lhs; spectrum campaigns also cgp (GPs on the "
             "spectrum's principal components), dnn (the spectrum network), mixed (half dnn, half cgp) and auto "
             "(their default: cgp, then mixed once the network is ready).",
    ),
    kappa: float = typer.Option(0.0, "--kappa", help="Spectrum network: weight of the members' disagreement (exploration)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (default: the campaign's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the CSV here instead of stdout."),
    extend_bounds: bool = typer.Option(False, "--extend-bounds", help="Widen extendable bounds the suggestions keep pressing against."),
):
    """Suggest the next batch of conditions as CSV."""
    from jaxopt_mat import loop
    from jaxopt_mat.campaign import Campaign, atomic_write_text
    from jaxopt_mat.errors import DataError

    camp = Campaign(directory)
    if out is not None and not out.parent.is_dir():  # before the work, not after it
        raise DataError(f"--out {out}: folder {out.parent} does not exist")
    sug = loop.suggest(camp, batch, method=method, seed=seed, extend_bounds=extend_bounds, kappa=kappa,
                       progress=_progress, program_cache=_program_cache(), ensemble_cache=_ensemble_cache())
    text = loop.suggestion_csv(camp.config, sug)
    saved = camp.save_suggestion(text)
    for n in sug.notes:
        _note(n)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()  # a closed pipe is reported here, inside the guard, not at exit
    else:
        atomic_write_text(out, text)
        _note(f"{len(sug.x)} suggestions ({sug.method}) written to {out}; kept as {saved.relative_to(camp.dir)}")


@app.command()
@_guard
def observe(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    file: Path = typer.Argument(..., help="CSV with the input columns and the measured objective."),
    again: bool = typer.Option(False, "--again", help="Record the file even if its rows repeat an earlier batch exactly."),
):
    """Validate measurements and append them to observations.csv.

    A file whose rows repeat an earlier batch exactly is refused (the same file
    observed twice) unless ``--again`` is given.
    """
    from jaxopt_mat.campaign import Campaign
    from jaxopt_mat.errors import RepeatedBatchError, read_data_file

    camp = Campaign(directory)
    measurements = camp.validate_table(read_data_file(file, "measurement file"), file.name)
    try:
        batch = camp.append_observations(measurements, refuse_repeat=not again)
    except RepeatedBatchError as e:
        raise RepeatedBatchError(f"{file.name}: {e}; pass --again to record them anyway") from None
    total = camp.read_table()[0].shape[0]
    typer.echo(f"recorded {measurements.values.shape[0]} measurements as batch {batch}; {total} in total")


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
    info = loop.status(camp, program_cache=_program_cache(), ensemble_cache=_ensemble_cache())
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    _print_status(info)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _print_status(info: dict) -> None:
    obj = info["objective"]
    if "objectives" in obj:
        what = ", ".join(f"{o['direction']} {o['name']}" for o in obj["objectives"])
        typer.echo(f"campaign {info['name']}: Pareto front of {what}")
    else:
        typer.echo(f"campaign {info['name']}: {obj['direction']} {obj['name']}")
    typer.echo(f"  measurements: {info['n_observations']} ({info['n_conditions']} conditions, {info['n_batches']} batches)")
    if info.get("pool"):
        typer.echo(f"  pool: {info['pool']['candidates']} candidates, {info['pool']['unmeasured']} not measured yet")
    if "objectives" in obj:
        par = info.get("pareto")
        if par is None:
            typer.echo("  Pareto set: none yet")
        else:
            ref = ", ".join(f"{o['name']} {v:.4g}" for o, v in zip(obj["objectives"], par["reference"]))
            typer.echo(f"  hypervolume {par['hypervolume']:.6g} (reference {ref}; {par['reference_source']})")
            typer.echo(f"  Pareto set ({len(par['front'])} conditions):")
            for row in par["front"]:
                typer.echo("    " + ", ".join(f"{k} = {_fmt(v)}" for k, v in row.items()))
    elif info["best"] is None:
        typer.echo("  best: none yet")
    else:
        best = dict(info["best"])
        value, reps = best.pop("value"), best.pop("replicates")
        recipe = ", ".join(f"{k} = {_fmt(v)}" for k, v in best.items())
        typer.echo(f"  best: {obj['name']} = {value:.6g} (median of {reps}) at {recipe}")
    if info.get("recommended"):
        rec = dict(info["recommended"])
        expected, measured, reps = rec.pop("expected_loss"), rec.pop("measured"), rec.pop("replicates")
        recipe = ", ".join(f"{k} = {_fmt(v)}" for k, v in rec.items())
        typer.echo(f"  recommended: expected {obj['name']} = {expected:.6g} under the composite spectrum GP "
                   f"(measured {measured:.6g}, median of {reps}) at {recipe}")
    if info["model"] is not None:
        models = info["model"] if "objectives" in obj else {None: info["model"]}
        for name, m in models.items():
            label = "GP fit" if name is None else f"GP fit of {name}"
            typer.echo(f"  {label}: leave-one-out R^2 = {m['loo_r2']:.3f}, RMSE = {m['loo_rmse']:.4g}, "
                       f"noise std = {m['noise_std']:.3g}")
            ls = ", ".join(f"{k} {v:.3g}" for k, v in m["lengthscales"].items())
            typer.echo(f"    length-scales (unit cube): {ls}")
    if info.get("step"):
        typer.echo(f"  step: {info['step']['step']} ({info['step']['reason']})")
    if info.get("stop_rules"):
        typer.echo(f"  stop rules (should stop: {'yes' if info['should_stop'] else 'no'}):")
        for name, r in info["stop_rules"].items():
            value = "n/a" if r["value"] is None else f"{r['value']:.4g}"
            typer.echo(f"    {name:<18} value {value:<10} threshold {r['threshold']}  {'MET' if r['met'] else '-'}")


@app.command()
@_guard
def explain(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for CSV/JSON/PNG (default DIR/explain)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the importance of each input."),
    objective: Optional[str] = typer.Option(None, "--objective", help="Pareto campaigns: which objective to explain "
                                            "(default: the first)."),
):
    """SHAP importance of each input, per-wavelength attributions and loss landscapes."""
    import csv as _csv

    import jax
    import jax.numpy as jnp

    from jaxopt_mat import explain as ex
    from jaxopt_mat import loop, plots
    from jaxopt_mat.campaign import Campaign
    from jaxopt_mat.data import combine_replicates
    from jaxopt_mat.errors import CampaignError, DataError
    from jaxopt_mat.surrogates.gp import fit_gp

    camp = Campaign(directory)
    cfg = camp.config
    x, y, _ = camp.read_observations()
    obj_name, maximize = cfg.objective.name, cfg.objective.maximize
    if cfg.objective.is_pareto:
        names_obj = cfg.objective.measured_names
        obj_name = objective or names_obj[0]
        if obj_name not in names_obj:
            raise DataError(f"--objective {obj_name!r} is not one of {', '.join(names_obj)}")
        j = names_obj.index(obj_name)
        y, maximize = y[:, j], cfg.objective.objectives[j][1] == "maximize"
    elif objective is not None and objective != obj_name:
        raise DataError(f"--objective {objective!r}: this campaign has one objective, {obj_name}")
    cond = combine_replicates(x, y)
    if cond.x.shape[0] < 3:
        raise CampaignError(f"explain needs at least 3 measured conditions, {directory} has {cond.x.shape[0]}")
    space = camp.space
    names = cfg.input_names
    _progress("fitting GP")
    model = fit_gp(cond.x, cond.y, key=jax.random.key(cfg.seed), low=space.low, high=space.high,
                   program_cache=_program_cache())
    predict = jax.jit(lambda z: model.predict(z).mean)
    _progress("computing SHAP values")
    exp = ex.shap_values(predict, cond.x, cond.x, names=names)
    folder = out or (camp.dir / "explain")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "shap_values.csv", "w", newline="") as f:
        w = _csv.writer(f)
        w.writerow(names + [f"shap_{n}" for n in names])
        for xi, vi in zip(cond.x, exp.values):
            w.writerow([repr(float(v)) for v in xi] + [repr(float(v)) for v in vi])
    what = f"predicted {obj_name}"
    importance = {n: float(v) for n, v in zip(names, exp.importance)}
    result = {"target": what, "importance": importance, "ranking": exp.ranking(), "base_value": exp.base_value}
    plots.shap_bar(names, exp.importance, folder / "shap_bar.png", title=f"Importance for the {what}")
    plots.shap_beeswarm(names, exp.values, cond.x, folder / "shap_beeswarm.png", title=f"SHAP values of the {what}")
    # Landscape over the two most important inputs, others at the best measured condition.
    i, j = [names.index(n) for n in exp.ranking()[:2]]
    best = cond.x[np.argmax(cond.y) if maximize else np.argmin(cond.y)]
    gi, gj, vals = ex.landscape(predict, best, i, j, space.low, space.high)
    k = np.unravel_index(np.argmax(vals) if maximize else np.argmin(vals), vals.shape)
    plots.landscape_map(gi, gj, vals, folder / "landscape.png", xlabel=names[i], ylabel=names[j], zlabel=what,
                        points=cond.x[:, [i, j]], optimum=(gi[k[0]], gj[k[1]]))
    if cfg.objective.is_spectrum:
        from jaxopt_mat.two_step import train_on
        from jaxopt_mat.virtual_lab import peak_wavelength

        _progress("training the spectrum network for per-wavelength attributions")
        ens = train_on(camp, None, seed=loop.network_seed(camp), cache=_ensemble_cache())
        wl = camp.wavelengths()
        fn = lambda r: ens.predict(r[None])[0][0]  # noqa: E731
        attr = ex.spectrum_attributions(fn, cond.x, jnp.asarray(0.5 * (space.low + space.high)))
        plots.attribution_heatmap(names, wl, attr, folder / "wavelength_attributions.png")
        peak_fn = lambda z: jnp.asarray(peak_wavelength(ens.predict(z)[0], wl))  # noqa: E731
        _, _, peaks = ex.landscape(peak_fn, best, i, j, space.low, space.high)
        plots.landscape_map(gi, gj, peaks, folder / "colour_palette.png", xlabel=names[i], ylabel=names[j],
                            zlabel="predicted peak wavelength (nm)", points=cond.x[:, [i, j]], cmap="turbo")
        result["wavelength_attributions"] = {n: float(np.max(a)) for n, a in zip(names, attr)}
    (folder / "importance.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(f"importance for the {what} (mean |SHAP|):")
        for n in exp.ranking():
            typer.echo(f"  {n:<12} {importance[n]:.4g}")
        typer.echo(f"values and plots in {folder}")


@app.command()
@_guard
def plot(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the PNG files (default DIR/plots)."),
):
    """Convergence, parity on the newest batch, the best spectrum against the target (spectrum campaigns) and
    the Pareto front with hypervolume against evaluations (Pareto campaigns)."""
    from jaxopt_mat import plots
    from jaxopt_mat.campaign import Campaign
    from jaxopt_mat.errors import CampaignError

    camp = Campaign(directory)
    cfg = camp.config
    x, y, batches = camp.read_observations()
    if x.shape[0] == 0:
        raise CampaignError(f"{directory} has no measurements yet; nothing to plot")
    folder = out or (camp.dir / "plots")
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.objective.is_pareto:
        made = _plot_pareto(camp, x, y, batches, folder)
    else:
        made = [plots.convergence(y, batches, folder / "convergence.png", ylabel=cfg.objective.name,
                                  minimize=not cfg.objective.maximize)]
        made += _plot_parity(camp, x, y.reshape(len(y), 1), batches, folder, [cfg.objective.name])
    if cfg.objective.is_spectrum:
        made.append(_plot_best_spectrum(camp, x, y, folder))
    for p in made:
        typer.echo(str(p))


def _plot_parity(camp, x, Y, batches, folder, names) -> list:
    """Parity of the newest batch against GPs fitted before it, one plot per column of ``Y``."""
    import jax

    from jaxopt_mat import plots
    from jaxopt_mat.data import combine_replicates
    from jaxopt_mat.loop import fit_objectives

    order = sorted(set(batches.tolist()))
    if len(order) < 2:
        return []
    keep = batches < order[-1]
    past = combine_replicates(x[keep], Y[keep])
    if past.x.shape[0] < 3:
        return []
    space = camp.space
    models = fit_objectives(past.x, past.y, key=jax.random.key(camp.config.seed), low=space.low, high=space.high,
                            program_cache=_program_cache())
    newest = combine_replicates(x[~keep], Y[~keep])
    made = []
    for j, (name, model) in enumerate(zip(names, models)):
        path = folder / ("parity.png" if len(names) == 1 else f"parity_{name}.png")
        made.append(plots.parity(newest.y[:, j], model.predict(newest.x).mean, path, label=name))
    return made


def _plot_pareto(camp, x, y, batches, folder) -> list:
    from jaxopt_mat import plots
    from jaxopt_mat.data import combine_replicates
    from jaxopt_mat.loop import hypervolume_history
    from jaxopt_mat.pareto import non_dominated_mask

    obj = camp.config.objective
    names = obj.measured_names
    signs = obj.signs
    cond = combine_replicates(x, y)
    medians = cond.y[cond.index]
    ref = camp.reference_point(cond.y * signs)
    mask = np.asarray(non_dominated_mask(medians * signs))
    if len(names) > 2:
        _note(f"the front is drawn over the first two objectives ({names[0]}, {names[1]}) of {len(names)}")
    made = [plots.pareto_front(medians[:, :2], mask, folder / "pareto_front.png", names=names[:2], signs=signs[:2],
                               batches=batches, reference=(ref * signs)[:2])]
    hv = hypervolume_history(medians * signs, batches, ref)
    counts = [int(np.sum(batches <= b)) for b in sorted(set(batches.tolist()))]
    made.append(plots.hypervolume_curve(counts, hv, folder / "hypervolume.png"))
    made += _plot_parity(camp, x, y, batches, folder, names)
    return made


def _plot_best_spectrum(camp, x, y, folder):
    """Best measured spectrum against the target, with the spectrum network's band (mean +- 2 sd of
    its members) at that recipe once there are enough conditions to train it."""
    from jaxopt_mat import loop, plots
    from jaxopt_mat.data import combine_replicates
    from jaxopt_mat.two_step import MIN_CONDITIONS, train_on

    _, spectra, _ = camp.read_table()
    i = int(np.argmin(y))
    wl = camp.wavelengths()
    band = None
    if combine_replicates(x, y).x.shape[0] >= MIN_CONDITIONS:
        _progress("training the spectrum network for the prediction band")
        ens = train_on(camp, None, seed=loop.network_seed(camp), cache=_ensemble_cache())
        mean, sd = (np.asarray(a)[0] for a in ens.predict(x[i : i + 1]))
        band = (mean - 2 * sd, mean + 2 * sd)
    else:
        _note(f"no prediction band: the spectrum network needs {MIN_CONDITIONS} measured conditions")
    return plots.best_spectrum(wl, spectra[i], camp.target(wl), folder / "best_spectrum.png", loss=float(y[i]),
                               band=band)


def _lab(spec: str):
    from jaxopt_mat.errors import DataError
    from jaxopt_mat.virtual_lab import NetworkLab, SilverLab

    if spec == "builtin":
        return SilverLab()
    if spec.startswith("npz:"):
        return NetworkLab.from_npz(Path(spec[4:]))
    raise DataError(f"unknown lab {spec!r}: use 'builtin' or 'npz:PATH'")


def _round_line(r) -> str:
    vals = np.asarray(r.batch_values)
    return (f"round {r.index:2d}  {r.method:<10} n = {r.n_measured:3d}  best = {r.best:.4f}  "
            f"batch median = {np.median(vals):.4f}  ({r.seconds:.1f} s)")


@app.command()
@_guard
def simulate(
    directory: Path = typer.Argument(..., help="Campaign folder (spectrum campaign on the silver-nanoparticle flows)."),
    lab: str = typer.Option("builtin", "--lab", help="builtin (the package's virtual lab) or npz:PATH (a trained network)."),
    rounds: int = typer.Option(..., "--rounds", help="Rounds of suggest -> measure -> observe."),
    batch: int = typer.Option(..., "--batch", help="Conditions per round."),
    replicates: int = typer.Option(1, "--replicates", help="Measurements per condition."),
    method: Optional[str] = typer.Option(None, "--method", "-m", help="As for suggest."),
    seed: int = typer.Option(0, "--seed", help="Seed of the lab's measurement noise."),
):
    """Run a campaign's loop against a simulated lab, through the same files a real lab uses."""
    from jaxopt_mat import simulate as sim
    from jaxopt_mat.campaign import Campaign
    from jaxopt_mat.errors import DataError
    from jaxopt_mat.virtual_lab import INPUT_NAMES

    camp = Campaign(directory)
    the_lab = _lab(lab)
    if tuple(camp.config.input_names) != INPUT_NAMES or not camp.config.objective.is_spectrum:
        raise DataError(f"simulated labs measure spectra of the flows {', '.join(INPUT_NAMES)}; "
                        "the campaign must be a spectrum campaign with exactly these inputs")
    _check_loop_sizes(rounds, batch, replicates)
    sim.run(camp, the_lab, rounds=rounds, batch=batch, replicates=replicates, method=method, seed=seed,
            on_round=lambda r: typer.echo(_round_line(r)), program_cache=_program_cache(),
            ensemble_cache=_ensemble_cache())


def _check_loop_sizes(rounds: int, batch: int, replicates: int = 1) -> None:
    """Refuse a simulated loop's sizes before anything is run or replaced."""
    from jaxopt_mat.errors import DataError
    from jaxopt_mat.loop import check_batch_size

    if rounds < 1 or replicates < 1:
        raise DataError("--rounds and --replicates must be at least 1")
    check_batch_size(batch)


DEMO_TARGET_RECIPE = (18.0, 22.0, 12.0, 3.0, 450.0)


@app.command()
@_guard
def demo(
    out: Path = typer.Option(Path("demo_campaign"), "--out", help="Folder for the demo campaign (replaced if it holds a demo)."),
    rounds: int = typer.Option(10, "--rounds", help="Rounds including the initial Latin hypercube."),
    batch: int = typer.Option(15, "--batch", help="Conditions per round."),
    seed: int = typer.Option(0, "--seed"),
):
    """Closed loop on the built-in silver-nanoparticle lab: Latin hypercube, GP rounds, then the network."""
    import shutil

    from jaxopt_mat import plots
    from jaxopt_mat import simulate as sim
    from jaxopt_mat.campaign import Campaign, parse_config
    from jaxopt_mat.errors import CampaignError
    from jaxopt_mat.virtual_lab import CONSTRAINT_B, HIGH, INPUT_NAMES, LOW, SilverLab

    _check_loop_sizes(rounds, batch)
    if out.exists():
        if not (out / ".demo").exists():
            raise CampaignError(f"{out} exists and is not a demo folder; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / ".demo").touch()
    lab = SilverLab()
    target = np.asarray(lab.spectra(np.array([DEMO_TARGET_RECIPE])))[0]
    source = out / "source"
    source.mkdir()
    (source / "target.csv").write_text("wavelength,absorbance\n" + "".join(
        f"{w:g},{a!r}\n" for w, a in zip(lab.wavelengths, target.tolist())))
    cfg = parse_config({
        "name": "agnp-demo", "seed": seed, "initial_design": batch,
        "inputs": [{"name": n, "low": float(lo), "high": float(hi)} for n, lo, hi in zip(INPUT_NAMES, LOW, HIGH)],
        "constraints": [{"expr": f"q_agno3 + q_pva + q_tsc + q_seed <= {CONSTRAINT_B[0]:g}"}],
        "objective": {"kind": "spectrum", "target": "target.csv", "window": [0.7, 1.2]},
    })
    camp = Campaign.create(out / "campaign", cfg, source_dir=source)
    typer.echo(f"demo: match the spectrum of a hidden recipe on the built-in lab; campaign in {out / 'campaign'}")
    t0 = time.perf_counter()

    def report(r):
        typer.echo(_round_line(r))
        for n in r.notes:
            if n.startswith("auto:"):
                typer.echo(f"          {n}")

    sim.run(camp, lab, rounds=rounds, batch=batch, seed=seed, on_round=report, program_cache=_program_cache(),
            ensemble_cache=_ensemble_cache())
    x, values, batches = camp.read_observations()
    _, spectra, _ = camp.read_table()
    i = int(np.argmin(values))
    plots.convergence(values, batches, out / "convergence.png", ylabel="loss (1 - cos x window)")
    plots.best_spectrum(camp.wavelengths(), spectra[i], camp.target(camp.wavelengths()), out / "best_spectrum.png",
                        loss=float(values[i]))
    recipe = ", ".join(f"{n} = {v:.3g}" for n, v in zip(INPUT_NAMES, x[i]))
    typer.echo(f"best loss {values[i]:.4f} at {recipe}")
    typer.echo(f"done in {time.perf_counter() - t0:.0f} s; plots in {out}; inspect with: jaxopt-mat status {out / 'campaign'}")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
