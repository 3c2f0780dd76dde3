"""Recipes whose predicted spectrum best matches a target, found by gradient descent.

Two surrogates. Under the spectrum network's deep ensemble, the score of a
recipe is the negative lower confidence bound of its loss: ``-(mean_m L_m - kappa * std_m L_m)``, where ``L_m`` is the smooth
spectrum loss of member ``m``'s predicted spectrum. ``kappa = 0`` exploits the
ensemble mean; larger values favour recipes the members disagree on. A batch of
distinct recipes is built greedily: each new recipe maximises the score minus a
Gaussian repulsion from the recipes already chosen (in unit-cube coordinates).

Under the composite GP (:class:`~jaxopt_mat.surrogates.spectrum_gp.SpectrumGP`,
the end of this module), it is the expected improvement of the log-loss over
spectra drawn from the posterior, and a batch follows the Kriging believer,
with a soft exclusion zone around each recipe already chosen.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_mat.objectives import spectrum_loss
from jaxopt_mat.optimize import batch_slots, greedy_batch_unit, pad_pending
from jaxopt_mat.space import SearchSpace
from jaxopt_mat.surrogates.spectrum_gp import SpectrumGP
from jaxopt_mat.surrogates.spectrum_net import SpectrumEnsemble


class SpectrumBatch(NamedTuple):
    """Recipes chosen for a target, with the ensemble's view of each.

    Attributes:
        x: recipes, shape ``(q, d)``.
        loss_mean, loss_std: exact loss of the members' spectra, mean and spread, ``(q,)``.
        log_acquisition: :func:`spectrum_gp_batch` only: the log expected improvement
            each recipe reached when it was chosen (after the earlier picks were believed
            and excluded), ``(q,)``; ``None`` from :func:`spectrum_batch`.
    """

    x: jnp.ndarray
    loss_mean: jnp.ndarray
    loss_std: jnp.ndarray
    log_acquisition: jnp.ndarray | None = None


def member_losses(ensemble: SpectrumEnsemble, x, target, window, smoothness=None):
    """Loss of every member's predicted spectrum, shape ``(members, n)``."""
    return spectrum_loss(ensemble.member_spectra(x), target, window=window, smoothness=smoothness)


def lower_confidence_score(x, ensemble, target, window, smoothness, kappa):
    """``-(mean - kappa * std)`` of the members' smooth losses: larger is better."""
    losses = member_losses(ensemble, x, target, window, smoothness)
    return -(jnp.mean(losses, axis=0) - kappa * jnp.std(losses, axis=0))


@partial(jax.jit, static_argnames=("q", "n_starts", "n_raw", "n_steps"))
def _spectrum_batch(ensemble, space, key, target, window, smoothness, kappa, repulsion, radius, learning_rate,
                    pending, pending_mask, feasibility, constraints, active, *, q, n_starts, n_raw, n_steps):
    d = space.dim
    p = pending.shape[0]

    def score(carry, u):
        chosen, mask = carry
        value = lower_confidence_score(space.from_unit(u), ensemble, target, window, smoothness, kappa)
        d2 = jnp.sum((u[:, None, :] - chosen[None]) ** 2, axis=-1)
        value = value - repulsion * jnp.sum(mask * jnp.exp(-0.5 * d2 / radius**2), axis=-1)
        if constraints is not None:
            value = value + constraints.log_constraint(space.from_unit(u))
        return value if feasibility is None else value + feasibility.log_constraint(space.from_unit(u))

    def record(carry, k, u, _):
        chosen, mask = carry
        return (chosen.at[p + k].set(u), mask.at[p + k].set(1.0)), None

    dtype = jnp.asarray(space.low).dtype
    chosen = jnp.concatenate([space.to_unit(pending).astype(dtype), jnp.zeros((q, d), dtype)])
    mask = jnp.concatenate([pending_mask, jnp.zeros(q, dtype)])
    (chosen, _), _, _, _ = greedy_batch_unit(score, record, (chosen, mask), space, key, q, n_starts=n_starts,
                                             n_raw=n_raw, n_steps=n_steps, learning_rate=learning_rate,
                                             active=active)
    x = space.from_unit(chosen[p:])
    losses = member_losses(ensemble, x, target, window)
    return SpectrumBatch(x, jnp.mean(losses, axis=0), jnp.std(losses, axis=0))


