"""Recipes whose predicted spectrum best matches a target, found by gradient descent.

The score of a recipe is the negative lower confidence bound of its loss under
the ensemble: ``-(mean_m L_m - kappa * std_m L_m)``, where ``L_m`` is the smooth
spectrum loss of member ``m``'s predicted spectrum. ``kappa = 0`` exploits the
ensemble mean; larger values favour recipes the members disagree on. A batch of
distinct recipes is built greedily: each new recipe maximises the score minus a
Gaussian repulsion from the recipes already chosen (in unit-cube coordinates).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_mat.objectives import spectrum_loss
from jaxopt_mat.optimize import maximize_unit
from jaxopt_mat.space import SearchSpace
from jaxopt_mat.surrogates.spectrum_net import SpectrumEnsemble


class SpectrumBatch(NamedTuple):
    """Recipes chosen for a target, with the ensemble's view of each.

    Attributes:
        x: recipes, shape ``(q, d)``.
        loss_mean, loss_std: exact loss of the members' spectra, mean and spread, ``(q,)``.
    """

    x: jnp.ndarray
    loss_mean: jnp.ndarray
    loss_std: jnp.ndarray


def member_losses(ensemble: SpectrumEnsemble, x, target, window, smoothness=None):
    """Loss of every member's predicted spectrum, shape ``(members, n)``."""
    return spectrum_loss(ensemble.member_spectra(x), target, window=window, smoothness=smoothness)


def lower_confidence_score(x, ensemble, target, window, smoothness, kappa):
    """``-(mean - kappa * std)`` of the members' smooth losses: larger is better."""
    losses = member_losses(ensemble, x, target, window, smoothness)
    return -(jnp.mean(losses, axis=0) - kappa * jnp.std(losses, axis=0))


@partial(jax.jit, static_argnames=("q", "n_starts", "n_raw", "n_steps"))
def _spectrum_batch(ensemble, space, key, target, window, smoothness, kappa, repulsion, radius, learning_rate,
                    *, q, n_starts, n_raw, n_steps):
    d = space.dim

    def body(carry, k):
        chosen, mask = carry

        def fn_unit(u):
            score = lower_confidence_score(space.from_unit(u), ensemble, target, window, smoothness, kappa)
            d2 = jnp.sum((u[:, None, :] - chosen[None]) ** 2, axis=-1)
            return score - repulsion * jnp.sum(mask * jnp.exp(-0.5 * d2 / radius**2), axis=-1)

        bu, _, _, _ = maximize_unit(fn_unit, space, jax.random.fold_in(key, k), n_starts=n_starts, n_raw=n_raw,
                                    n_steps=n_steps, learning_rate=learning_rate)
        return (chosen.at[k].set(bu), mask.at[k].set(1.0)), None

    dtype = jnp.asarray(space.low).dtype
    (chosen, _), _ = jax.lax.scan(body, (jnp.zeros((q, d), dtype), jnp.zeros(q, dtype)), jnp.arange(q))
    x = space.from_unit(chosen)
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

    Returns:
        :class:`SpectrumBatch` with the exact predicted loss of each recipe.
    """
    return _spectrum_batch(
        ensemble, space, key, jnp.asarray(target), jnp.asarray(window), smoothness, kappa, repulsion, radius,
        learning_rate, q=q, n_starts=n_starts, n_raw=n_raw, n_steps=n_steps,
    )
