"""``simulate`` and ``demo``: whole closed loops against a simulated lab, through the campaign's files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from jaxopt_mat import plots
from jaxopt_mat import simulate as sim
from jaxopt_mat.cli.common import app, context, guard, open_campaign
from jaxopt_mat.errors import CampaignError, DataError
from jaxopt_mat.strategies.base import check_batch_size
from jaxopt_mat.virtual_lab import INPUT_NAMES, NetworkLab, SilverLab


def _lab(spec: str):
    if spec == "builtin":
        return SilverLab()
    if spec.startswith("npz:"):
        return NetworkLab.from_npz(Path(spec[4:]))
    raise DataError(f"unknown lab {spec!r}: use 'builtin' or 'npz:PATH'")


def _round_line(r) -> str:
    vals = np.asarray(r.batch_values)
    return (f"round {r.index:2d}  {r.method:<10} n = {r.n_measured:3d}  best = {r.best:.4f}  "
            f"batch median = {np.median(vals):.4f}  ({r.seconds:.1f} s)")


def _check_loop_sizes(rounds: int, batch: int, replicates: int = 1) -> None:
    """Refuse a simulated loop's sizes before anything is run or replaced."""
    if rounds < 1 or replicates < 1:
        raise DataError("--rounds and --replicates must be at least 1")
    check_batch_size(batch)


@app.command()
@guard
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
    camp = open_campaign(directory)
    the_lab = _lab(lab)
    if tuple(camp.config.input_names) != INPUT_NAMES or not camp.config.objective.is_spectrum:
        raise DataError(f"simulated labs measure spectra of the flows {', '.join(INPUT_NAMES)}; "
                        "the campaign must be a spectrum campaign with exactly these inputs")
    _check_loop_sizes(rounds, batch, replicates)
    sim.run(camp, the_lab, rounds=rounds, batch=batch, replicates=replicates, method=method, seed=seed,
            on_round=lambda r: typer.echo(_round_line(r)))


@app.command()
@guard
def demo(
    out: Path = typer.Option(Path("demo_campaign"), "--out", help="Folder for the demo campaign (replaced if it holds a demo)."),
    rounds: int = typer.Option(10, "--rounds", help="Rounds including the initial Latin hypercube."),
    batch: int = typer.Option(15, "--batch", help="Conditions per round."),
    seed: int = typer.Option(0, "--seed"),
):
    """Closed loop on the built-in silver-nanoparticle lab: Latin hypercube, GP rounds, then the network."""
    _check_loop_sizes(rounds, batch)
    if out.exists():
        if not (out / ".demo").exists():
            raise CampaignError(f"{out} exists and is not a demo folder; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / ".demo").touch()
    lab = SilverLab()
    camp = sim.builtin_lab_campaign(out, name="agnp-demo", seed=seed, initial_design=batch, context=context())
    typer.echo(f"demo: match the spectrum of a hidden recipe on the built-in lab; campaign in {out / 'campaign'}")
    t0 = time.perf_counter()

    def report(r):
        typer.echo(_round_line(r))
        for n in r.notes:
            if n.startswith("auto:"):
                typer.echo(f"          {n}")

    sim.run(camp, lab, rounds=rounds, batch=batch, seed=seed, on_round=report)
    snap = camp.snapshot()
    i = int(np.argmin(snap.y))
    plots.convergence(snap.y, snap.batches, out / "convergence.png", ylabel="loss (1 - cos x window)")
    plots.best_spectrum(snap.wavelengths, snap.measured[i], snap.target, out / "best_spectrum.png",
                        loss=float(snap.y[i]))
    recipe = ", ".join(f"{n} = {v:.3g}" for n, v in zip(INPUT_NAMES, snap.x[i]))
    typer.echo(f"best loss {snap.y[i]:.4f} at {recipe}")
    typer.echo(f"done in {time.perf_counter() - t0:.0f} s; plots in {out}; inspect with: "
               f"jaxopt-mat status {out / 'campaign'}")

