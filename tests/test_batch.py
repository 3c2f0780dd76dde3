import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from jaxopt_mat import fit_gp, latin_hypercube, local_penalization_batch
from jaxopt_mat.acquisition.batch import estimate_lipschitz, log_penalizer


def test_penalizer_matches_the_formula_of_gonzalez_et_al():
    rng = np.random.default_rng(0)
    u, centers = rng.uniform(size=(6, 3)), rng.uniform(size=(2, 3))
    mean, std, M, L = np.array([0.2, 0.9]), np.array([0.3, 0.1]), 0.8, 2.5
    ours = log_penalizer(jnp.asarray(u), jnp.asarray(centers), jnp.asarray(mean), jnp.asarray(std), M, L, jnp.ones(2))
    ref = np.zeros(6)
    for j in range(2):
        r = np.linalg.norm(u - centers[j], axis=1)
        ref += norm.logcdf((L * r - max(M - mean[j], 0.0)) / std[j])
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-15)
    masked = log_penalizer(jnp.asarray(u), jnp.asarray(centers), jnp.asarray(mean), jnp.asarray(std), M, L, jnp.array([1.0, 0.0]))
    r0 = np.linalg.norm(u - centers[0], axis=1)
    np.testing.assert_allclose(masked, norm.logcdf((L * r0 - 0.6) / 0.3), rtol=1e-10, atol=1e-15)


@pytest.fixture(scope="module")
def problem(agnp_space):
    x = latin_hypercube(agnp_space, 40, seed=0)
    u = np.asarray(agnp_space.to_unit(x))
    y = -np.sum((u - 0.35) ** 2, axis=1)
    model = fit_gp(x, y, key=jax.random.key(0), low=agnp_space.low, high=agnp_space.high)
    return agnp_space, x, y, model


def test_lipschitz_estimate_bounds_observed_slopes(problem):
    space, x, y, model = problem
    L = float(estimate_lipschitz(model, space, jax.random.key(0)))
    u = np.asarray(space.to_unit(x))
    mean = np.asarray(model.predict(jnp.asarray(x)).mean)
    slopes = np.abs(mean[:, None] - mean[None]) / (np.linalg.norm(u[:, None] - u[None], axis=-1) + np.eye(len(u)))
    # Mean-gradient maximum over many points is a Lipschitz estimate: pairwise
    # secant slopes of the mean cannot exceed the true constant, and should not
    # exceed the estimate by much.
    assert L >= 0.9 * slopes.max()
    # And from above: the estimate is a maximum of gradient norms at sampled points, so it
    # cannot exceed the largest gradient norm over the feasible set, found here by a dense
    # sample and gradient ascent from its best points (a fallback constant or a scaled
    # estimate would exceed it: the mean's steepest slope here is about 3).
    steepest = float(_steepest_slope(model, space))
    assert steepest < 10.0
    assert L <= steepest * (1.0 + 1e-6)


def _steepest_slope(model, space):
    from jaxopt_mat import maximize

    def mean_unit(u):
        return model.predict(space.from_unit(u[None])).mean[0]

    def slope(x):
        g = jax.vmap(jax.grad(mean_unit))(space.to_unit(x))
        return jnp.sqrt(jnp.sum(g * g, axis=-1))

    res = maximize(slope, space, key=jax.random.key(7), n_starts=32, n_raw=20_000, n_steps=300)
    return res.value


def test_batch_is_feasible_distinct_and_full(problem):
    space, x, y, model = problem
    b = local_penalization_batch(model, space, 15, key=jax.random.key(1), best=y.max(), init=x[np.argsort(-y)[:3]])
    assert b.x.shape == (15, 5)
    assert bool(jnp.all(space.is_feasible(b.x, atol=0.0)))
    u = np.asarray(space.to_unit(b.x))
    d = np.linalg.norm(u[:, None] - u[None], axis=-1) + np.eye(15)
    assert d.min() > 1e-4
    assert np.all(np.isfinite(np.asarray(b.log_acquisition)))


def test_first_point_of_the_batch_maximizes_unpenalized_log_ei(problem):
    space, x, y, model = problem
    b = local_penalization_batch(model, space, 3, key=jax.random.key(2), best=y.max())
    from jaxopt_mat import log_expected_improvement, maximize_random

    def lei(xx):
        p = model.predict(xx)
        return log_expected_improvement(p.mean, p.std, y.max())

    r = maximize_random(lei, space, key=jax.random.key(3), n=20000)
    assert float(b.log_acquisition[0]) >= float(r.value) - 1e-6


def test_batch_size_is_limited():
    with pytest.raises(ValueError, match="between 1 and 96"):
        local_penalization_batch(None, None, 97, key=jax.random.key(0), best=0.0)


