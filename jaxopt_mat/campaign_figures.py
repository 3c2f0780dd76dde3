"""A campaign's figures and explanations: what ``plot`` and ``explain`` draw and write, from one snapshot.

These are shells like the CLI: they fit the models a figure needs on the
snapshot's data, then write PNG, CSV and JSON files into a folder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat import explain as ex
from jaxopt_mat import plots
from jaxopt_mat.campaign import Snapshot
from jaxopt_mat.campaign.input_cells import input_text
from jaxopt_mat.data import combine_replicates, replicate_noise_variance
from jaxopt_mat.errors import CampaignError, DataError
from jaxopt_mat.pareto import hypervolume_history, non_dominated_mask
from jaxopt_mat.strategies.base import Context
from jaxopt_mat.strategies.two_step import MIN_CONDITIONS, network_seed, train_on
from jaxopt_mat.surrogates.gp import fit_gp
from jaxopt_mat.surrogates.independent import fit_objectives
from jaxopt_mat.virtual_lab import peak_wavelength


def explain(snap: Snapshot, folder: Path, *, objective: str | None = None, context: Context | None = None) -> dict:
    """SHAP importance of each input for a GP of the objective, landscapes, and (spectra) per-wavelength attributions.

    Writes ``shap_values.csv``, ``importance.json`` and the figures into
    ``folder``; returns what ``importance.json`` holds.
    """
    ctx = context or Context()
    cfg = snap.config
    y, obj_name, maximize = snap.y, cfg.objective.name, cfg.objective.maximize
    if cfg.objective.is_pareto:
        names_obj = cfg.objective.measured_names
        obj_name = objective or names_obj[0]
        if obj_name not in names_obj:
            raise DataError(f"--objective {obj_name!r} is not one of {', '.join(names_obj)}")
        j = names_obj.index(obj_name)
        y, maximize = y[:, j], cfg.objective.objectives[j][1] == "maximize"
    elif objective is not None and objective != obj_name:
        raise DataError(f"--objective {objective!r}: this campaign has one objective, {obj_name}")
    cond = combine_replicates(snap.x, y)
    if cond.x.shape[0] < 3:
        raise CampaignError(f"explain needs at least 3 measured conditions, {snap.directory} has {cond.x.shape[0]}")
    space, names = snap.space, cfg.input_names
    ctx.progress("fitting GP")
    model = fit_gp(cond.x, cond.y, key=jax.random.key(cfg.seed), low=space.low, high=space.high, features=space.features,
                   noise_variance=replicate_noise_variance(cond, y), program_cache=ctx.program_cache)
    predict = jax.jit(lambda z: model.predict(z).mean)
    ctx.progress("computing SHAP values")
    exp = ex.shap_values(predict, cond.x, cond.x, names=names)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "shap_values.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names + [f"shap_{n}" for n in names])
        for xi, vi in zip(cond.x, exp.values):
            cells = ([input_text(inp, v) for inp, v in zip(cfg.inputs, xi)] if not cfg.is_pool
                     else [repr(float(v)) for v in xi])
            w.writerow(cells + [repr(float(v)) for v in vi])
    what = f"predicted {obj_name}"
    importance = {n: float(v) for n, v in zip(names, exp.importance)}
    result = {"target": what, "importance": importance, "ranking": exp.ranking(), "base_value": exp.base_value}
    plots.shap_bar(names, exp.importance, folder / "shap_bar.png", title=f"Importance for the {what}")
    plots.shap_beeswarm(names, exp.values, cond.x, folder / "shap_beeswarm.png", title=f"SHAP values of the {what}")
    # Landscape over the two most important inputs, others at the best measured condition.
    i, j = [names.index(n) for n in exp.ranking()[:2]]
    best = cond.x[np.argmax(cond.y) if maximize else np.argmin(cond.y)]
    allowed = [k.choices(lo, hi) for k, lo, hi in zip(space.kinds, space.low, space.high)]
    labels = ([inp.values if inp.kind == "categorical" else None for inp in cfg.inputs] if not cfg.is_pool
              else [None] * len(names))
    gi, gj, vals = ex.landscape(predict, best, i, j, space.low, space.high, values=allowed)
    k = np.unravel_index(np.argmax(vals) if maximize else np.argmin(vals), vals.shape)
    plots.landscape_map(gi, gj, vals, folder / "landscape.png", xlabel=names[i], ylabel=names[j], zlabel=what,
                        points=cond.x[:, [i, j]], optimum=(gi[k[0]], gj[k[1]]), labels_i=labels[i],
                        labels_j=labels[j])
    if cfg.objective.is_spectrum:
        ctx.progress("training the spectrum network for per-wavelength attributions")
        ens = train_on(snap, None, seed=network_seed(snap, cfg.seed), cache=ctx.ensemble_cache)
        wl = snap.wavelengths
        fn = lambda r: ens.predict(r[None])[0][0]  # noqa: E731
        attr = ex.spectrum_attributions(fn, cond.x, jnp.asarray(0.5 * (space.low + space.high)))
        plots.attribution_heatmap(names, wl, attr, folder / "wavelength_attributions.png")
        peak_fn = lambda z: jnp.asarray(peak_wavelength(ens.predict(z)[0], wl))  # noqa: E731
        _, _, peaks = ex.landscape(peak_fn, best, i, j, space.low, space.high, values=allowed)
        plots.landscape_map(gi, gj, peaks, folder / "colour_palette.png", xlabel=names[i], ylabel=names[j],
                            zlabel="predicted peak wavelength (nm)", points=cond.x[:, [i, j]], cmap="turbo",
                            labels_i=labels[i], labels_j=labels[j])
        result["wavelength_attributions"] = {n: float(np.max(a)) for n, a in zip(names, attr)}
    (folder / "importance.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def plot(snap: Snapshot, folder: Path, *, context: Context | None = None) -> tuple[list[Path], list[str]]:
    """Convergence, parity on the newest batch, the best spectrum (spectrum campaigns), the Pareto front and
    hypervolume (Pareto campaigns). Returns the files written and notes for the user."""
    ctx = context or Context()
    cfg = snap.config
    if snap.n_rows == 0:
        raise CampaignError(f"{snap.directory} has no measurements yet; nothing to plot")
    folder.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if cfg.objective.is_pareto:
        made = _plot_pareto(snap, folder, ctx, notes)
    else:
        made = [plots.convergence(snap.y, snap.batches, folder / "convergence.png", ylabel=cfg.objective.name,
                                  minimize=not cfg.objective.maximize)]
        made += _plot_parity(snap, snap.y.reshape(-1, 1), folder, [cfg.objective.name], ctx)
    if cfg.objective.is_spectrum:
        made.append(_plot_best_spectrum(snap, folder, ctx, notes))
    return made, notes


def _plot_parity(snap: Snapshot, Y, folder: Path, names, ctx: Context) -> list:
    """Parity of the newest batch against GPs fitted before it, one plot per column of ``Y``."""
    x, batches = snap.x, snap.batches
    order = sorted(set(batches.tolist()))
    if len(order) < 2:
        return []
    keep = batches < order[-1]
    past = combine_replicates(x[keep], Y[keep])
    if past.x.shape[0] < 3:
        return []
    space = snap.space
    models = fit_objectives(past.x, past.y, key=jax.random.key(snap.config.seed), low=space.low, high=space.high, features=space.features,
                            program_cache=ctx.program_cache)
    newest = combine_replicates(x[~keep], Y[~keep])
    made = []
    for j, (name, model) in enumerate(zip(names, models)):
        path = folder / ("parity.png" if len(names) == 1 else f"parity_{name}.png")
        made.append(plots.parity(newest.y[:, j], model.predict(newest.x).mean, path, label=name))
    return made


def _plot_pareto(snap: Snapshot, folder: Path, ctx: Context, notes: list) -> list:
    obj = snap.config.objective
    names, signs = obj.measured_names, obj.signs
    cond, batches = snap.conditions, snap.batches
    medians = cond.y[cond.index]
    ref = snap.reference_point(cond.y * signs)
    mask = np.asarray(non_dominated_mask(medians * signs))
    if len(names) > 2:
        notes.append(f"the front is drawn over the first two objectives ({names[0]}, {names[1]}) of {len(names)}")
    made = [plots.pareto_front(medians[:, :2], mask, folder / "pareto_front.png", names=names[:2], signs=signs[:2],
                               batches=batches, reference=(ref * signs)[:2])]
    hv = hypervolume_history(medians * signs, batches, ref)
    counts = [int(np.sum(batches <= b)) for b in sorted(set(batches.tolist()))]
    made.append(plots.hypervolume_curve(counts, hv, folder / "hypervolume.png"))
    made += _plot_parity(snap, snap.y, folder, names, ctx)
    return made


def _plot_best_spectrum(snap: Snapshot, folder: Path, ctx: Context, notes: list) -> Path:
    """Best measured spectrum against the target, with the spectrum network's band (mean +- 2 sd of
    its members) at that recipe once there are enough conditions to train it."""
    x, y = snap.x, snap.y
    i = int(np.argmin(y))
    band = None
    if snap.n_conditions >= MIN_CONDITIONS:
        ctx.progress("training the spectrum network for the prediction band")
        ens = train_on(snap, None, seed=network_seed(snap, snap.config.seed), cache=ctx.ensemble_cache)
        mean, sd = (np.asarray(a)[0] for a in ens.predict(x[i: i + 1]))
        band = (mean - 2 * sd, mean + 2 * sd)
    else:
        notes.append(f"no prediction band: the spectrum network needs {MIN_CONDITIONS} measured conditions")
    return plots.best_spectrum(snap.wavelengths, snap.measured[i], snap.target, folder / "best_spectrum.png",
                               loss=float(y[i]), band=band)
