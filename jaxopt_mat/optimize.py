"""Maximise a differentiable function over a search space, and the baselines it beats.

:func:`maximize` is a multi-start projected-gradient method: it scores many
feasible raw samples, starts Adam from the best of them (and from any points the
caller adds, e.g. around the best observations), projects every iterate back
into the bounds and linear constraints, and keeps the best feasible point each
start visited. All starts move together as one batch in one compiled call.

:func:`maximize_grid` and :func:`maximize_random` evaluate the same function on
a dense grid or on random feasible points; they are the baselines the gradient
method is benchmarked against.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.ascent import ascend_unit, safe_values, sample_feasible_unit, scale_by_row_adam  # noqa: F401 (API)
from jaxopt_mat.errors import ConfigError
from jaxopt_mat.optimize_mixed import maximize_mixed_unit
from jaxopt_mat.padded import on_device
from jaxopt_mat.space import SearchSpace


class MaximizeResult(NamedTuple):
    """Outcome of a maximisation.

    Attributes:
        x: best feasible point found, physical units, shape ``(d,)``.
        value: its function value.
        xs: the best point of every start, shape ``(n_starts, d)``.
        values: their values, shape ``(n_starts,)``.
    """

    x: jnp.ndarray
    value: jnp.ndarray
    xs: jnp.ndarray
    values: jnp.ndarray


def maximize_unit(fn_unit, space: SearchSpace, key, *, n_starts, n_raw, n_steps, learning_rate, init_unit=None):
    """Traceable core of :func:`maximize` over unit-cube coordinates.

    ``fn_unit`` maps ``(n, d)`` unit-cube points to ``(n,)`` values. Meant to be
    called inside ``jit`` (it is what :func:`maximize` and the batch methods use).
    Spaces with integer, discrete, categorical or fixed inputs go to
    :func:`jaxopt_mat.optimize_mixed.maximize_mixed_unit`.
    Returns ``(best_u, best_value, starts_u, start_values)``.
    """
    if space.is_mixed:
        return maximize_mixed_unit(fn_unit, space, key, n_starts=n_starts, n_raw=n_raw, n_steps=n_steps,
                                   learning_rate=learning_rate, init_unit=init_unit)
    k_raw, _ = jax.random.split(key)
    raw = sample_feasible_unit(space, k_raw, n_raw)
    raw_values = safe_values(fn_unit, raw)
    top = jax.lax.top_k(raw_values, n_starts)[1]
    starts = raw[top]
    if init_unit is not None:
        starts = jnp.concatenate([starts, space.project_unit(init_unit)], axis=0)
    best_u, best_v = ascend_unit(fn_unit, space, space.project_unit(starts), n_steps=n_steps,
                                 learning_rate=learning_rate)
    i = jnp.argmax(best_v)
    return best_u[i], best_v[i], best_u, best_v


# Pending rows are padded to one of these counts, so a batch's compiled program serves many pending counts.
PENDING_SIZES = (8, 16, 32, 64, 128, 256)


def padded_size(p: int, *, at_least: int = 0) -> int:
    """The row count :func:`pad_pending` pads ``p`` rows to (0 stays 0), and at least ``at_least``."""
    if p == 0:
        return at_least
    size = next((s for s in PENDING_SIZES if s >= p), -(-p // PENDING_SIZES[-1]) * PENDING_SIZES[-1])
    return max(size, at_least)


def pad_pending(pending, d: int, dtype, *, at_least: int = 0) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``pending`` ``(p, d)`` (or ``None``) padded with zero rows to the next of :data:`PENDING_SIZES`.

    Returns the padded rows and their mask (1 for a real row). No pending rows
    give ``(0, d)`` and ``(0,)``; beyond the largest size, the next multiple of it;
    ``at_least`` rows in any case. A sequential batch builder puts these rows into its state before the first
    pick, as if they had been chosen already (runs still in the lab).
    """
    rows = np.zeros((0, d)) if pending is None else np.asarray(pending, dtype=np.float64).reshape(-1, d)
    p = rows.shape[0]
    size = padded_size(p, at_least=at_least)
    padded = np.zeros((size, d))
    padded[:p] = rows
    return on_device(padded, dtype), on_device(np.arange(size) < p, dtype)


# A batch's compiled program has one of these numbers of slots and fills the first q (a traced count), so one
# program serves batches of 1 to 8, another 9 to 16, ... (an asynchronous loop asks for every size in turn).
BATCH_SLOTS = (8, 16, 32, 64, 96)


def batch_slots(q: int) -> int:
    """The number of slots of the compiled program that serves a batch of ``q``: the next of :data:`BATCH_SLOTS`."""
    return next((s for s in BATCH_SLOTS if s >= q), q)


