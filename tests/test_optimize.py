import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jaxopt_mat import SearchSpace, maximize, maximize_grid, maximize_random
from jaxopt_mat import optimize as optmod


def neg_sq_dist(x, target):
    return -jnp.sum((x - target) ** 2, axis=-1)


def test_gradient_maximizer_finds_a_constrained_optimum_on_the_boundary():
    space = SearchSpace([-1.0, -1.0], [1.0, 1.0], A=[[1.0, 1.0]], b=[0.5])
    res = maximize(neg_sq_dist, space, key=jax.random.key(0), args=(jnp.array([0.5, 0.5]),))
    # Closest feasible point to (0.5, 0.5) is its projection on x1 + x2 = 0.5.
    np.testing.assert_allclose(res.x, [0.25, 0.25], atol=2e-3)
    assert float(res.x.sum()) <= 0.5


def test_every_start_ends_feasible(agnp_space):
    target = jnp.array([45.0, 40.0, 30.0, 20.0, 1000.0])  # far outside the constraint
    res = maximize(neg_sq_dist, agnp_space, key=jax.random.key(1), args=(target,), n_starts=16)
    assert bool(jnp.all(agnp_space.is_feasible(res.xs, atol=0.0)))


def test_new_arguments_do_not_recompile():
    space = SearchSpace([0.0, 0.0], [1.0, 1.0])
    maximize(neg_sq_dist, space, key=jax.random.key(0), args=(jnp.array([0.2, 0.3]),))
    before = optmod._maximize_jit._cache_size()
    res = maximize(neg_sq_dist, space, key=jax.random.key(1), args=(jnp.array([0.7, 0.1]),))
    assert optmod._maximize_jit._cache_size() == before
    np.testing.assert_allclose(res.x, [0.7, 0.1], atol=2e-3)


def test_grid_baseline_equals_brute_force():
    space = SearchSpace([0.0, -1.0, 2.0], [1.0, 1.0, 3.0], A=[[1.0, 1.0, 0.0]], b=[0.8])
    target = jnp.array([0.9, 0.4, 2.33])
    res = maximize_grid(neg_sq_dist, space, resolution=7, args=(target,), chunk=50)
    best, best_v = None, -np.inf
    for p in itertools.product(*[np.linspace(lo, hi, 7) for lo, hi in zip(space.low, space.high)]):
        p = np.array(p)
        if p[0] + p[1] > 0.8:
            continue
        v = -np.sum((p - np.asarray(target)) ** 2)
        if v > best_v:
            best, best_v = p, v
    np.testing.assert_allclose(res.x, best, atol=1e-12)
    assert float(res.value) == np.float64(best_v).item() or abs(float(res.value) - best_v) < 1e-12


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), resolution=st.integers(2, 7), chunk=st.sampled_from([1, 3, 16, 500]),
       corner=st.floats(0.01, 0.99), n_constraints=st.integers(0, 2))
@example(seed=2, resolution=4, chunk=1, corner=1 / 3, n_constraints=2)  # grid points on both constraints' planes
def test_grid_with_dropped_violators_equals_brute_force(seed, resolution, chunk, corner, n_constraints):
    # Feasible shares from none to all, chunks from one point to more than the
    # grid: the windows that skip violators must neither lose nor reorder points.
    rng = np.random.default_rng(seed)
    low = rng.uniform(-1.0, 0.0, 3)
    high = low + rng.uniform(0.5, 2.0, 3)
    # Half-spaces through one interior point of the box: never an empty space.
    a = rng.normal(size=(n_constraints, 3)) + 0.1
    space = SearchSpace(low, high, A=a, b=a @ (low + corner * (high - low))) if n_constraints else SearchSpace(low, high)
    target = jnp.asarray(rng.uniform(low, high))
    res = maximize_grid(neg_sq_dist, space, resolution=resolution, args=(target,), chunk=chunk)
    pts = np.array(list(itertools.product(*[np.linspace(lo, hi, resolution) for lo, hi in zip(low, high)])))
    pts = np.asarray(space.from_unit(space.to_unit(jnp.asarray(pts))))
    # A grid point can lie on a constraint's plane (e.g. corner = 1/3 with 4 points per input); rounding then
    # decides whether it is kept. Such points may go either way; every other point must be classed exactly.
    slack = (pts @ a.T - a @ (low + corner * (high - low))).max(axis=1) if n_constraints else np.full(len(pts), -1.0)
    tol = 1e-9 * (1.0 + np.abs(pts) @ np.abs(a).T).max(axis=1) if n_constraints else np.zeros(len(pts))
    values = -np.sum((pts - np.asarray(target)) ** 2, axis=1)
    surely = np.where(slack < -tol, values, -np.inf).max()  # the best point that is feasible beyond doubt
    maybe = np.where(slack <= tol, values, -np.inf).max()  # the best point that may be feasible
    if maybe == -np.inf:
        assert float(res.value) == -np.inf
        return
    assert surely - 1e-12 <= float(res.value) <= maybe + 1e-12
    i = int(np.argmin(np.sum((pts - np.asarray(res.x)) ** 2, axis=1)))
    np.testing.assert_allclose(res.x, pts[i], atol=1e-12)  # a grid point, scored by its own value
    assert slack[i] <= tol[i]
    np.testing.assert_allclose(float(res.value), values[i], rtol=1e-12)


