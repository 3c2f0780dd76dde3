"""Pool-based campaigns: a table of candidates, each an ``id`` and a feature vector.

The polymer-screening workflow does not search a continuous space: it picks
the next batch from a fixed pool (e.g. 10,000 virtual polymers) and hands it
to an expensive simulator. This module reads and validates such a table and
holds the selection rules that work on rows instead of points:

- :func:`read_pool` (:mod:`jaxopt_mat.pool_table`): the candidate table (``id`` plus features).
- :func:`farthest_point_design`: a space-filling initial design from the pool
  (greedy max-min distance in standardized features, from a random start).
- :func:`penalized_pool_batch`: a batch of scalar-objective candidates by
  log-EI with local penalization over rows (the discrete counterpart of
  :func:`jaxopt_mat.local_penalization_batch`).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.acquisition.analytic import log_expected_improvement
from jaxopt_mat.acquisition.batch import log_penalizer
from jaxopt_mat.chunked import map_rows
from jaxopt_mat.errors import DataError
from jaxopt_mat.optimize import pad_pending
from jaxopt_mat.pool_table import (ID_COLUMN, IdIndex, Pool, load_pool_cache, parse_pool, read_pool,  # noqa: F401
                                   store_pool_cache)

def standardize(features: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation per column (the columns are never constant)."""
    f = np.asarray(features, dtype=np.float64)
    return (f - f.mean(0)) / f.std(0)


def farthest_point_design(features, k: int, *, seed: int, exclude=None) -> np.ndarray:
    """``k`` row indices spread over the pool: a random first row, then each next
    row the one farthest (Euclidean, standardized features) from all chosen and
    excluded rows. Excluded rows (already measured) are never chosen.
    """
    z = standardize(features)
    n = z.shape[0]
    blocked = np.zeros(n, bool) if exclude is None else np.asarray(exclude, bool).copy()
    free = np.flatnonzero(~blocked)
    if k > free.size:
        raise DataError(f"the pool has {free.size} unmeasured candidates, fewer than the {k} asked for")
    rng = np.random.default_rng(seed)
    dist = np.full(n, np.inf)
    for i in np.flatnonzero(blocked):
        dist = np.minimum(dist, np.sum((z - z[i]) ** 2, axis=1))
    chosen = []
    if not blocked.any():
        first = int(rng.choice(free))
    else:
        first = int(np.argmax(np.where(blocked, -1.0, dist)))
    for _ in range(k):
        i = first if not chosen else int(np.argmax(np.where(blocked, -1.0, dist)))
        chosen.append(i)
        blocked[i] = True
        dist = np.minimum(dist, np.sum((z - z[i]) ** 2, axis=1))
    return np.array(chosen)


class PoolBatch(NamedTuple):
    """Indices of the chosen rows with the model's view of each.

    Attributes:
        index: ``(q,)`` row indices into the pool.
        mean, std: posterior at each chosen row, ``(q,)``.
        log_acquisition: log EI at each chosen row (unpenalized), ``(q,)``.
    """

    index: jnp.ndarray
    mean: jnp.ndarray
    std: jnp.ndarray
    log_acquisition: jnp.ndarray


def penalized_pool_batch(model, features, q: int, *, best, maximize: bool = True, exclude=None,
                         log_weights=None, pending=None) -> PoolBatch:
    """``q`` pool rows by log-EI with local penalization (González et al. 2016).

    The Lipschitz constant is the largest posterior-mean gradient norm over the
    pool (unit-cube coordinates of the model); after each pick every row's
    log-EI gets the penalizer of the picked row. Rows in ``exclude`` and rows
    already picked are never chosen. ``log_weights`` ``(N,)``, e.g. each row's
    log probability that its run succeeds, is added to every row's log-EI (and
    to the reported ``log_acquisition``). ``pending``: indices of rows being
    measured now; they penalize as if picked earlier in this batch (exclude
    them too). One compiled scan over the batch.
    """
    feats = jnp.asarray(features)
    blocked = jnp.zeros(feats.shape[0], bool) if exclude is None else jnp.asarray(exclude, bool)
    if int(jnp.sum(~blocked)) < q:
        raise DataError(f"the pool has {int(jnp.sum(~blocked))} unmeasured candidates, fewer than the {q} asked for")
    # Per row, in chunks (a million rows' kernel matrix would not fit in memory at once):
    # the posterior and the slope of its mean, which bounds the Lipschitz constant.
    mean, std, slope = map_rows(_posterior_and_slope, (model,), feats)
    log_weights = jnp.zeros(feats.shape[0], feats.dtype) if log_weights is None else jnp.asarray(log_weights)
    rows = np.zeros(0, int) if pending is None else np.asarray(pending, int).reshape(-1)
    slots, slot_mask = pad_pending(rows[:, None], 1, jnp.int32)
    return _penalized_pool(model, feats, blocked, jnp.asarray(best, feats.dtype), mean, std, slope, log_weights,
                           slots[:, 0], slot_mask.astype(feats.dtype), q=q, maximize=maximize)


def _posterior_and_slope(rows, model):
    """Posterior mean and std of each row, and the norm of the mean's gradient in the model's unit cube."""
    post = model.predict(rows)
    u = (rows - model.low) / (model.high - model.low)
    grad = jax.vmap(jax.grad(lambda p: model.predict((model.low + p * (model.high - model.low))[None]).mean[0]))(u)
    return post.mean, post.std, jnp.sqrt(jnp.sum(grad * grad, axis=-1) + 1e-300)


@partial(jax.jit, static_argnames=("q", "maximize"))
def _penalized_pool(model, feats, blocked, best, mean, std, norms, log_weights, pending, pending_mask, *, q,
                    maximize):
    log_ei = log_expected_improvement(mean, std, best, maximize=maximize) + log_weights
    u = (feats - model.low) / (model.high - model.low)
    L = jnp.max(norms)
    L = jnp.where(L > 1e-7, L, 10.0)
    d, p = feats.shape[1], pending.shape[0]

    # The penalizer needs each picked row's posterior; keep them in fixed-size buffers (pending rows first).
    def step(carry, k):
        blocked, centers, c_mean, c_std, mask = carry
        pen = log_penalizer(u, centers, c_mean, c_std, best, L, mask, maximize=maximize)
        score = jnp.where(blocked, -jnp.inf, log_ei + pen)
        i = jnp.argmax(score)
        carry = (blocked.at[i].set(True), centers.at[p + k].set(u[i]), c_mean.at[p + k].set(mean[i]),
                 c_std.at[p + k].set(std[i]), mask.at[p + k].set(1.0))
        return carry, i

    zeros = jnp.zeros(q, feats.dtype)
    init = (blocked, jnp.concatenate([u[pending], jnp.zeros((q, d), feats.dtype)]),
            jnp.concatenate([mean[pending], zeros]), jnp.concatenate([std[pending], zeros + 1.0]),
            jnp.concatenate([pending_mask, zeros]))
    _, idx = jax.lax.scan(step, init, jnp.arange(q))
    return PoolBatch(idx, mean[idx], std[idx], log_ei[idx])
