"""``init``, ``suggest``, ``observe``, ``cancel`` and ``status``: the loop's commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from jaxopt_mat.acquisition.batch import MAX_BATCH
from jaxopt_mat.api import Campaign
from jaxopt_mat.campaign import atomic_write_text
from jaxopt_mat.campaign.input_cells import parse_fix_options
from jaxopt_mat.cli.common import app, context, guard, note, open_campaign, progress
from jaxopt_mat.errors import DataError


@app.command()
@guard
def init(
    directory: Path = typer.Argument(..., help="Campaign folder to create."),
    config: Path = typer.Option(..., "--config", "-c", help="campaign.toml describing inputs, constraints and objective."),
):
    """Create a campaign folder from a validated config."""
    camp = Campaign.create(directory, config, context=context())
    cfg = camp.config
    if cfg.is_pool:
        pool = camp.folder.pool()
        what = f"{len(pool.ids)} candidates with {len(pool.names)} features"
        if cfg.embedding:
            what += f" (kernel mean embedding of {cfg.embedding['source']})"
    else:
        what = f"{len(cfg.inputs)} inputs, {len(cfg.constraints)} constraints"
    typer.echo(f"created campaign '{cfg.name}' in {directory} ({what})")


@app.command()
@guard
def suggest(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    batch: int = typer.Option(..., "--batch", "-n", help=f"Number of conditions to suggest (1-{MAX_BATCH})."),
    method: Optional[str] = typer.Option(
        None, "--method", "-m",
        help="gp (batch log-EI with local penalization), random or lhs; spectrum campaigns also cgp (GPs on the "
             "spectrum's principal components), dnn (the spectrum network), mixed (half dnn, half cgp) and auto "
             "(their default: cgp, then mixed once the network is ready); pools gp, random or spread.",
    ),
    kappa: float = typer.Option(0.0, "--kappa", help="Spectrum network: weight of the members' disagreement (exploration)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (default: the campaign's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the CSV here instead of stdout."),
    extend_bounds: bool = typer.Option(False, "--extend-bounds", help="Widen extendable bounds the suggestions keep pressing against."),
    ignore_pending: bool = typer.Option(False, "--ignore-pending",
                                        help="Disregard rows suggested earlier and not yet observed."),
    fix: list[str] = typer.Option([], "--fix", help="NAME=VALUE: every row of this batch takes this value "
                                  "(a label, a level, a number); repeatable."),
):
    """Suggest the next batch of conditions as CSV.

    Each row gets a suggestion id (first column, e.g. b0004-07). Rows suggested
    earlier and not yet observed are pending: the batch keeps away from them
    (pool rows are never suggested twice) unless --ignore-pending.
    """
    camp = open_campaign(directory)
    if out is not None and not out.parent.is_dir():  # before the work, not after it
        raise DataError(f"--out {out}: folder {out.parent} does not exist")
    kept = camp.ask(batch, method=method, seed=seed, kappa=kappa, extend_bounds=extend_bounds,
                    ignore_pending=ignore_pending, fix=parse_fix_options(fix))
    for n in kept.notes:
        note(n)
    if out is None:
        sys.stdout.write(kept.csv)
        sys.stdout.flush()  # a closed pipe is reported here, inside the guard, not at exit
    else:
        atomic_write_text(out, kept.csv)
        note(f"{len(kept.suggestion.x)} suggestions ({kept.method}) written to {out}; "
             f"kept as {kept.path.relative_to(camp.directory)}")


@app.command()
@guard
def observe(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    file: Path = typer.Argument(..., help="CSV with the input columns and the measured objective."),
    again: bool = typer.Option(False, "--again", help="Record the file even if its rows repeat an earlier batch exactly."),
):
    """Validate measurements and append them to observations.csv.

    A file whose rows repeat an earlier batch exactly is refused (the same file
    observed twice) unless ``--again`` is given.
    """
    done = Campaign.open(directory).observe(file, again=again)
    pending = (f"; answered {done.resolved} pending suggestion{'s' if done.resolved != 1 else ''}, "
               f"{done.still_pending} still pending") if done.resolved or done.still_pending else ""
    typer.echo(f"recorded {done.n_rows} measurements as batch {done.batch}; {done.total} in total{pending}")


@app.command()
@guard
def cancel(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    suggestion_ids: Optional[list[str]] = typer.Argument(None, help="Suggestion ids (b0004-07), or batches (b0004)."),
    everything: bool = typer.Option(False, "--all", help="Cancel every pending suggestion."),
):
    """Drop pending suggestions that will never be measured (later batches stop keeping away from them)."""
    camp = open_campaign(directory)
    dropped = camp.cancel(suggestion_ids or (), everything=everything)
    left = camp.snapshot().n_pending
    typer.echo(f"cancelled {len(dropped)} pending suggestion{'s' if len(dropped) != 1 else ''}; {left} still pending")


@app.command()
@guard
def status(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Measurements, best condition so far and the model's fit quality."""
    camp = open_campaign(directory)
    progress("fitting GP for the fit-quality report")
    info = camp.status().to_dict()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    print_status(info)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _age(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _recipe(row: dict) -> str:
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in row.items())