def greedy_batch_unit(score, record, carry, space: SearchSpace, key, q: int, *, n_starts, n_raw, n_steps,
                      learning_rate, init_unit=None, exclude_unit=None, exclude_mask=None, active=None):
    """A batch of ``q`` points chosen one at a time, each by :func:`maximize_unit` (traceable, one ``lax.scan``).

    Every sequential batch method is this loop with its own two functions:

    - ``score(carry, u)``: the acquisition of unit-cube points ``u`` ``(n, d)``
      given the points chosen so far, ``(n,)`` (e.g. log EI plus the local
      penalizers of the earlier points, or EHVI under a front that holds
      their believed outcomes);
    - ``record(carry, k, u, value)``: the state after point ``k`` (``u``
      ``(d,)``, its score ``value``) is chosen, and a per-point output
      (its posterior, say): ``(carry, out)``.

    Point ``k`` is searched with the key ``fold_in(key, k)``, from the best of
    ``n_raw`` feasible samples and ``init_unit``.

    In a space whose every input has finitely many values (a lattice), a point
    already chosen for this batch, or among ``exclude_unit`` ``(p, d)`` (rows
    where ``exclude_mask`` is 1: runs still in the lab), is never chosen again.

    With ``active`` (a traced count at most ``q``) only the first ``active`` slots are
    chosen; the others are skipped (no work) and left zero, so one compiled program
    serves every batch size up to ``q`` and gives the same first picks.

    Returns:
        ``(carry, u (q, d), values (q,), outs)`` with ``outs`` stacked along a leading ``q`` axis.
    """
    lattice = space.is_mixed and all(c is not None for c in space.choices)
    d = space.dim
    dtype = jnp.asarray(space.low).dtype
    if exclude_unit is None:
        exclude_unit, exclude_mask = jnp.zeros((0, d), dtype), jnp.zeros(0, dtype)
    p = exclude_unit.shape[0]

    def pick(state, k):
        carry, taken, taken_mask = state
        fn = partial(score, carry)
        if lattice:
            def fn(u, carry=carry):
                same = jnp.all(jnp.abs(u[:, None, :] - taken[None]) < 1e-9, axis=-1) & (taken_mask[None] > 0)
                return jnp.where(jnp.any(same, axis=1), -jnp.inf, score(carry, u))
        u, value, _, _ = maximize_unit(fn, space, jax.random.fold_in(key, k), n_starts=n_starts,
                                       n_raw=n_raw, n_steps=n_steps, learning_rate=learning_rate, init_unit=init_unit)
        carry, out = record(carry, k, u, value)
        return (carry, taken.at[p + k].set(u), taken_mask.at[p + k].set(1.0)), (u, value, out)

    def body(state, k):
        if active is None:
            return pick(state, k)
        outputs = jax.eval_shape(pick, state, k)[1]

        def skip(state, k):
            return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), outputs)

        return jax.lax.cond(k < active, pick, skip, state, k)

    taken = jnp.concatenate([jnp.asarray(exclude_unit, dtype), jnp.zeros((q, d), dtype)])
    taken_mask = jnp.concatenate([jnp.asarray(exclude_mask, dtype), jnp.zeros(q, dtype)])
    (carry, _, _), (us, values, outs) = jax.lax.scan(body, (carry, taken, taken_mask), jnp.arange(q))
    return carry, us, values, outs


@partial(jax.jit, static_argnames=("fn", "n_starts", "n_raw", "n_steps"))
def _maximize_jit(fn, space, key, args, init, learning_rate, *, n_starts, n_raw, n_steps):
    fn_unit = lambda u: fn(space.from_unit(u), *args)  # noqa: E731
    init_unit = None if init is None else space.to_unit(init)
    bu, bv, us, vs = maximize_unit(
        fn_unit, space, key, n_starts=n_starts, n_raw=n_raw, n_steps=n_steps,
        learning_rate=learning_rate, init_unit=init_unit,
    )
    return MaximizeResult(space.from_unit(bu), bv, space.from_unit(us), vs)


def maximize(
    fn: Callable,
    space: SearchSpace,
    *,
    key,
    args: tuple = (),
    init=None,
    n_starts: int = 32,
    n_raw: int = 1024,
    n_steps: int = 100,
    learning_rate: float = 0.02,
) -> MaximizeResult:
    """Maximise ``fn(x, *args)`` over the feasible set of ``space`` by multi-start gradient ascent.

    Args:
        fn: maps a batch of points ``(n, d)`` (physical units) to values ``(n,)``,
            each value depending only on its own row. Pass a function defined once
            (not a fresh lambda per call) so the compiled program is reused.
        space: bounds and linear constraints; every returned point satisfies them.
        key: PRNG key for the raw samples.
        args: pytree of extra arguments (e.g. a fitted model, the incumbent);
            they enter the compiled program as arrays, so new data does not recompile.
        init: optional extra starting points ``(k, d)``, e.g. the best observations.
        n_starts: starts kept from the raw samples.
        n_raw: feasible raw samples scored to choose the starts.
        n_steps: Adam steps per start (learning rate in unit-cube coordinates).

    Returns:
        :class:`MaximizeResult` with ``x`` and ``value`` of the best point found.

    Example:
        >>> space = SearchSpace([-1.0, -1.0], [1.0, 1.0], A=[[1.0, 1.0]], b=[0.5])
        >>> res = maximize(lambda x: -jnp.sum((x - 0.5) ** 2, axis=1), space,
        ...                key=jax.random.key(0))
        >>> res.x   # close to (0.25, 0.25), on the constraint
    """
    init = None if init is None else jnp.atleast_2d(jnp.asarray(init))
    return _maximize_jit(
        fn, space, key, tuple(args), init, learning_rate,
        n_starts=min(n_starts, n_raw), n_raw=n_raw, n_steps=n_steps,
    )


