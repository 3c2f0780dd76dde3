"""What ``status`` reports: counts, the best condition, the Pareto set, the models' fit, the step and the stop rules.

:func:`status` reads a snapshot and returns plain data (the CLI's ``status
--json`` prints it as it is; the Python ``Campaign`` wraps it in a typed
:class:`~jaxopt_mat.api.Status`).
"""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxopt_mat.campaign import Config, Snapshot
from jaxopt_mat.campaign.input_cells import input_values
from jaxopt_mat.pareto import hypervolume_history, non_dominated_mask
from jaxopt_mat.stopping import evaluate
from jaxopt_mat.strategies.base import Context, feasibility
from jaxopt_mat.strategies.spectrum import recommended_condition
from jaxopt_mat.strategies.two_step import network_readiness
from jaxopt_mat.surrogates.gp import fit_gp
from jaxopt_mat.surrogates.gp_quality import fit_quality
from jaxopt_mat.surrogates.independent import fit_objectives


def _quality(config: Config, model, y) -> dict:
    quality = fit_quality(model, y)
    names = model.features.names if getattr(model, "features", None) is not None else config.input_names
    quality["lengthscales"] = dict(zip(names, quality["lengthscales"]))
    return quality


def _describer(snap: Snapshot):
    """``describe(i)``: condition ``i`` by its inputs, or by its candidate id (the id of its first row)."""
    cond = snap.conditions
    if not snap.config.is_pool:
        return lambda i: recipe(snap.config, cond.x[i])
    first: dict = {}
    for r, c in enumerate(cond.index.tolist()):  # candidates with equal features share a condition
        first.setdefault(c, snap.ids[r])
    return lambda i: {"id": first[i]}


def recipe(config: Config, x) -> dict:
    """One condition's inputs by name as a user reads them: labels, whole numbers, floats."""
    return {name: column[0] for name, column in input_values(config.inputs, np.asarray(x)[None]).items()}


def pareto_summary(snap: Snapshot, describe) -> dict:
    """Reference point, hypervolume (now and per batch) and the Pareto set, in the objectives' own units.

    Only conditions that keep the outcome constraints (by their replicate medians) count.
    """
    obj = snap.config.objective
    cond, signs = snap.conditions, obj.signs
    front = cond.y * signs
    ref = snap.reference_point(front)
    ok = snap.satisfied
    front = np.where(ok[:, None], front, ref)  # a condition that breaks a constraint adds nothing
    # Per-batch history over replicate medians of the data known at that point.
    history = hypervolume_history(front[cond.index], snap.batches, ref)
    mask = np.asarray(non_dominated_mask(front)) & ok
    rows = []
    for i in sorted(np.flatnonzero(mask), key=lambda i: -front[i, 0]):
        row = describe(int(i))
        row.update({n: float(v) for n, v in zip(obj.measured_names, cond.y[i])})
        row["replicates"] = int(cond.counts[i])
        rows.append(row)
    return {
        "reference": [float(v) for v in ref * signs],
        "reference_source": "campaign.toml" if obj.reference is not None else "derived from the data",
        "hypervolume": history[-1],
        "hypervolume_by_batch": history,
        "front": rows,
    }


