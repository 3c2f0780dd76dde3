"""``explain`` and ``plot``: a campaign's explanations and figures, written into a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from jaxopt_mat import campaign_figures
from jaxopt_mat.cli.common import app, guard, note, open_campaign


@app.command()
@guard
def explain(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for CSV/JSON/PNG (default DIR/explain)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the importance of each input."),
    objective: Optional[str] = typer.Option(None, "--objective", help="Pareto campaigns: which objective to explain "
                                            "(default: the first)."),
):
    """SHAP importance of each input, per-wavelength attributions and loss landscapes."""
    camp = open_campaign(directory)
    folder = out or (camp.directory / "explain")
    result = campaign_figures.explain(camp.snapshot(), folder, objective=objective, context=camp.context)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"importance for the {result['target']} (mean |SHAP|):")
    for n in result["ranking"]:
        typer.echo(f"  {n:<12} {result['importance'][n]:.4g}")
    typer.echo(f"values and plots in {folder}")


@app.command()
@guard
def plot(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the PNG files (default DIR/plots)."),
):
    """Convergence, parity on the newest batch, the best spectrum against the target (spectrum campaigns) and
    the Pareto front with hypervolume against evaluations (Pareto campaigns)."""
    camp = open_campaign(directory)
    made, notes = campaign_figures.plot(camp.snapshot(), out or (camp.directory / "plots"), context=camp.context)
    for n in notes:
        note(n)
    for p in made:
        typer.echo(str(p))
