"""Objectives computed from measurements: the spectrum-matching loss.

The silver-nanoparticle study (Mekki-Berrada et al., npj Comput. Mater. 7, 55,
2021) scores a measured UV-Vis spectrum ``s`` against a target ``t`` by

    loss = 1 - cos(minmax(s), minmax(t)) * delta(max(s)),

where ``minmax`` scales a vector to [0, 1] and ``delta`` keeps the peak
absorbance in a measurable window ``[lo, hi]``: 0 above ``hi``, 1 inside, ``m/lo``
for ``0 < m < lo`` and 0 for ``m <= 0``. The loss lies in [0, 1]; 0 is a perfect
match of shape with a peak inside the window.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.padded import on_rows


def _safe_div(num, den, tiny):
    # Below ``tiny`` the denominator is treated as zero: dividing by a subnormal
    # range would overflow and poison the gradient with inf * 0.
    ok = den > tiny
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def minmax(v):
    """Scale the last axis to [0, 1]; a flat vector maps to zeros (no NaN, zero gradient)."""
    lo = jnp.min(v, axis=-1, keepdims=True)
    hi = jnp.max(v, axis=-1, keepdims=True)
    return _safe_div(v - lo, hi - lo, 1e-12 * (1.0 + jnp.abs(hi)))


def cosine_similarity(a, b):
    """Cosine of the angle between ``a`` and ``b`` along the last axis; 0 if either is zero."""
    dot = jnp.sum(a * b, axis=-1)
    na = jnp.sum(a * a, axis=-1)
    nb = jnp.sum(b * b, axis=-1)
    den2 = na * nb
    ok = den2 > 1e-200
    return jnp.where(ok, dot / jnp.sqrt(jnp.where(ok, den2, 1.0)), 0.0)


def intensity_factor(peak, window=(0.7, 1.2), smoothness=None):
    """The study's intensity window ``delta`` of a spectrum's maximum.

    With ``smoothness = tau > 0`` the jump from 1 to 0 at the upper edge becomes
    the logistic ``sigmoid((hi - peak) / tau)``; it converges to the exact factor
    as ``tau -> 0`` (everywhere but at ``peak == hi``) and gives gradient-based
    optimizers a slope to follow. ``None`` is the exact, discontinuous factor.
    """
    lo, hi = window
    rising = jnp.clip(peak / lo, 0.0, 1.0)
    if smoothness is None:
        return jnp.where(peak > hi, 0.0, rising)
    return rising * jax.nn.sigmoid((hi - peak) / smoothness)


def spectrum_loss(spectra, target, *, window=(0.7, 1.2), smoothness=None):
    """The study's spectrum loss, ``1 - cos(minmax(s), minmax(t)) * delta(max(s))``.

    Args:
        spectra: spectra on the target's wavelength grid, shape ``(..., w)``.
        target: target spectrum, shape ``(w,)`` (or broadcastable to ``spectra``).
        window: ``(lo, hi)`` of the peak-absorbance window.
        smoothness: ``None`` for the exact loss (always used for reporting);
            a positive width for the smooth factor optimizers use.

    Returns:
        Loss per spectrum, shape ``(...)``, in [0, 1]. jit/vmap/grad-safe: flat
        or all-zero spectra give loss 1 and finite (zero) gradients.

    Example:
        >>> t = jnp.exp(-((jnp.arange(421) - 150.0) / 30.0) ** 2)
        >>> float(spectrum_loss(t, t))
        0.0
    """
    cos = cosine_similarity(minmax(spectra), minmax(target))
    peak = jnp.max(spectra, axis=-1)
    return 1.0 - cos * intensity_factor(peak, window, smoothness)


@partial(jax.jit, static_argnames="window")
def _loss_rows(spectra, target, window):
    return spectrum_loss(spectra, target, window=window)


@jax.jit
def _shape_rows(spectra, target):
    return cosine_similarity(minmax(spectra), minmax(target))


@partial(jax.jit, static_argnames="window")
def _intensity_rows(peak, window):
    return intensity_factor(peak, window)


@jax.jit
def _pair_cosines(pairs):
    return cosine_similarity(pairs[:, 0], pairs[:, 1])


def cosine_similarity_rows(a, b) -> np.ndarray:
    """:func:`cosine_similarity` of each row of ``a`` with the same row of ``b`` (``(n, w)`` each), as numpy."""
    return on_rows(_pair_cosines, np.stack([np.asarray(a), np.asarray(b)], axis=1))


def spectrum_loss_rows(spectra, target, *, window=(0.7, 1.2)) -> np.ndarray:
    """:func:`spectrum_loss` (exact) of a table of measured spectra ``(n, w)``, outside ``jit``, as numpy
    (one compiled program per 64 rows: :func:`~jaxopt_mat.padded.on_rows`)."""
    return on_rows(_loss_rows, spectra, np.asarray(target), window=tuple(float(w) for w in window))


def shape_similarity_rows(spectra, target) -> np.ndarray:
    """``cos(minmax(s), minmax(t))`` of each row of ``spectra`` ``(n, w)``, outside ``jit``, as numpy."""
    return on_rows(_shape_rows, spectra, np.asarray(target))


def intensity_factor_rows(peak, window=(0.7, 1.2)) -> np.ndarray:
    """The exact :func:`intensity_factor` of each of the peak absorbances ``(n,)``, outside ``jit``, as numpy."""
    return on_rows(_intensity_rows, peak, window=tuple(float(w) for w in window))


# The floor under a loss before its log: the log of the loss then stays finite when a loss is 0.
LOSS_FLOOR = 1e-4


def capped_log_loss(losses) -> np.ndarray:
    """``log(min(loss, median loss) + LOSS_FLOOR)``: what GPs of a spectrum loss model (same order of the good ones).

    Spectrum losses span orders of magnitude near the optimum and jump to 1
    where the peak leaves the intensity window; a GP fitted to that jump
    undershoots beside it and sends log-EI into predicted holes. Losses worse
    than the median are flattened to it (the jump disappears), and the log
    spreads out the differences between good recipes.

    Example:
        >>> capped_log_loss([0.01, 0.5, 1.0]).round(3)
        array([-4.595, -0.693, -0.693])
    """
    y = np.asarray(losses, dtype=np.float64)
    if y.size == 0:
        return y
    return np.log(np.minimum(y, float(np.median(y))) + LOSS_FLOOR)
