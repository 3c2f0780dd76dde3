"""From recorded measurements to model-ready arrays."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Conditions(NamedTuple):
    """Unique conditions with their replicates combined.

    Attributes:
        x: unique conditions, shape ``(k, d)``, in order of first appearance.
        y: median of each condition's replicates, shape ``(k,)`` (or ``(k, m)``).
        counts: number of replicates of each condition, shape ``(k,)``.
        index: for every original row, the condition it belongs to, shape ``(n,)``.
    """

    x: np.ndarray
    y: np.ndarray
    counts: np.ndarray
    index: np.ndarray


def combine_replicates(x, y, *, decimals: int = 9) -> Conditions:
    """Group rows with the same inputs and take the median of their targets.

    The median is the silver-nanoparticle study's choice: droplet measurements
    have occasional outliers that a mean would follow. Inputs are compared after
    rounding to ``decimals`` significant digits so that values that went through
    a CSV file still match.

    Args:
        x: inputs, shape ``(n, d)``.
        y: targets, shape ``(n,)`` or ``(n, m)``; NaN entries are ignored in the
            median (a replicate whose one objective is missing still counts for
            the others).

    Example:
        >>> c = combine_replicates([[1.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
        >>> c.y
        array([2., 5.])
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (n, d) and y (n,) or (n, m); got {x.shape} and {y.shape}")
    if x.shape[0] == 0:
        return Conditions(x, y, np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    keys = np.array([float(f"{v:.{decimals - 1}e}") for v in x.ravel()]).reshape(x.shape)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # Renumber groups in order of first appearance.
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    index = rank[inverse]
    k = order.size
    ux = x[np.sort(first)]
    counts = np.bincount(index, minlength=k)
    uy = y[np.sort(first)]  # each condition's first row: its median when it has no replicates
    for g in np.flatnonzero(counts > 1):
        uy[g] = np.nanmedian(y[index == g], axis=0)
    return Conditions(ux, uy, counts, index)


# Pseudo-replicates of the pooled spread that shrink each condition's own spread (an inverse-gamma prior).
PRIOR_REPLICATES = 4.0


def replicate_noise_columns(conditions: Conditions, y_rows) -> np.ndarray:
    """:func:`replicate_noise_variance` of every column of ``y_rows`` ``(n,)`` or ``(n, m)``, shaped like ``conditions.y``."""
    y_rows = np.asarray(y_rows, dtype=np.float64)
    if y_rows.ndim == 1:
        return replicate_noise_variance(conditions, y_rows)
    return np.stack([replicate_noise_variance(conditions, y_rows[:, j]) for j in range(y_rows.shape[1])], axis=1) \
        if y_rows.shape[1] else np.zeros((conditions.x.shape[0], 0))


def median_efficiency(n) -> np.ndarray:
    """Variance of the median of ``n`` normal replicates over that of their mean: 1 up to 2, towards pi/2 beyond.

    ``pi/2 * n / (n + 1/2)`` for ``n >= 3`` (0.449 / 0.333 = 1.35 at 3, 1.43 at 5, exact in the limit).
    """
    n = np.asarray(n, dtype=np.float64)
    return np.where(n <= 2, 1.0, 0.5 * np.pi * n / (n + 0.5))


def replicate_noise_variance(conditions: Conditions, y_rows, *,
                             prior_replicates: float = PRIOR_REPLICATES) -> np.ndarray:
    """The noise variance of each condition's median, as its replicates tell it (units of ``y`` squared).

    Each condition's spread ``s_i^2`` (sample variance of its replicates) is
    shrunk towards the spread pooled over all conditions, ``v_i = (k s^2 +
    (n_i - 1) s_i^2) / (k + n_i - 1)`` with ``k = prior_replicates`` (a single
    measurement gets the pooled spread), and its median of ``n_i`` replicates
    has variance ``v_i e(n_i) / n_i`` (:func:`median_efficiency`): a median of
    ten droplets is better known than one. Without any replicate there is
    nothing to tell: all zeros. A GP adds these to a common noise level it
    still learns (``fit_gp(noise_variance=)``), which covers what replicates
    cannot see (drift between runs, the model's misfit).

    Args:
        conditions: :func:`combine_replicates` of the rows.
        y_rows: ``(n,)`` the per-row targets that were combined (NaN entries are ignored).
    """
    y_rows = np.asarray(y_rows, dtype=np.float64).reshape(-1)
    k = conditions.x.shape[0]
    counts = np.zeros(k)
    spread = np.zeros(k)
    for g in range(k):
        values = y_rows[conditions.index == g]
        values = values[np.isfinite(values)]
        counts[g] = values.size
        spread[g] = np.var(values, ddof=1) if values.size >= 2 else 0.0
    dof = np.maximum(counts - 1.0, 0.0)
    if np.sum(dof) == 0:
        return np.zeros(k)
    pooled = float(np.sum(dof * spread) / np.sum(dof))
    weight = prior_replicates + dof
    shrunk = np.where(weight > 0, (prior_replicates * pooled + dof * spread) / np.where(weight > 0, weight, 1.0),
                      pooled)
    return shrunk * median_efficiency(counts) / np.maximum(counts, 1.0)
