"""Pareto dominance, hypervolume and the box decomposition of the non-dominated region.

Maximisation convention throughout: a point dominates another if it is at
least as large in every objective and larger in one. ``ref`` is the reference
point every counted point must dominate.

The non-dominated region (what a new point can still add) is cut into boxes
by the grid of the front's coordinates (Lacour, Klamroth & Fonseca, "A box
decomposition algorithm to compute the hypervolume indicator", Computers &
Operations Research 2017, describe faster constructions; the grid is exact and
simple for the fronts of a lab campaign). For two objectives the staircase
gives ``p + 1`` boxes directly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.padded import on_device


def non_dominated_mask(points, valid=None):
    """``(n,)`` boolean: which rows of ``points`` ``(n, m)`` no other valid row dominates.

    Duplicates do not dominate each other (both are kept). ``valid`` masks rows out.
    Host (numpy) inputs are answered by numpy, so a front whose size changes
    every round compiles nothing; JAX arrays and tracers by ``jax.numpy``.
    """
    xp = jnp if isinstance(points, jax.Array) or isinstance(valid, jax.Array) else np
    p = xp.asarray(points)
    valid = xp.ones(p.shape[0], bool) if valid is None else xp.asarray(valid, bool)
    ge = xp.all(p[:, None, :] >= p[None, :, :], axis=-1)  # ge[j, i]: j >= i everywhere
    gt = xp.any(p[:, None, :] > p[None, :, :], axis=-1)
    dominated = xp.any((ge & gt) & valid[:, None], axis=0)
    return valid & ~dominated


def _hv2(points, ref, valid):
    """Exact 2-objective hypervolume by sort and sweep (jit/vmap/grad-safe)."""
    ok = valid & jnp.all(points > ref, axis=-1)
    x = jnp.where(ok, points[:, 0], ref[0])
    y = jnp.where(ok, points[:, 1], ref[1])
    order = jnp.argsort(-x)
    x, y = x[order], y[order]
    prev = jnp.concatenate([ref[1:2], jax.lax.cummax(y)[:-1]])
    return jnp.sum((x - ref[0]) * jnp.maximum(y - prev, 0.0))


def _grid_edges(points, ref, valid):
    """Per objective: sorted coordinates of the valid points above ``ref``, with ``ref`` first."""
    m = points.shape[1]
    edges = []
    for d in range(m):
        c = jnp.where(valid & (points[:, d] > ref[d]), points[:, d], ref[d])
        edges.append(jnp.concatenate([ref[d : d + 1], jnp.sort(c)]))
    return edges  # each (n + 1,)


def _cell_dominated(points, ref, valid, edges):
    """Boolean array over grid cells ``(n+1,)*m``: cell [e_i, e_{i+1}] is dominated by some point.

    The last cell of each axis is unbounded above (``+inf``) and never dominated.
    """
    uppers = [jnp.concatenate([e[1:], jnp.array([jnp.inf], e.dtype)]) for e in edges]
    grids = jnp.meshgrid(*uppers, indexing="ij")
    corner = jnp.stack([g.reshape(-1) for g in grids], axis=-1)  # (cells, m)
    ok = valid & jnp.all(points > ref, axis=-1)
    dom = jnp.any(jnp.all(points[None, :, :] >= corner[:, None, :], axis=-1) & ok[None, :], axis=1)
    return dom.reshape(grids[0].shape)


def hypervolume(points, ref, valid=None):
    """Exact hypervolume dominated by ``points`` ``(n, m)`` above ``ref`` ``(m,)`` (maximisation).

    Two objectives: sort and sweep, O(n log n). Three or more: sum over the
    dominated cells of the coordinate grid, O(n^(m+1)), exact. Points that do
    not dominate ``ref`` contribute nothing. jit/vmap-safe; differentiable in
    the points for two objectives.

    Example:
        >>> float(hypervolume(jnp.array([[2.0, 1.0], [1.0, 2.0]]), jnp.zeros(2)))
        3.0
    """
    p = jnp.asarray(points)
    ref = jnp.asarray(ref, p.dtype)
    valid = jnp.ones(p.shape[0], bool) if valid is None else jnp.asarray(valid, bool)
    if p.shape[1] == 2:
        return _hv2(p, ref, valid)
    edges = _grid_edges(p, ref, valid)
    dom = _cell_dominated(p, ref, valid, edges)
    widths = [jnp.diff(e) for e in edges]  # (n,) finite cells only
    finite = dom[tuple(slice(0, -1) for _ in edges)]
    vol = finite.astype(p.dtype)
    for d, w in enumerate(widths):
        shape = [1] * len(widths)
        shape[d] = -1
        vol = vol * w.reshape(shape)
    return jnp.sum(vol)


class BoxDecomposition(NamedTuple):
    """Disjoint boxes ``[lower, upper]`` covering the non-dominated region above ``ref``.

    Attributes:
        lower, upper: ``(k, m)``; ``upper`` may be ``+inf``.
        mask: ``(k,)`` 1 for boxes in the region, 0 for padding or dominated cells.
    """

    lower: jnp.ndarray
    upper: jnp.ndarray
    mask: jnp.ndarray


def non_dominated_boxes(front, ref, valid=None) -> BoxDecomposition:
    """Box decomposition of the region a new point can improve (maximisation).

    Two objectives: the ``p + 1`` boxes of the staircase, in order (box ``k``
    spans the first objective up to where box ``k - 1`` begins, and the second
    up to infinity; :func:`~jaxopt_mat.acquisition.ehvi.ehvi_from_boxes` relies
    on it). More: the
    non-dominated cells of the coordinate grid (``(p + 1)^m`` slots, masked).
    Shapes depend only on ``front.shape``, so new data of the same size reuse
    compiled code.
    """
    f = jnp.asarray(front)
    ref = jnp.asarray(ref, f.dtype)
    valid = jnp.ones(f.shape[0], bool) if valid is None else jnp.asarray(valid, bool)
    keep = non_dominated_mask(f, valid) & jnp.all(f > ref, axis=-1)
    m = f.shape[1]
    inf = jnp.asarray(jnp.inf, f.dtype)
    if m == 2:
        x = jnp.where(keep, f[:, 0], -inf)
        order = jnp.argsort(-x)
        xs, ys, ks = f[order, 0], f[order, 1], keep[order]
        # Kept points first (largest x first); their y increases along the staircase.
        n = f.shape[0]
        count = jnp.sum(ks)
        idx = jnp.arange(n + 1)
        x_hi = jnp.where(idx == 0, inf, jnp.concatenate([xs[:1], xs])[idx])
        x_lo = jnp.where(idx < count, jnp.concatenate([xs, ref[:1]])[idx], ref[0])
        y_lo = jnp.where(idx == 0, ref[1], jnp.concatenate([ys[:1], ys])[idx])
        x_hi = jnp.where(idx == 0, inf, x_hi)
        lower = jnp.stack([x_lo, y_lo], axis=-1)
        upper = jnp.stack([x_hi, jnp.full(n + 1, inf)], axis=-1)
        mask = (idx <= count).astype(f.dtype)
        return BoxDecomposition(lower, upper, mask)
    edges = _grid_edges(f, ref, keep)
    dom = _cell_dominated(f, ref, keep, edges)
    uppers = [jnp.concatenate([e[1:], jnp.array([jnp.inf], e.dtype)]) for e in edges]
    lo = jnp.stack([g.reshape(-1) for g in jnp.meshgrid(*edges, indexing="ij")], axis=-1)
    hi = jnp.stack([g.reshape(-1) for g in jnp.meshgrid(*uppers, indexing="ij")], axis=-1)
    # Cells of zero width (repeated coordinates, padding at ref) add nothing.
    mask = (~dom.reshape(-1) & jnp.all(hi > lo, axis=-1)).astype(f.dtype)
    return BoxDecomposition(lo, hi, mask)


def default_reference(values: np.ndarray, *, margin: float = 0.1) -> np.ndarray:
    """Reference point from observed values (maximisation): the worst value of each
    objective minus ``margin`` times its observed range (BoTorch's heuristic uses a
    similar offset below the nadir)."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = values.min(axis=0), values.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(lo), 1.0))
    return lo - margin * span


def hypervolume_history(values_max: np.ndarray, batches: np.ndarray, ref: np.ndarray) -> list[float]:
    """Hypervolume of the points recorded up to each batch (maximisation form), one value per batch."""
    values_max, batches = np.asarray(values_max), np.asarray(batches)
    n = values_max.shape[0]
    size = max(16, 1 << (n - 1).bit_length())  # padded: one compiled program as the campaign grows
    padded = np.zeros((size, values_max.shape[1]), values_max.dtype)
    padded[:n] = values_max
    batch_of = np.full(size, np.iinfo(np.int64).max)  # padding rows belong to no batch
    batch_of[:n] = batches
    padded, ref = on_device(padded), on_device(ref, values_max.dtype)
    return [float(_masked_hypervolume(padded, ref, batch_of <= b)) for b in sorted(set(batches.tolist()))]


@jax.jit
def _masked_hypervolume(points, ref, valid):
    return hypervolume(points, ref, valid)
