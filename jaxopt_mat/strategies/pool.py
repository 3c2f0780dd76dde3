"""Pool campaigns: the next batch is a set of unmeasured rows of the candidate table."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.campaign import Snapshot
from jaxopt_mat.errors import DataError
from jaxopt_mat.pool import penalized_pool_batch
from jaxopt_mat.strategies.base import (Context, Request, Suggestion, failure_note, incumbent, objective_target,
                                        outcome_models, outcome_note, pending_rows, row_log_weights)
from jaxopt_mat.strategies.fits import remembered_fits
from jaxopt_mat.strategies.designs import pool_rows
from jaxopt_mat.strategies.gp import fit_warm
from jaxopt_mat.strategies.pareto import suggest_pool_pareto


def check_free(snap: Snapshot, batch: int) -> None:
    """A :class:`DataError` when fewer than ``batch`` candidates are left unmeasured (and not pending)."""
    free = int(np.sum(~snap.unavailable_mask))
    if free < batch:
        waiting = f" and not pending ({snap.n_pending} are)" if snap.n_pending else ""
        raise DataError(f"only {free} candidates of {len(snap.pool.ids)} are left unmeasured{waiting}; "
                        f"ask for at most {free}")


def suggest_pool_gp(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """Scalar objective: log-EI with local penalization over rows; several objectives: greedy EHVI over rows."""
    config, pool, cond = snap.config, snap.pool, snap.conditions
    if config.objective.is_pareto:
        idx, extra, models, state = suggest_pool_pareto(snap, req, ctx)
        return _with(pool_rows(snap, idx, "gp", extra), state, models, failure_note(snap) + outcome_note(snap))
    maximize = config.objective.maximize
    ctx.progress(f"fitting GP to {cond.x.shape[0]} candidates")
    key = jax.random.key(req.rng_seed)
    warp, y_model, known_noise = objective_target(snap, cond.y)  # a long tail of bad values compressed
    model = fit_warm(snap, config.objective.name, cond.x, y_model, key=key, low=pool.low, high=pool.high, ctx=ctx,
                     noise_variance=known_noise, refit_after=req.refit_after, digests=(digests := {}))
    constraints, outcome_fits = outcome_models(snap, key=jax.random.fold_in(key, 7), low=pool.low, high=pool.high,
                                               ctx=ctx, refit_after=req.refit_after, digests=digests)
    best = incumbent(snap, y_model, maximize)
    ctx.progress(f"scoring log-EI over {len(pool.ids)} candidates")
    log_weights = row_log_weights(snap, pool, constraints, ctx)
    pb = penalized_pool_batch(model, jnp.asarray(pool.features), req.batch, best=best, maximize=maximize,
                              exclude=np.array(snap.unavailable_mask), log_weights=log_weights,
                              pending=pending_rows(snap))
    mean, std = np.asarray(pb.mean), np.asarray(pb.std)
    if warp is not None:
        mean, std = warp.posterior(mean, std)
    extra = {"predicted_mean": mean, "predicted_std": std, "log_ei": np.asarray(pb.log_acquisition)}
    state = remembered_fits(snap.state, cond.x.shape[0], {config.objective.name: model, **outcome_fits}, digests)
    # the stop rules judge GPs of the recorded objective: a warped GP models a transform of it
    return _with(pool_rows(snap, pb.index, "gp", extra), state, None if warp is not None else (model,),
                 failure_note(snap) + outcome_note(snap))


def _with(sug: Suggestion, state: dict, models, notes: list[str]) -> Suggestion:
    sug.state, sug.notes = state, list(sug.notes) + notes
    sug.diagnostics = {} if models is None else {"objective_models": tuple(models)}
    return sug