@pytest.mark.heavy
def test_a_constraint_model_keeps_the_batch_where_it_is_probably_satisfied():
    from jaxopt_mat import SearchSpace
    from jaxopt_mat.surrogates.outcome_constraints import outcome_constraints

    space = SearchSpace([0.0, 0.0], [1.0, 1.0])
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(25, 2))
    y = x[:, 0] + 0.3 * x[:, 1]            # best towards x0 = 1 ...
    c = x[:, 0]                            # ... but x0 must stay below 0.5
    model = fit_gp(x, y, key=jax.random.key(0), low=space.low, high=space.high)
    cmodel = fit_gp(x, c, key=jax.random.key(1), low=space.low, high=space.high)
    free = local_penalization_batch(model, space, 5, key=jax.random.key(2), best=y.max())
    held = local_penalization_batch(model, space, 5, key=jax.random.key(2), best=y.max(),
                                    constraints=outcome_constraints([cmodel], [0.5], [True]))
    assert np.median(np.asarray(free.x)[:, 0]) > 0.8
    assert np.all(np.asarray(held.x)[:, 0] < 0.6)
    from jax.scipy.special import log_ndtr

    from jaxopt_mat import log_expected_improvement

    pc, po = cmodel.predict(held.x), model.predict(held.x)
    expected = log_expected_improvement(po.mean, po.std, y.max()) + log_ndtr((0.5 - pc.mean) / pc.std)
    np.testing.assert_allclose(held.log_acquisition, expected, rtol=1e-8, atol=1e-10)


def test_one_program_serves_batches_of_one_to_eight_and_keeps_the_first_picks(problem):
    # A batch of q fills the first q of the compiled program's 8 slots, so an asynchronous loop asking for
    # 1, 2, ..., 8 conditions compiles once, and a smaller batch is the start of a larger one (greedy picks).
    from jaxopt_mat.acquisition import batch as batch_mod

    space, x, y, model = problem
    key = jax.random.key(4)
    batches = {5: local_penalization_batch(model, space, 5, key=key, best=y.max())}
    before = batch_mod._local_penalization._cache_size()
    for q in (2, 8, 1):
        batches[q] = local_penalization_batch(model, space, q, key=key, best=y.max())
        assert batches[q].x.shape == (q, 5) and batches[q].log_acquisition.shape == (q,)
    assert batch_mod._local_penalization._cache_size() == before
    for q in (1, 2, 5):
        np.testing.assert_allclose(batches[q].x, batches[8].x[:q], atol=1e-12)
        np.testing.assert_allclose(batches[q].mean, batches[8].mean[:q], atol=1e-12)


def test_skipped_slots_of_a_greedy_batch_change_nothing():
    # The same sequential batch built by a scan of exactly q steps and by a scan of 8 slots of which q are active.
    from jaxopt_mat import SearchSpace
    from jaxopt_mat.optimize import batch_slots, greedy_batch_unit

    assert [batch_slots(q) for q in (1, 8, 9, 33, 96)] == [8, 8, 16, 64, 96]
    space = SearchSpace([0.0, -1.0, 0.0], [1.0, 1.0, 2.0], A=[[1.0, 0.0, 1.0]], b=[2.5])
    target = jnp.asarray([0.3, 0.5, 0.6])

    def score(chosen, u):  # near the target, away from the points chosen so far
        d2 = jnp.sum((u[:, None] - chosen[None]) ** 2, axis=-1)
        return -jnp.sum((u - target) ** 2, axis=-1) - jnp.sum(jnp.exp(-d2 / 0.02) * (chosen[:, 0] >= 0), axis=-1)

    def record(chosen, k, u, value):
        return chosen.at[k].set(u), value

    def build(slots, active):
        carry = jnp.full((slots, 3), -10.0)
        return greedy_batch_unit(score, record, carry, space, jax.random.key(0), slots, n_starts=8, n_raw=128,
                                 n_steps=40, learning_rate=0.05, active=active)

    exact = jax.jit(build, static_argnums=(0, 1))(3, None)
    padded = jax.jit(build, static_argnums=0)(8, jnp.asarray(3))
    np.testing.assert_allclose(padded[1][:3], exact[1], atol=1e-9)
    np.testing.assert_allclose(padded[2][:3], exact[2], atol=1e-9)
    assert np.all(np.asarray(padded[1][3:]) == 0) and np.all(np.asarray(padded[0][3:]) == -10.0)


def test_the_lipschitz_constant_is_the_models_not_the_calls(problem):
    # Two batches asked for in turn (the second while the first is pending) penalize with the same constant,
    # so the pending batch keeps the second away as a batch's own earlier picks would.
    space, x, y, model = problem
    a = local_penalization_batch(model, space, 2, key=jax.random.key(11), best=y.max())
    b = local_penalization_batch(model, space, 2, key=jax.random.key(12), best=y.max(), pending=np.asarray(a.x))
    assert float(a.lipschitz) == float(b.lipschitz) > 0
    assert not np.allclose(a.x, b.x)