def test_random_baseline_returns_a_feasible_point(agnp_space):
    res = maximize_random(neg_sq_dist, agnp_space, key=jax.random.key(0), n=1000, args=(jnp.zeros(5),))
    assert bool(agnp_space.is_feasible(res.x[None], atol=0.0)[0])


def test_gradient_beats_random_search_of_equal_budget_on_a_narrow_peak():
    space = SearchSpace(np.zeros(5), np.ones(5))
    target = jnp.array([0.13, 0.71, 0.42, 0.9, 0.05])

    def peak(x, t):
        return jnp.exp(-jnp.sum((x - t) ** 2, axis=-1) / 0.01)

    g = maximize(peak, space, key=jax.random.key(0), args=(target,))
    r = maximize_random(peak, space, key=jax.random.key(0), n=1024 + 32 * 100, args=(target,))
    assert float(g.value) > 0.999
    assert float(g.value) > float(r.value)


def test_row_adam_without_floor_is_adam():
    g = jax.random.normal(jax.random.key(0), (4, 3))
    params = jnp.zeros((4, 3))
    ours, theirs = optmod.scale_by_row_adam(relative_floor=0.0, eps=1e-8), optax.scale_by_adam(eps=1e-8)
    s1, s2 = ours.init(params), theirs.init(params)
    for k in range(3):
        gk = g * (k + 1) - 0.5 * k
        u1, s1 = ours.update(gk, s1, params)
        u2, s2 = theirs.update(gk, s2, params)
        np.testing.assert_allclose(u1, u2, rtol=1e-6, atol=1e-7)


def test_a_coordinate_the_function_barely_depends_on_stays_near_its_start():
    # f depends on x0 strongly, on x1 a million times less: Adam would walk x1
    # to its bound at full speed; the row floor keeps it where it started.
    space = SearchSpace([0.0, 0.0], [1.0, 1.0])
    fn = lambda x: -((x[:, 0] - 0.3) ** 2) + 1e-6 * x[:, 1]  # noqa: E731
    res = maximize(fn, space, key=jax.random.key(3), n_starts=8, n_raw=64, n_steps=100, learning_rate=0.05)
    raw = optmod.sample_feasible_unit(space, jax.random.split(jax.random.key(3))[0], 64)
    starts = raw[jax.lax.top_k(fn(raw), 8)[1]]
    np.testing.assert_allclose(res.xs[:, 0], 0.3, atol=1e-2)
    # Every start ends within 0.05 of where it began along x1 (Adam: 100 steps of 0.05, onto the bound).
    drift = jnp.abs(jnp.sort(res.xs[:, 1]) - jnp.sort(starts[:, 1]))
    assert float(jnp.max(drift)) < 0.05


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 12))
def test_ascent_keeps_the_best_iterate_as_a_separate_evaluation_of_each_would(seed, n_steps):
    # The ascent reads each iterate's value off the pass that takes its gradient. Reference: the same steps
    # taken one at a time in Python, every iterate (the starts and the last one included) evaluated on its
    # own; rows whose value is not finite never win.
    from jaxopt_mat.ascent import ascend_unit

    space = SearchSpace([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], A=[[1.0, 1.0, 1.0]], b=[1.6])
    rng = np.random.default_rng(seed)
    centre = jnp.asarray(rng.uniform(size=3))

    def fn(u):
        v = jnp.sin(7.0 * u[:, 0]) * jnp.cos(5.0 * u[:, 1]) - jnp.sum((u - centre) ** 2, axis=-1)
        return jnp.where(u[:, 2] > 0.9, jnp.nan, v)  # a region where the function has no value

    starts = space.project_unit(jnp.asarray(rng.uniform(size=(6, 3))))
    best_u, best_v = ascend_unit(fn, space, starts, n_steps=n_steps, learning_rate=0.05)

    opt = optax.chain(optmod.scale_by_row_adam(), optax.scale(-0.05))
    u, state = starts, opt.init(starts)
    iterates = [u]
    for _ in range(n_steps):
        g = jax.grad(lambda v: -jnp.sum(fn(v)))(u)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        updates, state = opt.update(g, state, u)
        u = space.project_unit(optax.apply_updates(u, updates))
        iterates.append(u)
    values = np.stack([np.asarray(fn(it)) for it in iterates])  # (steps + 1, starts)
    values = np.where(np.isfinite(values), values, -np.inf)
    expected_v = values.max(axis=0)
    np.testing.assert_allclose(np.asarray(best_v), expected_v, rtol=1e-12, atol=1e-12)
    first = values.argmax(axis=0)  # the first iterate reaching the best value (all -inf: the start)
    expected_u = np.stack([np.asarray(iterates[k])[i] for i, k in enumerate(first)])
    np.testing.assert_allclose(np.asarray(best_u), expected_u, rtol=1e-12, atol=1e-12)
