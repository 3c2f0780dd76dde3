"""Several objectives: independent GPs, batches by greedy expected hypervolume improvement (continuous spaces and pools)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.acquisition.ehvi import ehvi_batch
from jaxopt_mat.acquisition.pool_ehvi import pool_ehvi_batch
from jaxopt_mat.campaign import Config, Snapshot
from jaxopt_mat.pareto import non_dominated_mask
from jaxopt_mat.strategies.base import (Context, Request, Suggestion, check_feasible, failure_note, feasibility,
                                        outcome_models, outcome_note, pending_rows, pending_x, measured_x,
                                        n_lengthscales, row_log_weights)
from jaxopt_mat.strategies.fits import data_digest, fit_start, remembered_fits
from jaxopt_mat.surrogates.gp import MAX_ITER
from jaxopt_mat.surrogates.outcome_constraints import outcome_constraints
from jaxopt_mat.surrogates.independent import (fit_objectives, predict_objectives, predict_objectives_believer,
                                               predict_objectives_rows)


def fit_objectives_warm(snap: Snapshot, *, key, low, high, ctx: Context, refit_after: int = 1) -> tuple:
    """One GP per objective on every condition, each optimized from its latest earlier fit or keeping an
    earlier fit's hyper-parameters (:mod:`jaxopt_mat.strategies.fits`). Returns ``(models, digests)``."""
    names = snap.config.objective.measured_names
    cond = snap.conditions
    n = cond.x.shape[0]
    noise = snap.replicate_noise
    digests = {name: data_digest(cond.x, cond.y[:, j], low, high, None if noise is None else noise[:, j])
               for j, name in enumerate(names)}
    starts = [fit_start(snap.state, name, n, n_lengthscales(snap), digests[name], refit_after) for name in names]
    ctx.progress(f"fitting {len(names)} GPs to {n} conditions")
    models = fit_objectives(cond.x, cond.y, key=key, low=low, high=high, noise_variance=noise,
                            inits=tuple(init for init, _ in starts), features=snap.space.features,
                            program_cache=ctx.program_cache, max_iter=tuple(0 if keep else MAX_ITER for _, keep in starts))
    return models, digests


def pareto_extra(config: Config, mean_max, std, ehvi, ehvi_name) -> dict[str, np.ndarray]:
    """Suggestion columns: each objective's predicted mean (own sign) and std, then the acquisition."""
    extra = {}
    signs = config.objective.signs
    for j, name in enumerate(config.objective.measured_names):
        extra[f"predicted_{name}"] = np.asarray(mean_max)[:, j] * signs[j]
        extra[f"predicted_{name}_std"] = np.asarray(std)[:, j]
    extra[ehvi_name] = np.asarray(ehvi)
    return extra


def _kept(snap: Snapshot, models, outcome_fits, digests) -> dict:
    names = snap.config.objective.measured_names
    return remembered_fits(snap.state, snap.n_conditions, {**dict(zip(names, models)), **outcome_fits}, digests)


def toward_reference(snap: Snapshot, models, ref: np.ndarray, constraints):
    """``constraints``, plus "inside the reference box" while no counted condition is inside it.

    With a configured reference that nothing measured dominates yet, every
    point's hypervolume lies in a box no data has reached, and EHVI rewards
    uncertainty alone (the corners of the space, or an objective's extreme
    whatever the other one costs). Until a condition gets there, the
    acquisition also weighs the probability that every objective beats the
    reference (the objectives' own GPs as outcome constraints).
    """
    obj = snap.config.objective
    counted = (snap.conditions.y * obj.signs)[snap.satisfied]
    if obj.reference is None or np.any(np.all(counted > ref, axis=1)):
        return constraints
    box = outcome_constraints(models, obj.reference, [s < 0 for s in obj.signs])
    return box if constraints is None else constraints + box


def counted_front(snap: Snapshot, ref: np.ndarray) -> np.ndarray:
    """The objectives (maximisation form) of the conditions that keep the outcome constraints.

    The reference point alone when none does: it adds no hypervolume, so every
    improvement counts and the probability of keeping the constraints decides.
    """
    front = snap.conditions.y * snap.config.objective.signs
    front = front[snap.satisfied]
    return front if front.shape[0] else np.asarray(ref, float)[None]


