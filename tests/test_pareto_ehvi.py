import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jaxopt_mat.acquisition.ehvi import (
    ehvi_from_boxes_general, expected_hypervolume_improvement, log_ehvi_from_boxes, monte_carlo_ehvi, score_pool,
)
from jaxopt_mat.acquisition.pool_ehvi import greedy_pool_batch
from jaxopt_mat.pareto import hypervolume, non_dominated_boxes, non_dominated_mask


def brute_force_hv(points, ref, cells=200):
    """Hypervolume by counting the centres of a regular grid of cells (float64)."""
    points, ref = np.asarray(points), np.asarray(ref)
    top = points.max(axis=0)
    axes = [np.linspace(r, t, cells + 1) for r, t in zip(ref, top)]
    centres = [0.5 * (a[1:] + a[:-1]) for a in axes]
    grid = np.stack(np.meshgrid(*centres, indexing="ij"), axis=-1).reshape(-1, len(ref))
    dominated = np.zeros(len(grid), bool)
    for p in points:
        dominated |= np.all(grid <= p, axis=1)
    return dominated.mean() * np.prod(top - ref)


@pytest.mark.parametrize("m, cells", [(2, 400), (3, 60)])
def test_hypervolume_matches_grid_counting(m, cells):
    rng = np.random.default_rng(m)
    for _ in range(3):
        pts = rng.uniform(0.1, 1.0, size=(8, m))
        exact = float(hypervolume(jnp.asarray(pts), jnp.zeros(m)))
        approx = brute_force_hv(pts, np.zeros(m), cells)
        assert exact == pytest.approx(approx, rel=3.0 / cells * m)


def test_hypervolume_of_a_known_staircase():
    assert float(hypervolume(jnp.array([[2.0, 1.0], [1.0, 2.0]]), jnp.zeros(2))) == pytest.approx(3.0)
    cube = jnp.array([[1.0, 1.0, 1.0], [2.0, 0.5, 0.5]])
    assert float(hypervolume(cube, jnp.zeros(3))) == pytest.approx(1.0 + 0.25)


points3 = arrays(np.float64, (6, 3), elements=st.floats(0.0, 1.0))
points2 = arrays(np.float64, (7, 2), elements=st.floats(0.0, 1.0))


@settings(max_examples=40, deadline=None)
@given(st.one_of(points2, points3), st.data())
def test_hypervolume_is_monotone_and_permutation_invariant(pts, data):
    m = pts.shape[1]
    ref = jnp.zeros(m)
    hv = float(hypervolume(jnp.asarray(pts), ref))
    extra = data.draw(arrays(np.float64, (1, m), elements=st.floats(0.0, 1.0)))
    assert float(hypervolume(jnp.asarray(np.vstack([pts, extra])), ref)) >= hv - 1e-12
    perm = data.draw(st.permutations(range(pts.shape[0])))
    assert float(hypervolume(jnp.asarray(pts[list(perm)]), ref)) == pytest.approx(hv, abs=1e-12)


def test_non_dominated_mask_by_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.uniform(size=(30, 3))
    mask = np.asarray(non_dominated_mask(jnp.asarray(pts)))
    for i, p in enumerate(pts):
        dominated = any(np.all(q >= p) and np.any(q > p) for q in pts)
        assert mask[i] == (not dominated)


@pytest.mark.parametrize("m", [2, 3])
def test_ehvi_matches_monte_carlo_within_its_error(m):
    rng = np.random.default_rng(10 + m)
    front = jnp.asarray(rng.uniform(0.2, 1.0, size=(6, m)))
    ref = jnp.zeros(m)
    for k in range(4):
        mean = jnp.asarray(rng.uniform(0.3, 1.1, size=m))
        std = jnp.asarray(rng.uniform(0.05, 0.4, size=m))
        exact = float(expected_hypervolume_improvement(mean[None], std[None], front, ref)[0])
        est, err = monte_carlo_ehvi(mean, std, front, ref, key=jax.random.key(k), n_samples=20000)
        assert abs(exact - float(est)) < 4 * float(err) + 1e-6


