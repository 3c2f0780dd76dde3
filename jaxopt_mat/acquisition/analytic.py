"""Analytic single-point acquisition functions of a Gaussian posterior.

All take the posterior mean and standard deviation (any matching shapes) and
follow the maximisation convention by default; ``maximize=False`` scores
improvement below the incumbent instead. Every function is elementwise and
jit/vmap/grad-safe.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import erfcx, log_ndtr, ndtr

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_SQRT_PI_OVER_2 = 0.5 * math.log(math.pi / 2.0)
_MIN_STD = 1e-12


def _log1mexp(x):
    """``log(1 - exp(x))`` for ``x < 0``, accurate on both sides of -log 2 (Mächler 2012)."""
    return jnp.where(x > -math.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def log_h(z):
    """``log(phi(z) + z * Phi(z))``, the log of expected improvement for unit variance.

    Direct for ``z > -1``; for ``z <= -1`` rewritten with the scaled complementary
    error function so that it stays finite and accurate far into the tail
    (Ament et al., "Unexpected Improvements to Expected Improvement for Bayesian
    Optimization", NeurIPS 2023, eq. 9). Both branches are evaluated at safe
    arguments (the double-``where`` trick) so no NaN reaches the gradient.
    """
    z_hi = jnp.where(z > -1.0, z, -1.0)
    z_lo = jnp.where(z > -1.0, -1.0, z)
    hi = jnp.log(jnp.exp(-0.5 * z_hi**2 - _LOG_SQRT_2PI) + z_hi * ndtr(z_hi))
    # phi(z) + z Phi(z) = phi(z) (1 - |z| sqrt(pi/2) erfcx(|z|/sqrt 2)) for z < 0.
    inner = jnp.log(erfcx(-z_lo / math.sqrt(2.0)) * jnp.abs(z_lo)) + _LOG_SQRT_PI_OVER_2
    # Far tail: 1 - |z| R(|z|) ~ 1/z^2; switch before the difference loses all digits.
    tail = -2.0 * jnp.log(jnp.abs(z_lo))
    far = z_lo < -1e3 if z_lo.dtype == jnp.float64 else z_lo < -60.0
    lo = -0.5 * z_lo**2 - _LOG_SQRT_2PI + jnp.where(far, tail, _log1mexp(jnp.where(far, -1.0, inner)))
    return jnp.where(z > -1.0, hi, lo)


def _standardize(mean, std, best, maximize):
    std = jnp.maximum(std, _MIN_STD)
    diff = mean - best if maximize else best - mean
    return diff / std, std


def log_expected_improvement(mean, std, best, *, maximize: bool = True):
    """Logarithm of expected improvement over ``best``.

    Finite (never -inf or NaN) however far below the incumbent a point is, so
    gradient-based maximisation sees a slope everywhere.

    Args:
        mean, std: posterior mean and standard deviation (broadcastable).
        best: incumbent value.
        maximize: ``True`` scores improvement above ``best``; ``False`` below.

    Example:
        >>> float(log_expected_improvement(0.0, 1.0, 0.0))  # log(phi(0))
        -0.9189...
    """
    z, std = _standardize(mean, std, best, maximize)
    return log_h(z) + jnp.log(std)


def expected_improvement(mean, std, best, *, maximize: bool = True):
    """Expected improvement over ``best`` (underflows to 0 in the tail; prefer the log form)."""
    return jnp.exp(log_expected_improvement(mean, std, best, maximize=maximize))


def log_probability_of_improvement(mean, std, best, *, maximize: bool = True):
    """``log P(f > best)`` (or ``P(f < best)``), finite in the tail via ``log_ndtr``."""
    z, _ = _standardize(mean, std, best, maximize)
    return log_ndtr(z)


def probability_of_improvement(mean, std, best, *, maximize: bool = True):
    """Probability of improving on ``best``."""
    return jnp.exp(log_probability_of_improvement(mean, std, best, maximize=maximize))


def upper_confidence_bound(mean, std, *, beta: float = 4.0, maximize: bool = True):
    """Optimistic bound ``mean + sqrt(beta) * std`` (``-(mean - sqrt(beta) std)`` when minimising).

    Srinivas et al., "Gaussian Process Optimization in the Bandit Setting", ICML 2010.
    Returned so that larger is always better for the optimizer.
    """
    width = jnp.sqrt(beta) * std
    return mean + width if maximize else -(mean - width)