def model_front(snap: Snapshot, models, ref: np.ndarray) -> np.ndarray:
    """The front continuous EHVI improves on: the posterior means (maximisation form) at the counted conditions.

    Not their measured values. Where a GP explains part of an objective as
    noise (ZDT3's ripples, a property the features predict poorly), a measured
    value can lie well away from the model's mean at that condition; against
    measured values, EHVI then rewards measuring the same conditions again
    (the prediction's spread straddles the value it already has) and the
    batches collect on them. Against the models' own means, as qNEHVI judges
    improvement on a noisy baseline (Daulton et al., NeurIPS 2021; here the
    posterior mean in place of its samples), a condition already measured
    adds only what its posterior spread allows. The reference point alone
    when no condition counts (see :func:`counted_front`).

    Continuous spaces only: a pool never offers a measured row again, and on
    pool pairs whose property the features predict poorly (R² 0.1-0.25) the
    shrunken means misled the batch (PI1070 dielectric constant against
    thermal conductivity, seed 3: 0.959 → 0.196 of the front's hypervolume).
    """
    x = snap.conditions.x[snap.satisfied]
    if not x.shape[0]:
        return np.asarray(ref, float)[None]
    return predict_objectives_rows(x, models, snap.config.objective.signs)[0]


def suggest_continuous(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """Sequential greedy EHVI with Kriging-believer fantasies, each point by the gradient maximizer."""
    config, space, cond = snap.config, snap.space, snap.conditions
    signs = config.objective.signs
    k_fit, k_acq = jax.random.split(jax.random.key(req.rng_seed))
    models, digests = fit_objectives_warm(snap, key=k_fit, low=space.low, high=space.high, ctx=ctx,
                                          refit_after=req.refit_after)
    constraints, outcome_fits = outcome_models(snap, key=jax.random.fold_in(k_fit, 7), low=space.low,
                                               high=space.high, ctx=ctx, refit_after=req.refit_after, digests=digests)
    ref = snap.reference_point(cond.y * signs)
    front = model_front(snap, models, ref)
    constraints = toward_reference(snap, models, ref, constraints)
    ctx.progress(f"optimizing EHVI for a batch of {req.batch}")
    counted = cond.x[snap.satisfied] if snap.satisfied.any() else cond.x
    init = counted[np.asarray(non_dominated_mask(counted_front(snap, ref)))] if snap.satisfied.any() else None
    x, log_e, mean, std = ehvi_batch(predict_objectives_believer, (models, jnp.asarray(signs)), space, front, ref,
                                     req.batch, key=k_acq, init=init,
                                     feasibility=feasibility(snap, low=space.low, high=space.high, ctx=ctx),
                                     constraints=constraints, pending=pending_x(snap),
                                     exclude=measured_x(snap, req.batch))
    x = check_feasible(space, x)
    return Suggestion(x, "gp", pareto_extra(config, mean, std, np.asarray(log_e), "log_ehvi"),
                      failure_note(snap) + outcome_note(snap), state=_kept(snap, models, outcome_fits, digests),
                      diagnostics={"objective_models": models})


def suggest_pool_pareto(snap: Snapshot, req: Request, ctx: Context):
    """EHVI over a pool's unmeasured rows: ``(rows, extra columns, models, state)``."""
    config, pool, cond = snap.config, snap.pool, snap.conditions
    signs = config.objective.signs
    key = jax.random.key(req.rng_seed)
    models, digests = fit_objectives_warm(snap, key=key, low=pool.low, high=pool.high, ctx=ctx,
                                          refit_after=req.refit_after)
    constraints, outcome_fits = outcome_models(snap, key=jax.random.fold_in(key, 7), low=pool.low, high=pool.high,
                                               ctx=ctx, refit_after=req.refit_after, digests=digests)
    ref = snap.reference_point(cond.y * signs)
    front = counted_front(snap, ref)  # measured values: a pool never offers a measured row again (see model_front)
    constraints = toward_reference(snap, models, ref, constraints)
    ctx.progress(f"scoring EHVI over {len(pool.ids)} candidates")
    log_w = row_log_weights(snap, pool, constraints, ctx)
    weights = None if log_w is None else np.exp(np.asarray(log_w))
    waiting = pending_rows(snap)
    if waiting is not None:  # runs in the lab join the front at their predicted outcomes (the Kriging believer)
        front = np.concatenate([front, predict_objectives_rows(pool.features[waiting], models, signs)[0]])
    idx, ehvi, mean, std = pool_ehvi_batch(predict_objectives, (models, jnp.asarray(signs)), pool.features, front,
                                           ref, req.batch, exclude=snap.unavailable_mask, weights=weights)
    extra = pareto_extra(config, mean, std, ehvi, "ehvi")
    return idx, extra, models, _kept(snap, models, outcome_fits, digests)