@settings(max_examples=40, deadline=None)
@given(points2, arrays(np.float64, (5, 2), elements=st.floats(-0.5, 1.5)), arrays(np.float64, (5, 2), elements=st.floats(0.0, 1.0)))
def test_ehvi_is_non_negative(front, mean, std):
    e = expected_hypervolume_improvement(jnp.asarray(mean), jnp.asarray(std), jnp.asarray(front), jnp.zeros(2))
    assert bool(jnp.all(e >= 0)) and bool(jnp.all(jnp.isfinite(e)))


def test_ehvi_is_zero_for_a_dominated_point_without_uncertainty():
    front = jnp.array([[1.0, 2.0], [2.0, 1.0], [0.5, 0.5], [3.0, 3.0]])[:3]
    e = expected_hypervolume_improvement(jnp.array([[0.9, 0.9], [1.5, 1.5]]), jnp.full((2, 2), 1e-12), front, jnp.zeros(2))
    assert float(e[0]) == pytest.approx(0.0, abs=1e-9)
    assert float(e[1]) == pytest.approx(0.25, rel=1e-6)  # deterministic: the improvement itself


def test_ehvi_has_finite_gradients():
    front = jnp.array([[1.0, 2.0], [2.0, 1.0]])
    g = jax.grad(lambda mu: jnp.sum(expected_hypervolume_improvement(mu, jnp.full((3, 2), 0.2), front, jnp.zeros(2))))(
        jnp.array([[1.5, 1.5], [-3.0, -3.0], [5.0, 0.5]]))
    assert np.all(np.isfinite(np.asarray(g)))


def _predict(features, w):
    return features @ w, jnp.full((features.shape[0], w.shape[1]), 0.1)


def test_chunked_pool_scores_equal_direct_scores():
    rng = np.random.default_rng(3)
    feats = jnp.asarray(rng.normal(size=(1001, 4)))
    w = jnp.asarray(rng.normal(size=(4, 2)))
    front = jnp.asarray(rng.normal(size=(10, 2)))
    ref = jnp.array([-3.0, -3.0])
    chunked = score_pool(_predict, (w,), feats, front, ref, chunk=128)
    mean, std = _predict(feats, w)
    np.testing.assert_allclose(chunked, expected_hypervolume_improvement(mean, std, front, ref), rtol=1e-10)


@settings(max_examples=8, deadline=None)  # the chunking itself is covered at length in test_chunked.py
@given(n=st.integers(1, 300), chunk=st.integers(1, 64), threads=st.integers(1, 5), seed=st.integers(0, 1000))
def test_pool_scores_cover_every_row_once_whatever_the_chunking(n, chunk, threads, seed):
    # The last chunk of a part, and the last of the threads' parts, overlap the one before:
    # no row may be lost, repeated or shifted.
    rng = np.random.default_rng(seed)
    feats = jnp.asarray(rng.normal(size=(n, 4)))
    w = jnp.asarray(rng.normal(size=(4, 2)))
    front = jnp.asarray(rng.normal(size=(6, 2)))
    ref = jnp.array([-3.0, -3.0])
    direct = expected_hypervolume_improvement(*_predict(feats, w), front, ref)
    np.testing.assert_allclose(score_pool(_predict, (w,), feats, front, ref, chunk=chunk, threads=threads), direct,
                               rtol=1e-10, atol=1e-14)
    in32 = score_pool(_predict, (w,), feats, front, ref, chunk=chunk, dtype=jnp.float32, threads=threads)
    assert in32.dtype == jnp.float32
    # float32: cancellation in the box terms leaves absolute errors of a few float32 epsilons of the
    # problem's scale (the front's hypervolume), whatever the size of the scores themselves
    scale = float(hypervolume(front, ref))
    np.testing.assert_allclose(in32, direct, rtol=1e-3, atol=1e-6 * scale)


def test_greedy_batch_never_repeats_or_picks_excluded_rows():
    rng = np.random.default_rng(4)
    mean = jnp.asarray(rng.uniform(size=(50, 2)))
    std = jnp.full((50, 2), 0.05)
    exclude = np.zeros(50, bool)
    exclude[:10] = True
    idx, vals = greedy_pool_batch(mean, std, jnp.asarray(rng.uniform(0, 0.5, size=(5, 2))), jnp.zeros(2), 10, exclude=exclude)
    idx = np.asarray(idx)
    assert len(set(idx.tolist())) == 10 and np.all(idx >= 10)
    assert np.all(np.diff(np.asarray(vals)) <= 1e-12)  # believed outcomes shrink what is left


