"""Search spaces: named inputs of any kind, bounds and linear constraints.

Models and optimizers work in the unit cube ``u = (x - low) / (high - low)``.
Linear constraints ``A x <= b`` become ``A_u u <= b_u`` there. Feasibility is
kept by a projection (Dykstra's alternating projections onto the box and the
half-spaces) followed by an exact repair: a point still outside is pulled along
the segment towards the polytope's Chebyshev centre, which lies strictly inside,
until every constraint holds. Every point the library returns passes through
that repair, so suggestions satisfy the constraints exactly, not approximately.

Inputs other than continuous ones (:mod:`jaxopt_mat.input_kinds`) keep one
coordinate each; :meth:`SearchSpace.snap_unit` moves points onto their allowed
values. Categorical inputs may not enter linear constraints, and the repair
never moves a categorical coordinate or one fixed to a value.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.errors import ConfigError, InfeasibleError
from jaxopt_mat.input_kinds import CONTINUOUS, InputKind, choices_unit, feature_map, snap_unit

# Relative slack kept inside each constraint by the exact repair, so that a
# point survives the round trip unit cube -> physical units -> CSV -> back.
_REPAIR_MARGIN = 1e-9
# An integer input with more values than this is better treated as continuous (its values are a table).
MAX_INTEGER_VALUES = 10_000
# Distance (unit-cube coordinates, rows of A normalised) kept inside each linear constraint.
_CONSTRAINT_MARGIN = 1e-10


@jax.tree_util.register_pytree_node_class
class SearchSpace:
    """A box with optional linear inequality constraints ``A x <= b``.

    Args:
        low: lower bounds, shape ``(d,)``.
        high: upper bounds, shape ``(d,)``, each strictly above ``low``.
        names: one name per input (default ``x0, x1, ...``).
        A: constraint matrix, shape ``(m, d)``, in the inputs' own units.
        b: constraint right-hand sides, shape ``(m,)``.
        kinds: one :class:`~jaxopt_mat.input_kinds.InputKind` per input (default: all continuous).
            A categorical input's bounds are ``0`` and ``k - 1`` (its label indices).
        center: this space's Chebyshev centre in the unit cube, as an earlier construction of the same
            space found it (e.g. kept in a file): used when it satisfies bounds, fixed values and
            constraints, sparing the linear program; otherwise found again.

    Raises:
        ConfigError: on malformed bounds or constraints.
        InfeasibleError: when no point satisfies bounds and constraints.

    Example:
        >>> space = SearchSpace([4, 10], [45, 40], names=["a", "b"],
        ...                     A=[[1, 1]], b=[60])
        >>> bool(space.is_feasible(np.array([[10.0, 20.0]]))[0])
        True
    """

    def __init__(self, low, high, *, names: Sequence[str] | None = None, A=None, b=None,
                 kinds: Sequence[InputKind] | None = None, center=None):
        low = np.asarray(low, dtype=np.float64).reshape(-1)
        high = np.asarray(high, dtype=np.float64).reshape(-1)
        d = low.shape[0]
        if high.shape != (d,):
            raise ConfigError(f"low has {d} entries but high has {high.shape[0]}")
        if d == 0:
            raise ConfigError("a search space needs at least one input")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ConfigError("bounds must be finite numbers")
        names = [f"x{i}" for i in range(d)] if names is None else [str(n) for n in names]
        if len(names) != d:
            raise ConfigError(f"{len(names)} names given for {d} inputs")
        if len(set(names)) != d:
            raise ConfigError(f"input names must be unique, got {names}")
        for name, lo, hi in zip(names, low, high):
            if not lo < hi:
                raise ConfigError(f"input {name}: low = {lo:g} must be below high = {hi:g}")
        if A is None:
            A = np.zeros((0, d))
            b = np.zeros((0,))
        A = np.atleast_2d(np.asarray(A, dtype=np.float64))
        b = np.asarray(b, dtype=np.float64).reshape(-1)
        if A.shape[1] != d or A.shape[0] != b.shape[0]:
            raise ConfigError(f"constraints need A of shape (m, {d}) and b of shape (m,), got {A.shape} and {b.shape}")
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
            raise ConfigError("constraint coefficients must be finite numbers")
        for i, row in enumerate(A):
            if not np.any(row != 0):
                raise ConfigError(f"constraint {i + 1} has no non-zero coefficient")
        kinds = (CONTINUOUS,) * d if kinds is None else tuple(kinds)
        _check_kinds(kinds, names, low, high, A)
        self.names = tuple(names)
        self.kinds = kinds  # static, with ``choices``: each coordinate's allowed values in the unit cube (None: any)
        self.low = low
        self.high = high
        self.A = A
        self.b = b
        self.A_unit, self.b_unit = _constraints_in_unit_cube(low, high, A, b)
        pinned = {j: (k.fixed - lo) / (hi - lo) for j, (k, lo, hi) in enumerate(zip(kinds, low, high))
                  if k.fixed is not None}
        if center is None or not _inside(np.asarray(center, dtype=np.float64), self.A_unit, self.b_unit, pinned):
            center = _chebyshev_center(self.A_unit, self.b_unit, names, pinned)
        self.center = np.asarray(center, dtype=np.float64)
        self.choices = choices_unit(kinds, low, high)

    # -- pytree protocol: arrays are leaves, names are static ----------------
    def tree_flatten(self):
        leaves = (self.low, self.high, self.A, self.b, self.A_unit, self.b_unit, self.center)
        return leaves, (self.names, self.kinds, self.choices)

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        obj = object.__new__(cls)
        obj.names, obj.kinds, obj.choices = aux
        obj.low, obj.high, obj.A, obj.b, obj.A_unit, obj.b_unit, obj.center = leaves
        return obj

    def __repr__(self) -> str:
        return f"SearchSpace(names={list(self.names)}, n_constraints={self.n_constraints})"

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def n_constraints(self) -> int:
        return int(np.shape(self.A)[0])

    @property
    def is_mixed(self) -> bool:
        """Whether any input is not a free continuous one."""
        return any(k != CONTINUOUS for k in self.kinds)

    @property
    def held(self) -> np.ndarray:
        """``(d,)`` True for coordinates no gradient moves (categorical, or fixed)."""
        return np.array([k.is_held for k in self.kinds], bool)

    @property
    def ordered(self) -> np.ndarray:
        """``(d,)`` True for integer and discrete coordinates (relaxed, then rounded)."""
        return np.array([k.is_ordered for k in self.kinds], bool)

    @property
    def features(self):
        """How a GP sees these inputs (:class:`~jaxopt_mat.input_kinds.FeatureMap`), ``None`` for plain coordinates."""
        return feature_map(self.kinds, self.names)

    def snap_unit(self, u):
        """``u`` with every coordinate that has allowed values moved to the nearest one (no repair)."""
        return snap_unit(jnp.asarray(u), self.choices) if self.is_mixed else jnp.asarray(u)

    def satisfies_kinds(self, x, *, atol: float = 1e-9) -> np.ndarray:
        """``(n,)`` whether each point's coordinates are allowed values of their inputs (physical units)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        ok = np.ones(x.shape[0], bool)
        for j, (kind, lo, hi) in enumerate(zip(self.kinds, self.low, self.high)):
            c = kind.choices(lo, hi)
            if c is not None:
                ok &= np.min(np.abs(x[:, j, None] - c[None]), axis=1) <= atol * (hi - lo)
        return ok

    def with_kinds(self, kinds: Sequence[InputKind]) -> "SearchSpace":
        """A copy with other kinds (e.g. some inputs fixed for one batch); checks the result is feasible."""
        return SearchSpace(self.low, self.high, names=self.names, A=self.A, b=self.b, kinds=kinds)

    # -- maps ----------------------------------------------------------------
    def to_unit(self, x):
        """Map points from physical units to the unit cube (any leading shape)."""
        return (x - self.low) / (self.high - self.low)

    def from_unit(self, u):
        """Map points from the unit cube to physical units (any leading shape).

        Clipped to the bounds so that rounding cannot push a point on a bound outside it.
        """
        return jnp.clip(self.low + u * (self.high - self.low), self.low, self.high)

    def is_feasible(self, x, *, atol: float = 1e-9):
        """Whether each point of ``x`` (shape ``(n, d)``) lies in bounds and constraints.

        ``atol`` is relative to each bound's range and each constraint's scale. A numpy ``x``
        gives a numpy answer; anything else (a JAX array, a tracer) a JAX one.
        """
        xp = np if isinstance(x, np.ndarray) else jnp  # a concrete table: numpy (no program per row count)
        low, high = xp.asarray(self.low), xp.asarray(self.high)
        u = (x - low) / (high - low)
        ok = xp.all((u >= -atol) & (u <= 1 + atol), axis=-1)
        if self.n_constraints:
            A, b = xp.asarray(self.A_unit), xp.asarray(self.b_unit)
            ok = ok & xp.all(u @ A.T - b <= atol * xp.linalg.norm(A, axis=1), axis=-1)
        return ok

    def project_unit(self, u, *, n_iter: int = 30):
        """Return feasible points near ``u`` (unit-cube coordinates, shape ``(..., d)``).

        Dykstra's algorithm approximates the Euclidean projection; the final
        repair towards the Chebyshev centre makes the result exactly feasible.
        Differentiable almost everywhere, jit- and vmap-safe.
        """
        u = jnp.asarray(u)
        if self.n_constraints == 0:
            return jnp.clip(u, 0.0, 1.0)
        held = jnp.asarray(self.held)
        v = _dykstra(u, self.A_unit, self.b_unit, n_iter)
        return self.repair_unit(jnp.where(held, u, v))

    def project_unit_holding(self, u, hold, *, n_iter: int = 50):
        """Near-projection of ``u`` that moves only the coordinates where ``hold`` ``(d,)`` is False.

        What keeps the continuous inputs feasible once integer and discrete ones are
        rounded: Dykstra's algorithm on the free coordinates, aiming a hair inside each
        half-space. Not an exact repair: check the result with :meth:`is_feasible`.
        """
        u = jnp.asarray(u)
        free = 1.0 - jnp.asarray(hold, u.dtype)
        if self.n_constraints == 0:
            return jnp.clip(u, 0.0, 1.0)
        A = self.A_unit * free[None, :]
        norm2 = jnp.sum(A * A, axis=1)
        # A row with no free coordinate cannot be helped: leave it out (the caller's check will see it).
        scale = jnp.where(norm2 > 0, 1.0 / jnp.sqrt(jnp.where(norm2 > 0, norm2, 1.0)), 0.0)
        b = (self.b_unit - 1e-9 - u @ (self.A_unit * (1.0 - free)[None, :]).T) * scale  # (..., m)
        v = _dykstra(u, A * scale[:, None], b, n_iter)
        return jnp.where(free > 0, jnp.clip(v, 0.0, 1.0), u)

    def repair_unit(self, u):
        """Pull points towards the Chebyshev centre until exactly feasible.

        Points already feasible are returned unchanged.
        """
        u = jnp.asarray(u)
        c = self.center
        held = jnp.asarray(self.held)
        step = jnp.where(held, 0.0, u - c)
        # Largest t in [0, 1] with c + t * step inside box and half-spaces.
        t = jnp.ones(u.shape[:-1], dtype=u.dtype)
        upper = jnp.where(step > 0, (1.0 - c) / jnp.where(step > 0, step, 1.0), jnp.inf)
        lower = jnp.where(step < 0, (0.0 - c) / jnp.where(step < 0, step, -1.0), jnp.inf)
        t = jnp.minimum(t, jnp.min(jnp.minimum(upper, lower), axis=-1))
        if self.n_constraints:
            # Aim a hair inside each half-space: a point exactly on a constraint
            # can land a rounding error outside once converted to physical units.
            slack = self.b_unit - _CONSTRAINT_MARGIN - self.A_unit @ c  # > 0: the centre is interior
            rate = step @ self.A_unit.T
            limit = jnp.where(rate > 0, slack / jnp.where(rate > 0, rate, 1.0), jnp.inf)
            t = jnp.minimum(t, jnp.min(limit, axis=-1))
        # Keep a hair inside so the point stays feasible after unit conversions.
        t = jnp.where(t < 1.0, t * (1.0 - _REPAIR_MARGIN), 1.0)
        return jnp.where(held, u, c + t[..., None] * step)

    def replace_bounds(self, low, high) -> "SearchSpace":
        """A copy with new bounds and the same names, constraints and kinds."""
        return SearchSpace(low, high, names=self.names, A=self.A, b=self.b, kinds=self.kinds)


