"""Maximise over mixed spaces: categorical choices, integers, discrete levels and continuous inputs together.

Three regimes, all traceable (one compiled call, like the continuous maximiser):

- **every input has finitely many values** (categorical, integer, discrete) and
  the lattice holds at most :data:`MAX_ENUMERATED` points: every point is
  scored, in chunks, like a candidate pool, and the best feasible one is exact;
- **few category combinations** (at most :data:`MAX_COMBINATIONS`): every
  combination gets starts of its own and the gradient maximiser runs on all of
  them at once, the labels held fixed (one ``vmap``-shaped batch: what would be
  one optimisation per combination elsewhere);
- **many combinations**: starts with random labels alternate gradient steps on
  the continuous part with moves to the best neighbouring label set (one input's
  label exchanged), BoTorch's alternating mixed optimiser in spirit.

Integer and discrete inputs are relaxed to the continuum for the gradient, then
rounded to their nearest values, the continuous inputs re-projected onto the
linear constraints around them, and a local search over one-step neighbours
(one integer up or down, the next discrete level) keeps the best point whose
constraints hold exactly.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.input_kinds import lattice_point, lattice_size, snap_unit, step_unit
from jaxopt_mat.ascent import ascend_unit, safe_values
from jaxopt_mat.space import SearchSpace

MAX_ENUMERATED = 1 << 22  # lattices up to this many points are scored exhaustively
MAX_COMBINATIONS = 64  # category combinations up to this count each get their own starts
_CHUNK = 4096
_ROUNDS = 3  # gradient / label-exchange rounds when combinations are many
_LOCAL_ROUNDS = 2  # rounds of the integer / discrete neighbour search


def free_categorical_columns(space: SearchSpace) -> list[int]:
    """Categorical coordinates not fixed to one label."""
    return [j for j, k in enumerate(space.kinds) if k.is_categorical and k.fixed is None]


def n_combinations(space: SearchSpace) -> int:
    """How many label combinations the free categorical inputs make."""
    return math.prod(len(space.choices[j]) for j in free_categorical_columns(space))


def maximize_mixed_unit(fn_unit, space: SearchSpace, key, *, n_starts, n_raw, n_steps, learning_rate,
                        init_unit=None):
    """:func:`jaxopt_mat.optimize.maximize_unit` for a mixed space; returns ``(best_u, best_value, us, values)``.

    Every returned point takes allowed values for every input; its value is
    ``-inf`` when no feasible point was found from that start.
    """
    size = lattice_size(space.choices)
    if size is not None and size <= MAX_ENUMERATED:
        return maximize_enumerated_unit(fn_unit, space, n_best=n_starts, key=key)
    dtype = jnp.asarray(space.low).dtype
    k_raw, k_cat = jax.random.split(key)
    cats = free_categorical_columns(space)
    n_comb = n_combinations(space)
    per_combination = 1 < n_comb <= MAX_COMBINATIONS
    n_raw = max(n_raw, 8 * n_comb) if per_combination else n_raw
    raw = jax.random.uniform(k_raw, (n_raw, space.dim), dtype=dtype)
    if per_combination:
        raw = _set_columns(raw, cats, _combinations(space, cats, dtype)[jnp.arange(n_raw) % n_comb])
    else:
        raw = _random_labels(raw, space, cats, k_cat)
    raw = _with_fixed(raw, space)
    raw = space.repair_unit(raw) if space.n_constraints else raw
    values = safe_values(fn_unit, raw)
    if per_combination:
        per = n_raw // n_comb
        n_each = max(1, n_starts // n_comb)
        top = jax.lax.top_k(values[: per * n_comb].reshape(per, n_comb).T, n_each)[1]  # (n_comb, n_each)
        starts = raw[(top * n_comb + jnp.arange(n_comb)[:, None]).reshape(-1)]
    else:
        starts = raw[jax.lax.top_k(values, n_starts)[1]]
    if init_unit is not None:
        starts = jnp.concatenate([starts, space.project_unit(_with_fixed(space.snap_unit(init_unit), space))])
    starts = space.project_unit(starts)
    if per_combination or not cats:
        best_u, best_v = ascend_unit(fn_unit, space, starts, n_steps=n_steps, learning_rate=learning_rate)
    else:
        best_u = starts
        for _ in range(_ROUNDS):
            best_u, best_v = ascend_unit(fn_unit, space, best_u, n_steps=max(1, n_steps // _ROUNDS),
                                         learning_rate=learning_rate)
            best_u, best_v = _exchange_labels(fn_unit, space, cats, best_u, best_v)
    us, vs = round_ordered(fn_unit, space, best_u)
    i = jnp.argmax(vs)
    return us[i], vs[i], us, vs


def maximize_enumerated_unit(fn_unit, space: SearchSpace, *, n_best: int, key=None):
    """Score every point of a finite space's lattice (in chunks); the best feasible point and the ``n_best`` best.

    With ``key``, exact ties are broken at random: labels the data cannot tell apart (none of them
    measured yet) are then tried in random order, not in the order the config lists them.
    """
    choices = space.choices
    size = lattice_size(choices)
    dtype = jnp.asarray(space.low).dtype
    chunk = min(_CHUNK, size)
    n_chunks = -(-size // chunk)
    keep = min(n_best, chunk)

    def score(c):
        flat = c * chunk + jnp.arange(chunk)
        u = lattice_point(jnp.minimum(flat, size - 1), choices).astype(dtype)
        ok = flat < size
        if space.n_constraints:
            ok = ok & space.is_feasible(space.from_unit(u), atol=0.0)
        v = jnp.where(ok, safe_values(fn_unit, u), -jnp.inf)
        top_i = _best_first(v, None if key is None else jax.random.fold_in(key, c))[:keep]
        return u[top_i], v[top_i]

    us, vs = jax.lax.map(score, jnp.arange(n_chunks))
    us, vs = us.reshape(-1, space.dim), vs.reshape(-1)
    top_i = _best_first(vs, None if key is None else jax.random.fold_in(key, n_chunks))[:min(n_best, vs.shape[0])]
    return us[top_i[0]], vs[top_i[0]], us[top_i], vs[top_i]


def _best_first(v, key):
    """Indices of ``v`` from the largest value down; values equal to 1e-9 in a random order when ``key`` is given."""
    if key is None:
        return jnp.argsort(-v)
    rounded = jnp.where(jnp.isfinite(v), jnp.round(v, 9), v)
    return jnp.lexsort((jax.random.uniform(key, v.shape, v.dtype), -rounded))


def round_ordered(fn_unit, space: SearchSpace, u):
    """Round integer and discrete coordinates of ``u`` ``(n, d)``, keep the constraints exact, search neighbours.

    Returns the points and their values (``-inf`` where no feasible rounding was found).
    """
    ordered = [j for j in range(space.dim) if space.ordered[j]]
    fixed_cols = np.asarray(space.held) | np.asarray(space.ordered)

    def settle(v):
        v = snap_unit(v, space.choices)
        if space.n_constraints:
            v = space.project_unit_holding(v, fixed_cols)
        return v

    def value(v):
        ok = space.is_feasible(space.from_unit(v), atol=0.0) if space.n_constraints else True
        return jnp.where(ok, safe_values(fn_unit, v.reshape(-1, space.dim)).reshape(v.shape[:-1]), -jnp.inf)

    u = settle(u)
    v = value(u)
    if not ordered:
        return u, v
    for _ in range(_LOCAL_ROUNDS):
        moves = jnp.stack([settle(step_unit(u, space.choices, j, s)) for j in ordered for s in (-1, 1)], axis=1)
        mv = value(moves)  # (n, 2 * n_ordered)
        best = jnp.argmax(mv, axis=1)
        better = mv[jnp.arange(u.shape[0]), best] > v
        u = jnp.where(better[:, None], moves[jnp.arange(u.shape[0]), best], u)
        v = jnp.where(better, mv[jnp.arange(u.shape[0]), best], v)
    return u, v


def _exchange_labels(fn_unit, space, cats, u, v):
    """Move each point to its best neighbour that differs in one categorical input's label, if better."""
    masks, values = [], []
    for j in cats:
        for c in space.choices[j]:
            m = np.zeros(space.dim)
            m[j] = 1.0
            masks.append(m)
            values.append(m * c)
    M = jnp.asarray(np.array(masks), u.dtype)
    V = jnp.asarray(np.array(values), u.dtype)
    cand = u[:, None, :] * (1.0 - M)[None] + V[None]  # (n, N, d)
    cv = safe_values(fn_unit, cand.reshape(-1, space.dim)).reshape(cand.shape[:2])
    best = jnp.argmax(cv, axis=1)
    rows = jnp.arange(u.shape[0])
    better = cv[rows, best] > v
    return jnp.where(better[:, None], cand[rows, best], u), jnp.where(better, cv[rows, best], v)


def _combinations(space, cats, dtype):
    """Every label combination of the free categorical inputs, ``(n_comb, len(cats))``, unit coordinates."""
    grids = np.meshgrid(*[np.asarray(space.choices[j]) for j in cats], indexing="ij")
    return jnp.asarray(np.stack([g.reshape(-1) for g in grids], axis=-1), dtype)


def _set_columns(u, cols, values):
    for i, j in enumerate(cols):
        u = u.at[:, j].set(values[:, i])
    return u


def _random_labels(u, space, cats, key):
    for i, j in enumerate(cats):
        c = jnp.asarray(space.choices[j], u.dtype)
        u = u.at[:, j].set(c[jax.random.randint(jax.random.fold_in(key, i), (u.shape[0],), 0, c.shape[0])])
    return u


def _with_fixed(u, space):
    """``u`` with every fixed coordinate at its value."""
    for j, kind in enumerate(space.kinds):
        if kind.fixed is not None:
            u = u.at[..., j].set(space.choices[j][0])
    return u