def test_greedy_batch_equals_the_greedy_by_hand_and_a_growing_front_reuses_its_program():
    from jaxopt_mat.acquisition import pool_ehvi

    rng = np.random.default_rng(5)
    mean = rng.normal(size=(80, 2))
    std = rng.uniform(0.05, 0.5, size=(80, 2))
    ref = np.array([-4.0, -4.0])
    compiled = []
    for p in (9, 10, 12):  # fronts of different sizes, padded to one size
        front = rng.normal(size=(p, 2))
        idx, vals = greedy_pool_batch(mean, std, front, ref, 4)
        fr, free, by_hand = front.copy(), np.ones(80, bool), []
        for _ in range(4):  # the greedy spelt out: exact EHVI of every free row, the best joins the front
            e = np.where(free, np.asarray(expected_hypervolume_improvement(mean, std, fr, ref)), -np.inf)
            by_hand.append(int(np.argmax(e)))
            free[by_hand[-1]] = False
            fr = np.vstack([fr, mean[by_hand[-1]]])
        np.testing.assert_array_equal(np.asarray(idx), by_hand)
        compiled.append(pool_ehvi._greedy._cache_size())
    assert compiled[0] == compiled[-1]


SHARDED_SCRIPT = """
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from jaxopt_mat.acquisition.ehvi import score_pool
from tests.test_pareto_ehvi import _predict
assert len(jax.devices()) == 4, jax.devices()
rng = np.random.default_rng(5)
feats = jnp.asarray(rng.normal(size=(2003, 4)))
w = jnp.asarray(rng.normal(size=(4, 2)))
front = jnp.asarray(rng.normal(size=(9, 2)))
ref = jnp.array([-3.0, -3.0])
import jaxopt_mat.chunked as chunked
seen = []
real = chunked._scan_sharded
def spy(fn, args, rows, **static):
    out = real(fn, args, rows, **static)
    seen.append((len(jax.tree.leaves(rows)[0].sharding.device_set),
                 [len(o.sharding.device_set) for o in jax.tree.leaves(out)]))
    return out
chunked._scan_sharded = spy
sharded = score_pool(_predict, (w,), feats, front, ref, chunk=128)
single = score_pool(_predict, (w,), feats, front, ref, chunk=128, devices=jax.devices()[:1])
assert seen == [(4, [4])], seen  # the pool was split over the four devices, and so was the result
assert sharded.shape == (2003,)
np.testing.assert_allclose(sharded, single, rtol=1e-12, atol=1e-15)
# the pool path of suggest: posterior and EHVI in one sharded pass, then the greedy
from jaxopt_mat.acquisition.pool_ehvi import pool_ehvi_batch
exclude = np.arange(2003) % 7 == 0
a = pool_ehvi_batch(_predict, (w,), feats, front, ref, 8, exclude=exclude, chunk=128)
assert seen[-1] == (4, [4, 4, 4]), seen
b = pool_ehvi_batch(_predict, (w,), feats, front, ref, 8, exclude=exclude, chunk=128, devices=jax.devices()[:1])
assert len(seen) == 2
np.testing.assert_array_equal(a[0], b[0])
np.testing.assert_allclose(a[1], b[1], rtol=1e-12)
print("ok")
"""