def spectrum_batch(
    ensemble: SpectrumEnsemble,
    space: SearchSpace,
    target,
    q: int,
    *,
    key,
    window=(0.7, 1.2),
    smoothness: float = 0.02,
    kappa: float = 0.0,
    repulsion: float = 0.05,
    radius: float = 0.05,
    n_starts: int = 32,
    n_raw: int = 2048,
    n_steps: int = 150,
    learning_rate: float = 0.02,
    pending=None,
    feasibility=None,
    constraints=None,
    program_cache=None,
) -> SpectrumBatch:
    """``q`` distinct feasible recipes minimising the ensemble's predicted loss against ``target``.

    Args:
        ensemble: trained :class:`SpectrumEnsemble`.
        space: bounds and constraints (every recipe satisfies them exactly).
        target: target spectrum on the ensemble's wavelength grid, ``(w,)``.
        q: number of recipes.
        key: PRNG key.
        window: intensity window of the loss.
        smoothness: width of the smooth window edge used while optimising.
        kappa: exploration weight on the members' disagreement.
        repulsion, radius: height and width (unit cube) of the repulsion between batch members.
        pending: recipes already in the batch from elsewhere, ``(p, d)`` (runs still in
            the lab, the composite GP's half of a ``mixed`` batch): the new recipes are
            repelled from them as from each other.
        feasibility: optional success classifier; recipes where it gives less than even odds of a
            result are penalised (``FeasibilityModel.log_constraint``).
        constraints: optional outcome constraints; recipes where they hold with less than even odds
            are penalised the same way (``OutcomeConstraints.log_constraint``).
        program_cache: optional :class:`~jaxopt_mat.program_cache.ProgramCache`
            that keeps the compiled program between processes (used by the CLI).

    Returns:
        :class:`SpectrumBatch` with the exact predicted loss of each recipe.
    """
    dtype = jnp.asarray(target).dtype
    args = (ensemble, space, key, jnp.asarray(target), jnp.asarray(window, dtype),
            *(jnp.asarray(v, dtype) for v in (smoothness, kappa, repulsion, radius, learning_rate)),
            *pad_pending(pending, space.dim, dtype), feasibility, constraints)
    return _cached(program_cache, "spectrum_batch", _spectrum_batch, args, q,
                   dict(n_starts=n_starts, n_raw=n_raw, n_steps=n_steps))


def _cached(program_cache, name, fn, args, q, static) -> SpectrumBatch:
    """The first ``q`` recipes of ``fn(*args, active=q, q=batch_slots(q), **static)``, through ``program_cache``
    when one is given (one program per number of slots)."""
    args, static = (*args, jnp.asarray(q, jnp.int32)), {**static, "q": batch_slots(q)}
    if program_cache is None:
        out = fn(*args, **static)
    else:
        out = SpectrumBatch(*program_cache.call(name, lambda *a, **k: tuple(fn(*a, **k)), args, static))
    return SpectrumBatch(*(None if v is None else v[:q] for v in out))


# ---------------------------------------------------------------------------
# Composite GP (GPs on the spectrum's principal components): expected improvement of the loss

# Improvements are measured on log(loss + LOSS_FLOOR): near the optimum losses span
# orders of magnitude, and the log spreads out differences between good recipes.
LOSS_FLOOR = 1e-4