def _check_kinds(kinds, names, low, high, A):
    if len(kinds) != len(names):
        raise ConfigError(f"{len(kinds)} kinds given for {len(names)} inputs")
    for j, (kind, name, lo, hi) in enumerate(zip(kinds, names, low, high)):
        if not isinstance(kind, InputKind) or kind.kind not in ("continuous", "integer", "discrete", "categorical"):
            raise ConfigError(f"input {name}: unknown kind {kind!r}")
        if kind.is_categorical:
            if len(kind.labels) < 2 or (lo, hi) != (0.0, len(kind.labels) - 1.0):
                raise ConfigError(f"input {name}: a categorical input needs at least 2 labels and bounds 0 and k - 1")
            if A.shape[0] and np.any(A[:, j] != 0):
                raise ConfigError(f"input {name} is categorical: linear constraints may not use it")
        if kind.kind == "integer" and hi - lo + 1 > MAX_INTEGER_VALUES:
            raise ConfigError(f"input {name}: an integer input may take at most {MAX_INTEGER_VALUES} values "
                              f"({lo:g} to {hi:g} has {hi - lo + 1:.0f}); make it continuous and round it yourself")
        c = kind.choices(lo, hi)
        if c is not None and (c.size == 0 or np.any(c < lo - 1e-9 * (hi - lo)) or np.any(c > hi + 1e-9 * (hi - lo))):
            raise ConfigError(f"input {name}: its allowed values must lie within its bounds [{lo:g}, {hi:g}]")