def test_sharded_pool_scores_equal_single_device_scores(tmp_path):
    """Four CPU devices forced in a fresh process (the flag must be set before JAX starts)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], cwd=root, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("ok")


def test_joint_batch_ehvi_matches_sampling_by_hand_and_analytic_ehvi_for_one_point():
    from jaxopt_mat.acquisition.ehvi import q_expected_hypervolume_improvement

    rng = np.random.default_rng(6)
    front = jnp.asarray(rng.uniform(0, 1, size=(6, 2)))
    ref = jnp.array([-0.2, -0.2])
    q, S = 3, 20000
    mean = jnp.asarray(rng.uniform(0.2, 1.1, size=(q, 2)))
    a = rng.normal(size=(2, q, q))
    cov = jnp.asarray(0.02 * (a @ np.swapaxes(a, 1, 2)) + 1e-3 * np.eye(q))
    z = jax.random.normal(jax.random.key(0), (S, 2, q), dtype=jnp.float64)
    est = float(q_expected_hypervolume_improvement(mean, cov, front, ref, z))
    # By hand: correlated samples per objective with numpy's Cholesky, hypervolume of each augmented front.
    def hv2(points):  # sweep in numpy, independent of the library
        pts = np.asarray(points)
        pts = pts[np.all(pts > np.asarray(ref), axis=1)]
        pts = pts[np.argsort(-pts[:, 0])]
        area, top = 0.0, float(ref[1])
        for px, py in pts:
            if py > top:
                area += (px - float(ref[0])) * (py - top)
                top = py
        return area

    base = hv2(front)
    L = np.linalg.cholesky(np.asarray(cov) + 1e-9 * np.max(np.diagonal(np.asarray(cov), axis1=1, axis2=2)) * np.eye(q))
    zs = np.asarray(z)
    gains = []
    for s in range(0, S, 50):  # every 50th sample: an independent check of the same estimator
        y = np.stack([np.asarray(mean)[:, j] + L[j] @ zs[s, j] for j in range(2)], -1)
        gains.append(hv2(np.concatenate([np.asarray(front), y])) - base)
    gains = np.array(gains)
    assert est == pytest.approx(gains.mean(), abs=4 * gains.std() / np.sqrt(len(gains)))
    # q = 1 with a diagonal covariance is the analytic EHVI.
    one = float(q_expected_hypervolume_improvement(mean[:1], cov[:, :1, :1], front, ref, z[:, :, :1]))
    sd = jnp.sqrt(jnp.stack([cov[0, 0, 0], cov[1, 0, 0]]))[None]
    exact = float(expected_hypervolume_improvement(mean[:1], sd, front, ref)[0])
    assert one == pytest.approx(exact, rel=0.03)
    # With the same base samples the batch is worth at least its first point alone, and its gradient exists.
    assert est >= one - 1e-6
    g = jax.grad(lambda m: q_expected_hypervolume_improvement(m, cov, front, ref, z[:2000]))(mean)
    assert np.all(np.isfinite(np.asarray(g)))


def test_continuous_ehvi_batch_is_feasible_and_beats_random_points():
    from jaxopt_mat import SearchSpace
    from jaxopt_mat.acquisition.ehvi import ehvi_batch

    def predict(x, w, picked, picked_mask):  # no model to condition: the fantasies only move the front
        return jnp.stack([jnp.sin(3 * x[:, 0]), x[:, 1] - x[:, 0] ** 2], -1) @ w, jnp.full((x.shape[0], 2), 0.05)

    w = jnp.eye(2)
    space = SearchSpace([0.0, 0.0], [1.0, 1.0], A=[[1.0, 1.0]], b=[1.2])
    front = jnp.asarray([[0.2, 0.1], [0.5, -0.2]])
    ref = jnp.array([-1.0, -1.0])
    x, log_e, mean, std = ehvi_batch(predict, (w,), space, front, ref, 4, key=jax.random.key(0))
    x = np.asarray(x)
    assert np.all(np.asarray(space.is_feasible(x, atol=0.0)))
    assert np.all(np.diff(np.asarray(log_e)) <= 1e-9)  # fantasies shrink what is left
    rnd = np.random.default_rng(0).uniform(size=(4096, 2))
    rnd = rnd[rnd.sum(1) <= 1.2]
    m, s = predict(jnp.asarray(rnd), w, None, None)
    best_random = float(jnp.max(expected_hypervolume_improvement(m, s, front, ref)))
    assert float(np.exp(log_e[0])) >= best_random * (1 - 1e-6)


@jax.jit
def _fast_and_general(front, valid, mean, std):
    from jaxopt_mat.acquisition.ehvi import ehvi_from_boxes, ehvi_from_boxes_general
    from jaxopt_mat.pareto import non_dominated_boxes

    boxes = non_dominated_boxes(front, jnp.array([-2.5, -2.5]), valid)
    fast = jax.vmap(lambda m, s: ehvi_from_boxes(m, s, boxes))(mean, std)
    slow = jax.vmap(lambda m, s: ehvi_from_boxes_general(m, s, boxes))(mean, std)
    return fast, slow


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_two_objective_shortcut_equals_the_general_box_sum(seed, keep):
    rng = np.random.default_rng(seed)
    front = jnp.asarray(rng.normal(size=(12, 2)))
    valid = jnp.asarray(rng.uniform(size=12) < keep)  # from no valid point to all of them
    mean = jnp.asarray(rng.normal(size=(20, 2)))
    std = jnp.asarray(rng.uniform(0.01, 1.0, size=(20, 2)))
    fast, slow = _fast_and_general(front, valid, mean, std)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-14)


def test_lazy_greedy_equals_the_full_greedy():
    rng = np.random.default_rng(8)
    mean = jnp.asarray(rng.normal(size=(3000, 2)))
    std = jnp.asarray(rng.uniform(0.05, 0.5, size=(3000, 2)))
    front = jnp.asarray(rng.normal(size=(15, 2)))
    ref = jnp.array([-4.0, -4.0])
    exclude = rng.uniform(size=3000) < 0.1
    full = greedy_pool_batch(mean, std, front, ref, 10, exclude=exclude, shortlist=3000)
    for k in (11, 512):
        lazy = greedy_pool_batch(mean, std, front, ref, 10, exclude=exclude, shortlist=k)
        np.testing.assert_array_equal(lazy[0], full[0])
        np.testing.assert_allclose(lazy[1], full[1], rtol=1e-12)


def test_lazy_greedy_evaluates_past_its_first_block_only_as_far_as_the_bounds_require(monkeypatch):
    # 300 near-copies of the best row: after the first pick the others' EHVI drops below the
    # bounds of rows outside a first block shorter than the copies, so the next pick must look further.
    import jaxopt_mat.acquisition.pool_ehvi as ehvi_module

    rng = np.random.default_rng(9)
    mean = rng.normal(size=(3000, 2))
    std = rng.uniform(0.05, 0.5, size=(3000, 2))
    mean[:300] = 2.5 + 1e-6 * rng.normal(size=(300, 2))
    std[:300] = 0.3
    front = jnp.asarray(rng.normal(size=(15, 2)))
    ref = jnp.array([-4.0, -4.0])
    full = greedy_pool_batch(jnp.asarray(mean), jnp.asarray(std), front, ref, 10, shortlist=3000)
    sizes = []
    real = ehvi_module._ehvi_rows
    monkeypatch.setattr(ehvi_module, "_ehvi_rows", lambda mu, *a: (sizes.append(mu.shape[0]), real(mu, *a))[1])
    lazy = greedy_pool_batch(jnp.asarray(mean), jnp.asarray(std), front, ref, 10, shortlist=16)
    assert sizes[0] == 16 and max(sizes) > 16  # looked past the first block
    assert sum(sizes) < 9 * 3000  # and never near a full pass per pick
    np.testing.assert_array_equal(lazy[0], full[0])
    np.testing.assert_allclose(lazy[1], full[1], rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([2, 3]), st.floats(-3.0, 3.0), st.floats(0.01, 2.0))
def test_log_ehvi_equals_the_log_of_ehvi_where_ehvi_is_representable(seed, m, shift, scale):
    rng = np.random.default_rng(seed)
    front = rng.uniform(size=(6, m))
    boxes = non_dominated_boxes(jnp.asarray(front), jnp.zeros(m))
    mean = rng.uniform(size=m) + shift
    std = scale * rng.uniform(0.1, 1.0, size=m)
    e = float(ehvi_from_boxes_general(jnp.asarray(mean), jnp.asarray(std), boxes))
    log_e = float(log_ehvi_from_boxes(jnp.asarray(mean), jnp.asarray(std), boxes))
    if e > 1e-250:
        assert log_e == pytest.approx(np.log(e), abs=1e-9, rel=1e-9)
    else:  # EHVI underflows; its log stays finite and below what can be represented
        assert np.isfinite(log_e) and log_e < np.log(1e-250) + 1e-6


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 3), st.integers(0, 4), st.floats(-1.0, 1.5))
def test_two_objective_log_ehvi_with_repeated_and_padded_front_rows(seed, repeats, padding, shift):
    # The two-objective path reads each box's upper bound off its neighbour in the staircase: repeated front
    # points (zero-width boxes) and padded rows must not change the value or its gradient.
    rng = np.random.default_rng(seed)
    front = rng.uniform(size=(5, 2))
    front = np.concatenate([front, front[rng.integers(0, 5, size=repeats)], rng.uniform(size=(padding, 2))])
    valid = np.arange(front.shape[0]) < 5 + repeats
    boxes = non_dominated_boxes(jnp.asarray(front), jnp.zeros(2), jnp.asarray(valid))
    mean = jnp.asarray(rng.uniform(size=2) + shift)
    std = jnp.asarray(rng.uniform(0.05, 0.8, size=2))
    e, g_e = jax.value_and_grad(lambda mu: ehvi_from_boxes_general(mu, std, boxes))(mean)
    log_e, g_log = jax.value_and_grad(lambda mu: log_ehvi_from_boxes(mu, std, boxes))(mean)
    assert np.all(np.isfinite(np.asarray(g_log)))
    if float(e) > 1e-200:
        assert float(log_e) == pytest.approx(np.log(float(e)), abs=1e-9, rel=1e-9)
        np.testing.assert_allclose(np.asarray(g_log), np.asarray(g_e) / float(e), rtol=1e-6, atol=1e-9)


def test_log_ehvi_keeps_a_slope_towards_the_front_far_below_the_reference():
    front = jnp.array([[1.0, 0.2], [0.5, 0.6], [0.1, 1.0]])
    boxes = non_dominated_boxes(front, jnp.zeros(2))
    std = jnp.full(2, 0.05)
    values = []
    for shift in (1.0, 5.0, 20.0, 100.0):  # EHVI itself is exactly 0 from about shift 2 on
        mean = jnp.full(2, -shift)
        v, g = jax.value_and_grad(lambda mu: log_ehvi_from_boxes(mu, std, boxes))(mean)
        assert np.isfinite(float(v)) and np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g) > 0)
        values.append(float(v))
    assert values == sorted(values, reverse=True)
    # No box at all (every slot masked): a finite floor, finite gradients.
    empty = boxes._replace(mask=jnp.zeros_like(boxes.mask))
    v, g = jax.value_and_grad(lambda mu: log_ehvi_from_boxes(mu, std, empty))(jnp.zeros(2))
    assert np.isfinite(float(v)) and np.all(np.isfinite(np.asarray(g)))


def _two_gps(seed, n=60, d=6):
    from jaxopt_mat import fit_gp

    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, d))
    y = np.stack([np.sin(3 * x[:, 0]) + x[:, 1], np.cos(2 * x[:, 2]) - x[:, 3] ** 2], -1)
    models = tuple(fit_gp(x, y[:, j], key=jax.random.key(j), low=np.zeros(d), high=np.ones(d)) for j in range(2))
    return rng, x, y, models


def _predict_models(features, models):
    posts = [m.predict(features) for m in models]
    return jnp.stack([p.mean for p in posts], -1), jnp.stack([jnp.sqrt(p.var) for p in posts], -1)


def test_float32_pool_scores_stay_close_to_float64_and_unpadded_models_predict_the_same():
    rng, x, y, models = _two_gps(21)
    feats = jnp.asarray(rng.uniform(size=(3000, x.shape[1])))
    front, ref = jnp.asarray(y), jnp.asarray(y.min(axis=0) - 0.1)
    e64 = np.asarray(score_pool(_predict_models, (models,), feats, front, ref))
    e32 = score_pool(_predict_models, (models,), feats, front, ref, dtype=jnp.float32)
    assert e32.dtype == jnp.float32
    e32 = np.asarray(e32, np.float64)
    assert np.max(np.abs(e32 - e64)) <= 3e-2 * e64.max()  # noise-free data, noise at its floor: the worst case
    assert e64[np.argmax(e32)] >= 0.99 * e64.max()
    # Removing the padding rows (60 real of 64) changes no prediction.
    trimmed = tuple(m.without_padding() for m in models)
    assert trimmed[0].x_unit.shape[0] == 60 and models[0].x_unit.shape[0] == 64
    for a, b in zip(_predict_models(feats[:500], models), _predict_models(feats[:500], trimmed)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)


def test_ehvi_also_heads_into_a_reference_box_nothing_has_reached(tmp_path):
    """While no measured point beats a configured reference, the objectives' GPs join the outcome constraints."""
    import pandas as pd

    import jaxopt_mat as jm
    from jaxopt_mat.strategies.pareto import toward_reference
    from jaxopt_mat.surrogates.independent import fit_objectives

    spec = {"name": "box", "seed": 0, "initial_design": 6,
            "inputs": [{"name": "a", "low": 0.0, "high": 1.0}, {"name": "b", "low": 0.0, "high": 1.0}],
            "objective": {"kind": "pareto", "reference": [0.5, 2.0],
                          "objectives": [{"name": "f", "direction": "minimize"}, {"name": "g", "direction": "maximize"}]}}
    camp = jm.Campaign.create(tmp_path / "c", spec)
    x = np.random.default_rng(0).uniform(size=(6, 2))
    camp.observe(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "f": 1.0 + x[:, 0], "g": 1.0 + x[:, 1]}))
    snap = camp.snapshot()
    models = fit_objectives(snap.conditions.x, snap.conditions.y, key=jax.random.key(0), low=snap.space.low,
                            high=snap.space.high)
    ref = snap.reference_point(snap.conditions.y * snap.config.objective.signs)
    box = toward_reference(snap, models, ref, None)
    np.testing.assert_allclose(box.bounds, [0.5, 2.0])
    np.testing.assert_allclose(box.signs, [1.0, -1.0])  # f <= 0.5 and g >= 2.0
    inside, outside = np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]])  # f small and g large / the opposite
    assert float(box.log_probability(inside)[0]) > float(box.log_probability(outside)[0])
    # one measured point inside the box: EHVI alone again
    camp.observe(pd.DataFrame({"a": [0.2], "b": [0.9], "f": [0.4], "g": [2.5]}))
    snap = camp.snapshot()
    assert toward_reference(snap, models, snap.reference_point(snap.conditions.y * snap.config.objective.signs),
                            None) is None