def grid_points_unit(resolution: int, d: int) -> np.ndarray:
    """All ``resolution**d`` points of the regular grid on the unit cube (endpoints included)."""
    axes = [np.linspace(0.0, 1.0, resolution)] * d
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)


@partial(jax.jit, static_argnames=("fn", "resolution", "chunk"))
def _grid_jit(fn, space, args, *, resolution, chunk):
    d = space.dim
    total = resolution**d
    window = 2 * chunk
    dtype = jnp.asarray(space.low).dtype
    ticks = jnp.linspace(0.0, 1.0, resolution, dtype=dtype)

    def point(flat_index):
        # Decode a flat index into grid coordinates: no grid is ever materialised.
        digits = []
        for _ in range(d):
            digits.append(flat_index % resolution)
            flat_index = flat_index // resolution
        return space.from_unit(ticks[jnp.stack(digits[::-1], axis=-1)])

    def body(state):
        # Scan the next ``window`` grid points, keep the first ``chunk`` feasible
        # ones (in grid order) and evaluate ``fn`` on those only: constraint
        # violators cost a feasibility check, never a function evaluation.
        cursor, best_x, best_v = state
        idx = cursor + jnp.arange(window)
        ok = (idx < total) & space.is_feasible(point(jnp.minimum(idx, total - 1)), atol=0.0)
        (pos,) = jnp.nonzero(ok, size=chunk, fill_value=window - 1)
        taken = jnp.arange(chunk) < jnp.sum(ok)
        x = point(jnp.minimum(cursor + pos, total - 1))
        v = fn(x, *args)
        v = jnp.where(taken & jnp.isfinite(v), v, -jnp.inf)
        i = jnp.argmax(v)
        better = v[i] > best_v
        # Full buffer: resume right after its last point; otherwise the window is exhausted.
        cursor = jnp.where(jnp.sum(ok) >= chunk, cursor + pos[chunk - 1] + 1, cursor + window)
        return cursor, jnp.where(better, x[i], best_x), jnp.where(better, v[i], best_v)

    init = (jnp.asarray(0), jnp.asarray(space.low), jnp.asarray(-jnp.inf, dtype=dtype))
    _, bx, bv = jax.lax.while_loop(lambda state: state[0] < total, body, init)
    return bx, bv


def maximize_grid(fn: Callable, space: SearchSpace, *, resolution: int = 20, args: tuple = (), chunk: int = 4096):
    """Best feasible point of a regular grid with ``resolution`` points per input.

    Grid points are decoded from their flat index in windows, constraint
    violators are dropped before ``fn`` sees them, and ``fn`` runs on chunks of
    ``chunk`` feasible points inside one compiled loop, so memory stays bounded
    whatever the grid size and the work scales with the feasible points only.
    Ties go to the first point in grid order. Returns :class:`MaximizeResult`
    with ``xs``/``values`` holding just the winner.

    Raises:
        ConfigError: when the grid's flat indices overflow JAX's default integer
            (more than about 2 billion points without 64-bit mode).
    """
    if resolution**space.dim + 2 * chunk > np.iinfo(jnp.asarray(0).dtype).max:
        raise ConfigError(f"a grid of {resolution}^{space.dim} points needs 64-bit integers: enable jax_enable_x64")
    bx, bv = _grid_jit(fn, space, tuple(args), resolution=resolution, chunk=chunk)
    return MaximizeResult(bx, bv, bx[None], bv[None])


@partial(jax.jit, static_argnames=("fn", "n"))
def _random_jit(fn, space, key, args, *, n):
    u = sample_feasible_unit(space, key, n)
    x = space.from_unit(u)
    v = fn(x, *args)
    v = jnp.where(jnp.isfinite(v), v, -jnp.inf)
    i = jnp.argmax(v)
    return MaximizeResult(x[i], v[i], x[i][None], v[i][None])


def maximize_random(fn: Callable, space: SearchSpace, *, key, n: int = 100_000, args: tuple = ()):
    """Best of ``n`` random feasible points: the random-search baseline."""
    return _random_jit(fn, space, key, tuple(args), n=n)
