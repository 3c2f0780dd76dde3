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
    uy = np.stack([np.nanmedian(y[index == g], axis=0) for g in range(k)])
    return Conditions(ux, uy, counts, index)