def test_ehvi_improves_on_the_models_front_not_the_measured_values(tmp_path):
    """The front EHVI improves on is the objectives' posterior means at the counted conditions (maximisation
    form); the reference alone when no condition keeps the outcome constraints."""
    import pandas as pd

    import jaxopt_mat as jm
    from jaxopt_mat.strategies.pareto import model_front
    from jaxopt_mat.surrogates.independent import fit_objectives

    spec = {"name": "front", "seed": 0, "initial_design": 6,
            "inputs": [{"name": "a", "low": 0.0, "high": 1.0}, {"name": "b", "low": 0.0, "high": 1.0}],
            "objective": {"kind": "pareto", "objectives": [{"name": "f", "direction": "minimize"},
                                                           {"name": "g", "direction": "maximize"}]},
            "outcome_constraints": [{"expr": "purity >= 0.5"}]}
    camp = jm.Campaign.create(tmp_path / "c", spec)
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(12, 2))
    ripple = 0.3 * np.sin(40 * x[:, 0])  # what a smooth GP explains as noise: means differ from the values
    camp.observe(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "f": x[:, 0] + ripple, "g": x[:, 1] - ripple,
                               "purity": np.where(np.arange(12) < 8, 0.9, 0.1)}))
    snap = camp.snapshot()
    models = fit_objectives(snap.conditions.x, snap.conditions.y, key=jax.random.key(0), low=snap.space.low,
                            high=snap.space.high)
    ref = snap.reference_point(snap.conditions.y * snap.config.objective.signs)
    front = model_front(snap, models, ref)
    kept = snap.conditions.x[snap.satisfied]
    assert front.shape == (8, 2) and kept.shape == (8, 2)
    expected = np.stack([-np.asarray(models[0].predict(jnp.asarray(kept)).mean),
                         np.asarray(models[1].predict(jnp.asarray(kept)).mean)], -1)
    np.testing.assert_allclose(front, expected, rtol=1e-9, atol=1e-12)
    assert np.max(np.abs(front - (snap.conditions.y * snap.config.objective.signs)[snap.satisfied])) > 1e-3
    # No condition keeps the constraint: the reference point alone.
    camp2 = jm.Campaign.create(tmp_path / "d", spec)
    camp2.observe(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "f": x[:, 0], "g": x[:, 1], "purity": 0.1}))
    snap2 = camp2.snapshot()
    np.testing.assert_array_equal(model_front(snap2, models, ref), np.asarray(ref, float)[None])
