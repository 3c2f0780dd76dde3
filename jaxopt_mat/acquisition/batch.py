"""Batch selection by local penalization.

González, Dai, Hennig & Lawrence, "Batch Bayesian Optimization via Local
Penalization", AISTATS 2016: the batch is built one point at a time; after each
choice the acquisition is multiplied by a penalizer that is small inside the ball
around the chosen point where, given a Lipschitz constant ``L`` of the objective,
the optimum cannot lie. In log space the product becomes a sum:

    log a~(x) = log EI(x) + sum_j log Phi((L ||x - x_j|| - r_j L) / sigma_j),
    r_j = max(M - mu(x_j), 0) / L,

with ``M`` the incumbent, ``mu, sigma`` the posterior at ``x_j``, and ``L`` the
largest norm of the posterior-mean gradient seen over the space (the paper's
estimate). The whole batch is chosen inside one compiled ``lax.scan``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from jaxopt_mat.acquisition.analytic import log_expected_improvement
from jaxopt_mat.optimize import batch_slots, greedy_batch_unit, pad_pending, sample_feasible_unit
from jaxopt_mat.space import SearchSpace
from jaxopt_mat.surrogates.gp import GPModel

MAX_BATCH = 96  # one 96-well plate


class Batch(NamedTuple):
    """A batch of suggestions with the model's view of each point.

    Attributes:
        x: points, physical units, shape ``(q, d)``.
        mean, std: posterior at each point, shape ``(q,)``.
        log_acquisition: log EI at each point (unpenalized), shape ``(q,)``.
        lipschitz: the Lipschitz constant used, in unit-cube coordinates (NaN where the batch believes its
            picks instead of penalizing: spaces with categorical inputs).
    """

    x: jnp.ndarray
    mean: jnp.ndarray
    std: jnp.ndarray
    log_acquisition: jnp.ndarray
    lipschitz: jnp.ndarray


def _safe_norm(v, axis=-1):
    sq = jnp.sum(v * v, axis=axis)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _predict_space_unit(model, space, u):
    # The model may scale inputs with other bounds than the space; go through physical units.
    return model.predict(space.from_unit(u))


def estimate_lipschitz(model: GPModel, space: SearchSpace, key, *, n: int = 512):
    """Largest norm of the posterior-mean gradient (unit-cube coordinates).

    Taken over ``n`` feasible random points and the training inputs. Falls back
    to 10 when the mean is flat (the value GPyOpt uses), so penalizers stay finite.
    """
    train_u = space.to_unit(model.low + model.x_unit * (model.high - model.low))
    u = jnp.concatenate([sample_feasible_unit(space, key, n), train_u])
    grad = jax.vmap(jax.grad(lambda p: _predict_space_unit(model, space, p[None]).mean[0]))(u)
    norms = _safe_norm(grad)
    norms = jnp.where(jnp.concatenate([jnp.ones(n), model.mask]) > 0, norms, 0.0)
    L = jnp.max(norms)
    return jnp.where(L > 1e-7, L, 10.0)


def log_penalizer(u, centers, mean, std, incumbent, lipschitz, mask, *, maximize: bool = True):
    """Sum over batch points of ``log Phi((L ||u - x_j|| - (M - mu_j)^+) / sigma_j)``.

    ``u``: ``(n, d)`` unit-cube points; ``centers``: ``(q, d)``; ``mean``, ``std``,
    ``mask``: ``(q,)`` (mask 0 ignores a slot). Returns ``(n,)``.
    """
    gap = (incumbent - mean) if maximize else (mean - incumbent)
    gap = jnp.maximum(gap, 0.0)
    dist = _safe_norm(u[:, None, :] - centers[None, :, :])
    z = (lipschitz * dist - gap[None, :]) / jnp.maximum(std, 1e-12)[None, :]
    return jnp.sum(log_ndtr(z) * mask[None, :], axis=-1)


@partial(jax.jit, static_argnames=("q", "maximize", "n_starts", "n_raw", "n_steps"))
def _local_penalization(model, space, key, best, init_unit, learning_rate, constraints, feasibility, pending,
                        pending_mask, exclude, exclude_mask, active, *, q, maximize, n_starts, n_raw, n_steps):
    d = space.dim
    dtype = model.x_unit.dtype
    # The Lipschitz constant is the model's, estimated on points that do not depend on the call: batches asked
    # for in turn (the next one while the first is pending) penalize each other as one batch would.
    k_lip, k_loop = jax.random.key(0), key
    # With categorical inputs a distance between labels means nothing to a penalizer's ball: the batch
    # believes its earlier picks (and the pending rows) observed at their means instead, so the GP's own
    # correlations (a label the data show to matter little shares its information) keep the picks apart.
    believer = any(k.is_categorical for k in space.kinds)
    L = jnp.asarray(jnp.nan, dtype) if believer else estimate_lipschitz(model, space, k_lip)  # penalizers only

    def log_ei(u, post=None):
        post = _predict_space_unit(model, space, u) if post is None else post
        value = log_expected_improvement(post.mean, post.std, best, maximize=maximize)
        if constraints is not None:  # times the probability that the constrained outcomes keep their bounds
            value = value + constraints.log_probability(space.from_unit(u))
        if feasibility is not None:  # times the probability that a run there gives a result
            value = value + feasibility.log_weight(space.from_unit(u))
        return value

    def score(carry, u):
        centers, mean, std, mask = carry
        if believer:
            return log_ei(u, model.predict_believer(space.from_unit(u), space.from_unit(centers), mask))
        return log_ei(u) + log_penalizer(u, centers, mean, std, best, L, mask, maximize=maximize)

    p = pending.shape[0]

    def record(carry, k, u, _):
        centers, mean, std, mask = carry
        post = _predict_space_unit(model, space, u[None])
        return (centers.at[p + k].set(u), mean.at[p + k].set(post.mean[0]), std.at[p + k].set(post.std[0]),
                mask.at[p + k].set(1.0)), None

    # Pending rows (runs in the lab) penalize as if chosen earlier in this batch.
    pending_unit = space.to_unit(pending)
    pending_post = _predict_space_unit(model, space, pending_unit)
    init = (jnp.concatenate([pending_unit, jnp.zeros((q, d), dtype)]),
            jnp.concatenate([pending_post.mean, jnp.zeros(q, dtype)]),
            jnp.concatenate([pending_post.std, jnp.ones(q, dtype)]),
            jnp.concatenate([pending_mask, jnp.zeros(q, dtype)]))
    (centers, mean, std, _), _, _, _ = greedy_batch_unit(score, record, init, space, k_loop, q, n_starts=n_starts,
                                                         n_raw=n_raw, n_steps=n_steps, learning_rate=learning_rate,
                                                         init_unit=init_unit,
                                                         exclude_unit=jnp.concatenate([pending_unit, space.to_unit(exclude)]),
                                                         exclude_mask=jnp.concatenate([pending_mask, exclude_mask]),
                                                         active=active)
    centers, mean, std = centers[p:], mean[p:], std[p:]
    return Batch(space.from_unit(centers), mean, std, log_ei(centers), L)


def local_penalization_batch(
    model: GPModel,
    space: SearchSpace,
    q: int,
    *,
    key,
    best,
    maximize: bool = True,
    init=None,
    n_starts: int = 16,
    n_raw: int = 512,
    n_steps: int = 60,
    learning_rate: float = 0.03,
    constraints=None,
    feasibility=None,
    pending=None,
    exclude=None,
    program_cache=None,
) -> Batch:
    """Choose ``q`` points by log-EI with local penalization (González et al. 2016).

    Args:
        model: fitted GP.
        space: bounds and constraints; every point returned satisfies them exactly.
        q: batch size, 1 to 96 (one well plate).
        key: PRNG key.
        best: incumbent value (best median measurement so far).
        maximize: direction of the objective.
        init: extra starting points ``(k, d)`` in physical units, e.g. near the best
            observations; the optimizer also starts from the best raw samples.
        constraints: optional :class:`~jaxopt_mat.surrogates.outcome_constraints.OutcomeConstraints`:
            outcomes that must keep their bounds, each modelled by its own GP; the
            acquisition becomes log EI + log P(every bound holds) (Gardner et al.,
            ICML 2014), and ``log_acquisition`` reports that sum.
        feasibility: optional success classifier
            (:class:`~jaxopt_mat.surrogates.feasibility.FeasibilityModel`): its
            ``log P(success)`` is added too, so the batch keeps away from where
            runs failed.
        pending: optional ``(p, d)`` points already being measured (physical
            units): they penalize the acquisition as if chosen earlier in this
            batch, so the batch keeps away from them.
        exclude: optional ``(e, d)`` points never to choose, physical units (e.g. the
            conditions already measured); honoured where every input has finitely
            many values (a repeat elsewhere has probability zero). Pending rows are
            never chosen there either.
        program_cache: optional :class:`~jaxopt_mat.program_cache.ProgramCache`
            that keeps the compiled program between processes (used by the CLI).

    Example:
        >>> batch = local_penalization_batch(model, space, 15, key=key, best=y.max())
        >>> batch.x.shape
        (15, 5)
    """
    if not 1 <= q <= MAX_BATCH:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH}, got {q}")
    init_unit = None if init is None else space.to_unit(jnp.atleast_2d(jnp.asarray(init)))
    dtype = model.x_unit.dtype
    args = (model, space, key, jnp.asarray(best, dtype), init_unit, jnp.asarray(learning_rate), constraints,
            feasibility, *pad_pending(pending, space.dim, dtype), *pad_pending(exclude, space.dim, dtype),
            jnp.asarray(q, jnp.int32))
    # One program per number of slots (batch_slots): a batch of q fills the first q of them.
    static = dict(q=batch_slots(q), maximize=maximize, n_starts=n_starts, n_raw=n_raw, n_steps=n_steps)
    if program_cache is None:
        out = _local_penalization(*args, **static)
    else:
        out = Batch(*program_cache.call("local_penalization", _local_penalization_tuple, args, static))
    return Batch(out.x[:q], out.mean[:q], out.std[:q], out.log_acquisition[:q], out.lipschitz)


def _local_penalization_tuple(*args, **static):
    return tuple(_local_penalization(*args, **static))