def status(snap: Snapshot, *, with_model: bool = True, key_seed: int = 0, context: Context | None = None) -> dict:
    """Campaign summary: counts, best condition (median of replicates), model fit quality.

    For spectrum campaigns with ``with_model``, also the two-step state (``step``):
    which surrogate ``suggest --method auto`` would use, and why: the same
    decision, from the same training seeds, as the next ``suggest`` (so with an
    ensemble cache in ``context`` the next ``suggest`` reuses the ensembles
    trained here). For Pareto campaigns, ``pareto`` holds the reference point,
    the hypervolume (now and after each batch) and the Pareto set; ``model``
    then maps each objective to its GP's fit quality. Pool campaigns add
    ``pool`` (candidates, unmeasured). With failed runs recorded, ``failures``
    holds their count, rate and count per batch, and (with the model) the
    success classifier's length-scale and its probability of success at the
    best condition. ``pending`` lists the suggested rows not yet observed
    (:func:`pending_summary`). Spectrum campaigns with at least 3
    conditions add ``recommended``: the measured condition with the lowest
    posterior expected loss under the composite spectrum GP.
    """
    ctx = context or Context()
    config, cond = snap.config, snap.conditions
    obj = config.objective
    out: dict = {
        "name": config.name,
        "objective": ({"name": obj.name, "direction": obj.direction} if not obj.is_pareto else
                      {"name": obj.name, "direction": obj.direction,
                       "objectives": [{"name": n, "direction": d} for n, d in obj.objectives]}),
        "n_observations": snap.n_rows,
        "n_conditions": snap.n_conditions,
        "n_batches": snap.last_batch,
        "n_suggestions": snap.n_suggested,
        "best": None,
        "model": None,
    }
    if config.is_pool:
        out["pool"] = {"candidates": len(snap.pool.ids), "unmeasured": int(np.sum(~snap.measured_mask))}
    n_failed = int(snap.failed_x.shape[0])
    out["failures"] = None if not n_failed else {
        "count": n_failed, "rate": n_failed / (n_failed + snap.n_rows),
        "by_batch": {str(b): int(c) for b, c in zip(*np.unique(snap.failed_batches, return_counts=True))}}
    out["pending"] = pending_summary(snap)
    describe = _describer(snap)
    if obj.is_pareto:
        out["pareto"] = pareto_summary(snap, describe) if snap.n_conditions else None
    elif snap.satisfied.any():
        i = best_condition(snap)
        out["best"] = {**describe(i), "value": float(cond.y[i]), "replicates": int(cond.counts[i])}
    if config.outcome_constraints:
        out["outcome_constraints"] = {"constraints": [c.expr for c in config.outcome_constraints],
                                      "satisfied": int(snap.satisfied.sum()), "conditions": snap.n_conditions}
    if not with_model:
        return out
    if n_failed and snap.n_rows:  # the success model's view: its length-scale, and P(success) at the best condition
        low, high = (snap.pool.low, snap.pool.high) if config.is_pool else (snap.space.low, snap.space.high)
        success = feasibility(snap, low=low, high=high, ctx=ctx)
        if obj.is_pareto:
            at = cond.x
        else:
            at = cond.x[[best_condition(snap) if snap.satisfied.any() else
                         int(np.argmax(cond.y) if obj.maximize else np.argmin(cond.y))]]
        out["failures"]["success_model"] = {
            "lengthscale": float(success.lengthscale),
            ("probability_at_best" if not obj.is_pareto else "lowest_probability_on_measured"):
                float(np.min(np.asarray(success.probability(at))))}
    diagnostics: dict = {}
    if snap.n_conditions >= 3:
        space, key = snap.space, jax.random.key(key_seed)
        if obj.is_pareto:
            models = fit_objectives(cond.x, cond.y, key=key, low=space.low, high=space.high, features=space.features,
                                    noise_variance=snap.replicate_noise, program_cache=ctx.program_cache)
            out["model"] = {n: _quality(config, m, cond.y[:, j]) for j, (n, m) in
                            enumerate(zip(obj.measured_names, models))}
        else:
            models = (fit_gp(cond.x, cond.y, key=key, low=space.low, high=space.high, features=space.features,
                             noise_variance=snap.replicate_noise, program_cache=ctx.program_cache),)
            out["model"] = _quality(config, models[0], cond.y)
        diagnostics["objective_models"] = models  # the stop rules' all-data GPs
    if obj.is_spectrum:
        # Measured in the network step too: the stop rules read the same numbers.
        ready = network_readiness(snap, seed=config.seed, cache=ctx.ensemble_cache, assess=True) \
            if snap.n_conditions else None
        out["step"] = ready.as_dict() if ready is not None else None
        diagnostics["readiness"] = ready
    if snap.n_conditions >= 3:
        verdict = evaluate(snap, config.stopping, context=ctx, diagnostics=diagnostics)
        verdict.pop("state", None)  # status writes nothing: the fits it made are not kept
        out.update(verdict)
        if obj.is_spectrum:
            i, expected = recommended_condition(snap, key=jax.random.key(key_seed), program_cache=ctx.program_cache)
            out["recommended"] = {**describe(i), "expected_loss": expected, "measured": float(cond.y[i]),
                                  "replicates": int(cond.counts[i])}
    return out


def pending_summary(snap: Snapshot, *, now: float | None = None) -> dict:
    """The suggested rows not yet observed: ``{"count", "rows": [{"suggestion", (id,) inputs..., "age_hours"}]}``."""
    pending = snap.pending
    now = time.time() if now is None else now
    rows = []
    for k, sid in enumerate(pending.ids if pending is not None else ()):
        row = {"suggestion": sid}
        if pending.pool_ids is not None:
            row["id"] = pending.pool_ids[k]
        else:
            row.update(recipe(snap.config, pending.x[k]))
        row["age_hours"] = max(0.0, (now - float(pending.at[k])) / 3600.0)
        rows.append(row)
    return {"count": len(rows), "rows": rows}


def best_condition(snap: Snapshot) -> int:
    """Index of the best condition (replicate median) among those that keep the outcome constraints."""
    y = np.where(snap.satisfied, snap.conditions.y, np.nan)
    return int(np.nanargmax(y) if snap.config.objective.maximize else np.nanargmin(y))


def best_row(snap: Snapshot) -> int:
    """Index of the recorded row with the best objective (the lowest loss of a spectrum campaign)."""
    y = snap.y
    return int(np.argmax(y) if snap.config.objective.maximize else np.argmin(y))


__all__ = ["best_condition", "best_row", "pareto_summary", "pending_summary", "status"]
