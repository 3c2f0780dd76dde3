"""Input kinds: continuous, integer, discrete levels, categorical choices, and values fixed for one batch.

A :class:`~jaxopt_mat.space.SearchSpace` keeps one coordinate per input. A
categorical input's coordinate is the index of its label (0, 1, ... k-1); an
integer input's is the integer; a discrete input's is its level. Every kind
but "continuous" has a finite set of *choices*, and :func:`snap_unit` moves a
point of the unit cube onto the nearest allowed value of each coordinate.

Two kinds of coordinate behave differently under a gradient maximiser:

- *held* coordinates (categorical inputs, and any input fixed to one value)
  are never moved by a gradient: a label has no neighbour "between" two others.
  They change only by enumeration or by exchanging one label for another;
- *ordered* coordinates (integer and discrete inputs) keep their order: they
  are relaxed to the continuum while a gradient moves them, then rounded.

:class:`FeatureMap` is how a GP sees the inputs: a categorical index becomes a
one-hot block (every two labels equally far apart, so the kernel is invariant
to the order of the labels and has one length-scale per input) or the label's
row of a descriptor table (descriptors are continuous coordinates with a
length-scale each). Everything here is static (hashable) so that it can live in
the auxiliary data of a pytree and in jitted code.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np

KINDS = ("continuous", "integer", "discrete", "categorical")


@dataclasses.dataclass(frozen=True)
class InputKind:
    """The kind of one input.

    Attributes:
        kind: one of :data:`KINDS`.
        levels: discrete inputs: the allowed values, increasing.
        labels: categorical inputs: the labels; coordinate ``i`` is ``labels[i]``.
        descriptors: categorical inputs: one row of numbers per label (empty: one-hot).
        fixed: a value (physical units; a categorical input's index) every point takes,
            or ``None``.
    """

    kind: str = "continuous"
    levels: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    descriptors: tuple[tuple[float, ...], ...] = ()
    fixed: float | None = None

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"

    @property
    def is_held(self) -> bool:
        """Never moved by a gradient: categorical, or fixed to one value."""
        return self.is_categorical or self.fixed is not None

    @property
    def is_ordered(self) -> bool:
        """Integer or discrete, not fixed: relaxed for gradients, then rounded."""
        return self.kind in ("integer", "discrete") and self.fixed is None

    def choices(self, low: float, high: float) -> np.ndarray | None:
        """The allowed values in physical units (``None``: a continuum)."""
        if self.fixed is not None:
            return np.array([float(self.fixed)])
        if self.kind == "integer":
            return np.arange(math.ceil(low - 1e-9), math.floor(high + 1e-9) + 1, dtype=np.float64)
        if self.kind == "discrete":
            return np.asarray(self.levels, dtype=np.float64)
        if self.kind == "categorical":
            return np.arange(len(self.labels), dtype=np.float64)
        return None


CONTINUOUS = InputKind()


def choices_unit(kinds, low, high) -> tuple[tuple[float, ...] | None, ...]:
    """Each coordinate's choices in unit-cube coordinates (``None`` for a continuum)."""
    out = []
    for kind, lo, hi in zip(kinds, np.asarray(low), np.asarray(high)):
        c = kind.choices(lo, hi)
        out.append(None if c is None else tuple(float(v) for v in (c - lo) / (hi - lo)))
    return tuple(out)


def snap_unit(u, choices, *, columns=None):
    """``u`` ``(..., d)`` with each coordinate that has choices moved to its nearest choice.

    ``columns`` restricts the snapping to those coordinates. Jit- and vmap-safe;
    the snapped coordinates have zero gradient.
    """
    cols = [j for j, c in enumerate(choices) if c is not None and (columns is None or j in columns)]
    for j in cols:
        c = jnp.asarray(choices[j], dtype=u.dtype)
        nearest = c[jnp.argmin(jnp.abs(u[..., j, None] - c), axis=-1)]
        u = u.at[..., j].set(nearest)
    return u


def step_unit(u, choices, j: int, direction: int):
    """``u`` with coordinate ``j`` moved to the next choice up (``direction = 1``) or down (-1), clipped at the ends."""
    c = jnp.asarray(choices[j], dtype=u.dtype)
    i = jnp.argmin(jnp.abs(u[..., j, None] - c), axis=-1)
    return u.at[..., j].set(c[jnp.clip(i + direction, 0, c.shape[0] - 1)])


def lattice_size(choices) -> int | None:
    """The number of points when every coordinate has choices (``None`` if one is a continuum)."""
    if any(c is None for c in choices):
        return None
    return int(np.prod([len(c) for c in choices], dtype=object))


def lattice_point(flat, choices):
    """The points of the lattice with flat indices ``flat`` ``(n,)`` (last coordinate fastest), unit cube."""
    coords = []
    for c in reversed(choices):
        table = jnp.asarray(c)
        coords.append(table[flat % len(c)])
        flat = flat // len(c)
    return jnp.stack(coords[::-1], axis=-1)


# ---------------------------------------------------------------------------
# What a GP sees


@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """Unit-cube inputs to kernel features: one-hot blocks or descriptor rows for categorical inputs.

    Attributes:
        blocks: per input, ``()`` for a coordinate used as it is, ``("onehot", k)``
            or ``("table", rows)`` with ``rows`` the label's descriptor row, scaled
            to ``[0, 1]`` per column.
        groups: per feature, the index of its length-scale.
        n_groups: the number of length-scales.
        names: a name per length-scale (the input's, or ``input:descriptor k``).
    """

    blocks: tuple
    groups: tuple[int, ...]
    n_groups: int
    names: tuple[str, ...]

    def __call__(self, u):
        """Features ``(n, D)`` of unit-cube points ``u`` ``(n, d)``."""
        parts = []
        for j, block in enumerate(self.blocks):
            col = u[:, j]
            if not block:
                parts.append(col[:, None])
                continue
            k = block[1] if block[0] == "onehot" else len(block[1])
            index = jnp.clip(jnp.round(col * (k - 1)), 0, k - 1).astype(jnp.int32)
            if block[0] == "onehot":
                # Two different labels are at distance 1, like the two ends of a continuous input.
                parts.append(jnp.eye(k, dtype=u.dtype)[index] / math.sqrt(2.0))
            else:
                parts.append(jnp.asarray(block[1], dtype=u.dtype)[index])
        return jnp.concatenate(parts, axis=1)

    def lengthscales(self, per_group):
        """Each feature's length-scale from one per group."""
        return per_group[jnp.asarray(self.groups)]


def feature_map(kinds, names) -> FeatureMap | None:
    """The GP's view of inputs of these kinds; ``None`` when every coordinate is used as it is."""
    if not any(k.is_categorical for k in kinds):
        return None
    blocks, groups, group_names = [], [], []
    for kind, name in zip(kinds, names):
        if not kind.is_categorical:
            blocks.append(())
            groups.append(len(group_names))
            group_names.append(name)
        elif not kind.descriptors:
            blocks.append(("onehot", len(kind.labels)))
            groups += [len(group_names)] * len(kind.labels)
            group_names.append(name)
        else:
            table = np.asarray(kind.descriptors, dtype=np.float64)
            lo, hi = table.min(axis=0), table.max(axis=0)
            keep = hi > lo
            scaled = (table[:, keep] - lo[keep]) / (hi[keep] - lo[keep])
            blocks.append(("table", tuple(tuple(float(v) for v in r) for r in scaled)))
            for k in range(scaled.shape[1]):
                groups.append(len(group_names))
                group_names.append(f"{name}:{k + 1}")
    return FeatureMap(tuple(blocks), tuple(groups), len(group_names), tuple(group_names))