def expected_spectrum_loss(model: SpectrumGP, x, target, z, *, window=(0.7, 1.2), smoothness=None, picked=None,
                           picked_mask=None):
    """Loss of each spectrum drawn with the score draws ``z`` ``(s, k)``: shape ``(s, n)``; average over axis 0.

    The average is the posterior expected loss (by Monte Carlo with fixed base
    samples); unlike the loss of the mean spectrum, it pays for uncertainty at
    the intensity window's edges, where the factor falls steeply.
    """
    return spectrum_loss(model.sample_spectra(x, z, picked, picked_mask), target, window=window, smoothness=smoothness)


@jax.jit
def posterior_expected_loss(model: SpectrumGP, x, target, z, window):
    """:func:`expected_spectrum_loss` of the exact loss averaged over the draws ``z``: shape ``(n,)``, compiled."""
    return jnp.mean(expected_spectrum_loss(model, x, target, z, window=window), axis=0)


def log_expected_loss_improvement(model: SpectrumGP, x, target, z, best, *, window=(0.7, 1.2), smoothness=0.01,
                                  tau=0.05, picked=None, picked_mask=None):
    """Log of the expected improvement of ``log(loss + 1e-4)`` over ``log(best + 1e-4)``, shape ``(n,)``.

    Monte Carlo over the score draws ``z`` ``(s, k)``, with the improvement
    ``max(I, 0)`` replaced by ``tau * softplus(I / tau)`` so that the value
    and its gradient stay finite and informative where no draw improves (the
    smoothing of BoTorch's qLogEI; it converges to EI as ``tau -> 0``).
    """
    losses = expected_spectrum_loss(model, x, target, z, window=window, smoothness=smoothness, picked=picked,
                                    picked_mask=picked_mask)
    gain = (jnp.log(best + LOSS_FLOOR) - jnp.log(losses + LOSS_FLOOR)) / tau
    return jnp.log(jnp.mean(jax.nn.softplus(gain), axis=0)) + jnp.log(tau)


def log_exclusion(u, chosen, mask, radius):
    """``sum_j log(1 - exp(-|u - c_j|^2 / (2 radius^2)))`` over the chosen rows (``mask``): ``(n,)``, <= 0.

    Added to a log-acquisition it multiplies the acquisition by a factor that
    is 0 at each chosen recipe and near 1 beyond a few ``radius`` (unit-cube
    coordinates); finite everywhere (floored at ``log 1e-12``).
    """
    d2 = jnp.sum((u[:, None, :] - chosen[None]) ** 2, axis=-1)
    return jnp.sum(mask * jnp.log(jnp.maximum(-jnp.expm1(-0.5 * d2 / radius**2), 1e-12)), axis=-1)


@partial(jax.jit, static_argnames=("q", "stride", "n_starts", "n_raw", "n_steps"))
def _spectrum_gp_batch(model, space, key, target, z, best, window, smoothness, tau, radius, learning_rate,
                       feasibility, constraints, pending, pending_mask, active, *, q, stride, n_starts, n_raw,
                       n_steps):
    coarse = SpectrumGP(model.models, model.mean[::stride], model.basis[:, ::stride])
    coarse_target = target[::stride]

    def score(carry, u):
        picked, mask = carry
        log_ei = log_expected_loss_improvement(coarse, space.from_unit(u), coarse_target, z, best, window=window,
                                               smoothness=smoothness, tau=tau, picked=picked, picked_mask=mask)
        value = log_ei + log_exclusion(u, space.to_unit(picked), mask, radius)
        if constraints is not None:
            value = value + constraints.log_probability(space.from_unit(u))
        return value if feasibility is None else value + feasibility.log_weight(space.from_unit(u))

    p = pending.shape[0]

    def record(carry, i, u, _):
        picked, mask = carry
        return (picked.at[p + i].set(space.from_unit(u)), mask.at[p + i].set(1.0)), None

    dtype = jnp.asarray(space.low).dtype
    # Pending recipes (runs in the lab) are believed and excluded as if chosen earlier in this batch.
    carry = (jnp.concatenate([pending, jnp.zeros((q, space.dim), dtype)]),
             jnp.concatenate([pending_mask, jnp.zeros(q, dtype)]))
    (x, _), _, log_acq, _ = greedy_batch_unit(score, record, carry, space, key, q, n_starts=n_starts, n_raw=n_raw,
                                              n_steps=n_steps, learning_rate=learning_rate, active=active)
    x = x[p:]
    losses = expected_spectrum_loss(model, x, target, z, window=window)
    return SpectrumBatch(x, jnp.mean(losses, axis=0), jnp.std(losses, axis=0), log_acq)