def print_status(info: dict) -> None:
    obj = info["objective"]
    if "objectives" in obj:
        what = ", ".join(f"{o['direction']} {o['name']}" for o in obj["objectives"])
        typer.echo(f"campaign {info['name']}: Pareto front of {what}")
    else:
        typer.echo(f"campaign {info['name']}: {obj['direction']} {obj['name']}")
    typer.echo(f"  measurements: {info['n_observations']} ({info['n_conditions']} conditions, {info['n_batches']} batches)")
    if info.get("pool"):
        typer.echo(f"  pool: {info['pool']['candidates']} candidates, {info['pool']['unmeasured']} not measured yet")
    if info.get("pending") and info["pending"]["count"]:
        rows = info["pending"]["rows"]
        typer.echo(f"  pending: {len(rows)} suggested rows not yet observed")
        for row in rows[:10]:
            row = dict(row)
            sid, age = row.pop("suggestion"), row.pop("age_hours")
            typer.echo(f"    {sid}  {_age(age):>8}  {_recipe(row)}")
        if len(rows) > 10:
            typer.echo(f"    ... and {len(rows) - 10} more (status --json lists them all)")
    if info.get("outcome_constraints"):
        oc = info["outcome_constraints"]
        typer.echo(f"  outcome constraints ({'; '.join(oc['constraints'])}): {oc['satisfied']} of "
                   f"{oc['conditions']} conditions keep them (only these count as best or on the Pareto set)")
    if info.get("failures"):
        fail = info["failures"]
        by_batch = ", ".join(f"batch {b}: {c}" for b, c in fail["by_batch"].items())
        typer.echo(f"  failed runs: {fail['count']} ({fail['rate']:.0%} of runs; {by_batch})")
        if fail.get("success_model"):
            model = dict(fail["success_model"])
            ls = model.pop("lengthscale")
            (what, p), = model.items()
            typer.echo(f"    success model: length-scale {ls:.3g} (unit cube), {what.replace('_', ' ')} {p:.2f}")
    if "objectives" in obj:
        par = info.get("pareto")
        if par is None:
            typer.echo("  Pareto set: none yet")
        else:
            ref = ", ".join(f"{o['name']} {v:.4g}" for o, v in zip(obj["objectives"], par["reference"]))
            typer.echo(f"  hypervolume {par['hypervolume']:.6g} (reference {ref}; {par['reference_source']})")
            typer.echo(f"  Pareto set ({len(par['front'])} conditions):")
            for row in par["front"]:
                typer.echo("    " + _recipe(row))
    elif info["best"] is None:
        typer.echo("  best: none yet")
    else:
        best = dict(info["best"])
        value, reps = best.pop("value"), best.pop("replicates")
        typer.echo(f"  best: {obj['name']} = {value:.6g} (median of {reps}) at {_recipe(best)}")
    if info.get("recommended"):
        rec = dict(info["recommended"])
        expected, measured, reps = rec.pop("expected_loss"), rec.pop("measured"), rec.pop("replicates")
        typer.echo(f"  recommended: expected {obj['name']} = {expected:.6g} under the composite spectrum GP "
                   f"(measured {measured:.6g}, median of {reps}) at {_recipe(rec)}")
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