def _constraints_in_unit_cube(low, high, A, b):
    width = high - low
    A_unit = A * width[None, :]
    b_unit = b - A @ low
    # Normalise rows so tolerances mean the same for every constraint.
    norm = np.linalg.norm(A_unit, axis=1, keepdims=True) if A.shape[0] else np.ones((0, 1))
    return A_unit / norm, b_unit / norm[:, 0]


def _inside(center, A_unit, b_unit, pinned) -> bool:
    """Whether a given centre lies in the unit cube, at the fixed values and within the constraints."""
    return (center.shape == (A_unit.shape[1],) and bool(np.all((center >= 0.0) & (center <= 1.0)))
            and all(center[j] == v for j, v in pinned.items())
            and bool(np.all(A_unit @ center <= b_unit + _CONSTRAINT_MARGIN)))


def _chebyshev_center(A_unit, b_unit, names, pinned=None) -> np.ndarray:
    """Centre of the largest ball inside the unit cube and the half-spaces.

    ``pinned`` maps coordinates to fixed values: the ball then lies in the slice
    through them (the other coordinates' space).
    """
    d = A_unit.shape[1]
    pinned = pinned or {}
    center = np.full(d, 0.5)
    for j, v in pinned.items():
        center[j] = v
    if A_unit.shape[0] == 0:
        return center
    if pinned:
        free = [j for j in range(d) if j not in pinned]
        fixed = np.array([pinned.get(j, 0.0) for j in range(d)])
        b_free = b_unit - A_unit @ fixed
        if not free:
            if np.any(b_free < 0):
                raise InfeasibleError(f"the fixed values of {', '.join(names)} violate a linear constraint")
            return center
        sub = _chebyshev_center(A_unit[:, free], b_free, [names[j] for j in free])
        center[free] = sub
        return center
    from scipy.optimize import linprog

    # Variables (u, r): maximise r subject to a_i u + r |a_i| <= b_i and the box.
    rows = [np.append(A_unit[i], 1.0) for i in range(A_unit.shape[0])]
    rhs = list(b_unit)
    for j in range(d):
        e = np.zeros(d + 1)
        e[j], e[d] = 1.0, 1.0
        rows.append(e)
        rhs.append(1.0)
        e = np.zeros(d + 1)
        e[j], e[d] = -1.0, 1.0
        rows.append(e)
        rhs.append(0.0)
    cost = np.zeros(d + 1)
    cost[d] = -1.0
    res = linprog(cost, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=[(None, None)] * d + [(0, None)])
    if res.status != 0 or res.x[d] <= 1e-9:
        raise InfeasibleError(
            "the bounds and constraints leave no feasible region with interior "
            f"(inputs {', '.join(names)}): check the constraint right-hand sides"
        )
    return np.asarray(res.x[:d])


def _dykstra(u, A, b, n_iter):
    """Dykstra's alternating projection onto the box [0,1]^d and each half-space."""
    m = A.shape[0]
    sets = m + 1

    def project(k, v):
        def box(v):
            return jnp.clip(v, 0.0, 1.0)

        def half(v, i):
            a = A[i]
            excess = jnp.maximum(v @ a - b[..., i], 0.0)
            return v - excess[..., None] * a  # rows of A have unit norm (or are zero)

        return jax.lax.switch(k, [box] + [lambda v, i=i: half(v, i) for i in range(m)], v)

    def body(_, state):
        v, incr = state
        new_incr = []
        for k in range(sets):
            w = v + incr[k]
            v = project(k, w)
            new_incr.append(w - v)
        return v, tuple(new_incr)

    incr = tuple(jnp.zeros_like(u) for _ in range(sets))
    v, _ = jax.lax.fori_loop(0, n_iter, body, (u, incr))
    return v