def spectrum_gp_batch(
    model: SpectrumGP,
    space: SearchSpace,
    target,
    q: int,
    *,
    key,
    best: float,
    window=(0.7, 1.2),
    smoothness: float = 0.01,
    tau: float = 0.05,
    radius: float = 0.15,
    n_samples: int = 32,
    stride: int = 2,
    n_starts: int = 16,
    n_raw: int = 1024,
    n_steps: int = 100,
    learning_rate: float = 0.02,
    feasibility=None,
    constraints=None,
    pending=None,
    program_cache=None,
) -> SpectrumBatch:
    """``q`` feasible recipes by sequential expected improvement of the loss under a :class:`SpectrumGP`.

    Each recipe maximises :func:`log_expected_loss_improvement` after the GPs
    have believed the recipes already chosen observed at their posterior means
    (the Kriging believer: variance vanishes there, so the next pick moves
    away). Where the improvement comes from the mean alone (a flat valley of
    losses far below ``best``) the believer does not move the next pick, so
    the acquisition is also multiplied by :func:`log_exclusion`'s factor:
    no two recipes of a batch closer than about ``radius``. The draws are
    fixed for the whole batch.

    Args:
        model: fitted composite spectrum GP.
        space: bounds and constraints (every recipe satisfies them exactly).
        target: target spectrum on the model's wavelength grid, ``(w,)``.
        q: number of recipes.
        key: PRNG key (score draws and raw samples).
        best: incumbent loss, e.g. the lowest expected loss among the measured conditions.
        window, smoothness: the loss's intensity window and the width of its smooth edge while optimising.
        tau: smoothing of the improvement, in log-loss units.
        radius: width of the exclusion zone around each chosen recipe, in unit-cube
            coordinates (0.15: 15 % of each input's range). Chosen on batches of 15
            in 5 inputs, among radii from 0.03 to 0.25 (benchmarks/RESULTS.md).
        n_samples: score draws per recipe.
        stride: the acquisition evaluates every ``stride``-th wavelength (spectra are
            smooth; halves the cost). Reported losses use all wavelengths.
        feasibility: optional success classifier; its log weight is added to the log expected improvement.
        constraints: optional outcome constraints (GPs of other measured columns); the log probability
            that every bound holds is added too.
        pending: optional ``(p, d)`` recipes already being measured: believed and excluded like
            recipes chosen earlier in the batch.
        program_cache: optional :class:`~jaxopt_mat.program_cache.ProgramCache`
            that keeps the compiled program between processes (used by the CLI).

    Returns:
        :class:`SpectrumBatch`: recipes with the posterior mean and spread of their exact loss,
        and the log expected improvement at which each was chosen.
    """
    k_z, k_opt = jax.random.split(key)
    dtype = jnp.asarray(model.mean).dtype
    z = jax.random.normal(k_z, (n_samples, model.n_components), dtype=dtype)
    args = (model, space, k_opt, jnp.asarray(target), z,
            *(jnp.asarray(v, dtype) for v in (best, window, smoothness, tau, radius, learning_rate)), feasibility,
            constraints, *pad_pending(pending, space.dim, dtype))
    return _cached(program_cache, "spectrum_gp_batch", _spectrum_gp_batch, args, q,
                   dict(stride=stride, n_starts=n_starts, n_raw=n_raw, n_steps=n_steps))
