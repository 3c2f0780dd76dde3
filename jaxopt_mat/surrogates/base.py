"""What every surrogate returns: a Gaussian posterior per point."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp


class Posterior(NamedTuple):
    """Marginal predictive distribution at a batch of points.

    Attributes:
        mean: predictive mean, shape ``(n,)`` (or ``(n, m)`` for several outputs).
        var: predictive variance of the latent function, same shape, >= a small floor.
    """

    mean: jnp.ndarray
    var: jnp.ndarray

    @property
    def std(self) -> jnp.ndarray:
        return jnp.sqrt(self.var)
