"""Initial designs: Latin hypercubes that respect linear constraints."""

from __future__ import annotations

import numpy as np

from jaxopt_mat.space import SearchSpace


def latin_hypercube(space: SearchSpace, n: int, *, seed: int, avoid=None, optimize: bool = True) -> np.ndarray:
    """A space-filling design of ``n`` feasible points, in physical units.

    Without constraints this is a Latin hypercube (one point in each of the
    ``n`` equal slices of every input) with its centred discrepancy optimised
    (scipy's ``random-cd``). With constraints, Latin hypercubes of growing size
    are drawn until ``n`` of their points are feasible, and ``n`` of those are
    picked by greedy max-min distance, so the design stays space-filling inside
    the feasible region (strict stratification cannot survive a constraint).
    Those oversampled hypercubes skip the discrepancy optimisation: the max-min
    pick does the space filling, and optimising a few hundred points costs
    seconds. Points to ``avoid`` (e.g. runs still in the lab) take the same
    route: the max-min pick starts from them, so the design fills the space
    they leave.

    Args:
        space: the search space.
        n: number of points, at least 1.
        seed: integer seed; the same seed gives the same design.
        avoid: optional ``(k, d)`` points, physical units, the design keeps away from.
        optimize: False skips the discrepancy optimisation of an unconstrained
            hypercube (a plain Latin hypercube: milliseconds instead of about half a second).

    Returns:
        Array of shape ``(n, d)``.

    Example:
        >>> space = SearchSpace([0, 0], [1, 1])
        >>> latin_hypercube(space, 5, seed=0).shape
        (5, 2)
    """
    if n < 1:
        raise ValueError(f"a design needs at least one point, got n = {n}")
    rng = np.random.default_rng(seed)
    d = space.dim
    avoid_unit = None if avoid is None or len(avoid) == 0 else np.asarray(space.to_unit(np.asarray(avoid)))
    if space.n_constraints == 0 and avoid_unit is None and not space.is_mixed:
        u = _lhs(d, n, rng, optimize=optimize)
        return np.asarray(space.from_unit(u))
    pool = np.zeros((0, d))
    size = n
    for _ in range(12):
        u = to_choices(space, _lhs(d, size, rng, optimize=False))
        ok = np.asarray(space.is_feasible(np.asarray(space.from_unit(u)), atol=0.0))
        pool = np.concatenate([pool, u[ok]])
        if space.is_mixed:  # a finite input repeats values: keep each point once
            pool = np.unique(pool, axis=0)
        if pool.shape[0] >= 4 * n or (pool.shape[0] >= n and size >= 8 * n):
            break
        size *= 2
    if pool.shape[0] < n:
        # A thin feasible region: top up with repaired points, which are feasible.
        extra = _repaired(space, rng.uniform(size=(n - pool.shape[0], d)))
        pool = np.concatenate([pool, extra])
    if space.is_mixed and avoid_unit is not None and all(c is not None for c in space.choices):
        # Finitely many combinations: the points to avoid are never chosen again (when enough others are left).
        fresh = np.min(np.linalg.norm(pool[:, None] - avoid_unit[None], axis=-1), axis=1) > 1e-9
        if fresh.sum() >= n:
            pool = pool[fresh]
    if pool.shape[0] < n:  # a small finite space: some points repeat
        pool = pool[rng.integers(pool.shape[0], size=n)] if pool.shape[0] else _repaired(space, rng.uniform(size=(n, d)))
    chosen = _greedy_maximin(pool, n, rng, avoid_unit)
    return np.asarray(space.from_unit(chosen))


def to_choices(space: SearchSpace, u: np.ndarray) -> np.ndarray:
    """Unit-cube points with each finite input's coordinate mapped to a value: the ``k`` values take equal slices.

    A stratified sample stays stratified over labels and integers (snapping to the
    nearest value would give the two end values half a share each).
    """
    u = np.array(u, dtype=np.float64)
    for j, c in enumerate(space.choices):
        if c is not None:
            u[:, j] = np.asarray(c)[np.minimum((u[:, j] * len(c)).astype(int), len(c) - 1)]
    return u


def _repaired(space: SearchSpace, u: np.ndarray) -> np.ndarray:
    """Feasible points from uniform ones: repaired, and for mixed spaces rounded with the continuous part re-projected."""
    if not space.is_mixed:
        return np.asarray(space.repair_unit(u))
    u = np.asarray(space.repair_unit(to_choices(space, u)))
    u = np.asarray(space.snap_unit(u))
    if space.n_constraints:
        u = np.asarray(space.project_unit_holding(u, space.held | space.ordered))
    return u[np.asarray(space.is_feasible(np.asarray(space.from_unit(u)), atol=0.0))]


def _lhs(d: int, n: int, rng: np.random.Generator, *, optimize: bool = True) -> np.ndarray:
    from scipy.stats import qmc  # imported here: scipy.stats costs 0.3 s at CLI start-up

    sampler = qmc.LatinHypercube(d=d, optimization="random-cd" if optimize and n > 1 else None, rng=rng)
    return sampler.random(n)


def _greedy_maximin(pool: np.ndarray, n: int, rng: np.random.Generator, avoid=None) -> np.ndarray:
    """Pick ``n`` rows of ``pool``, each the farthest from those already picked (and from ``avoid``)."""
    if avoid is None:
        start = int(rng.integers(pool.shape[0]))
    else:
        start = int(np.argmax(np.min(np.linalg.norm(pool[:, None] - avoid[None], axis=-1), axis=1)))
    picked = [start]
    dist = np.linalg.norm(pool - pool[start], axis=1)
    if avoid is not None:
        dist = np.minimum(dist, np.min(np.linalg.norm(pool[:, None] - avoid[None], axis=-1), axis=1))
    for _ in range(n - 1):
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(pool - pool[nxt], axis=1))
    return pool[picked]


def random_design(space: SearchSpace, n: int, *, seed: int) -> np.ndarray:
    """``n`` feasible points drawn uniformly from the feasible region (rejection sampling).

    Falls back to repairing uniform points when the feasible region is too thin
    for rejection to find enough points.
    """
    rng = np.random.default_rng(seed)
    d = space.dim
    out = np.zeros((0, d))
    for _ in range(50):
        u = to_choices(space, rng.uniform(size=(max(4 * n, 64), d)))
        ok = np.asarray(space.is_feasible(np.asarray(space.from_unit(u)), atol=0.0))
        out = np.concatenate([out, u[ok]])
        if out.shape[0] >= n:
            return np.asarray(space.from_unit(out[:n]))
    extra = _repaired(space, rng.uniform(size=(max(4 * n, 64), d)))[: n - out.shape[0]]
    return np.asarray(space.from_unit(np.concatenate([out, extra])))
