import gpjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_mat import DataError, fit_gp
from jaxopt_mat import padded
from jaxopt_mat.surrogates import gp as gpmod
from jaxopt_mat.surrogates import gp_quality


def _data(n=30, d=3, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, d)) * np.arange(1, d + 1) * 10.0
    u = x / (np.arange(1, d + 1) * 10.0)
    y = np.sin(5 * u[:, 0]) + u[:, 1] ** 2 + noise * rng.normal(size=n)
    return x, y


def _matern52(a, b, ls, var):
    r = np.sqrt(np.sum(((a[:, None, :] - b[None, :, :]) / ls) ** 2, axis=-1)) * np.sqrt(5.0)
    return var * (1 + r + r**2 / 3) * np.exp(-r)


@pytest.fixture(scope="module")
def fitted():
    x, y = _data()
    return x, y, fit_gp(x, y, key=jax.random.key(0))


def test_marginal_likelihood_equals_gpjax_conjugate_mll():
    rng = np.random.default_rng(1)
    u = rng.uniform(size=(20, 3))
    y = rng.normal(size=20)
    theta = jnp.array([np.log(0.3), np.log(0.5), np.log(1.2), np.log(1.3), np.log(0.05), 0.2])
    ours = gpmod.negative_log_marginal_likelihood(theta, jnp.asarray(u), jnp.asarray(y), jnp.ones(20))
    ls, var, noise, m = gpmod._unpack(theta, 3)
    # gpjax's own kernel computation (pairwise), not the matrix-product one the fit uses.
    prior = gpjax.gps.Prior(mean_function=gpjax.mean_functions.Constant(m),
                             kernel=gpjax.kernels.Matern52(lengthscale=ls, variance=var),
                             jitter=float(gpmod._JITTER * var))
    model = prior * gpjax.likelihoods.Gaussian(obs_stddev=jnp.sqrt(noise))
    theirs = -gpjax.objectives.conjugate_mll(model, gpjax.Dataset(X=jnp.asarray(u), y=jnp.asarray(y)[:, None]))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_fit_covariance_and_its_gradient_equal_gpjax_pairwise_computation():
    """The fit's kernel (gpjax Matern52 with the matrix-product computation) against gpjax's default one."""
    rng = np.random.default_rng(3)
    u = jnp.asarray(rng.uniform(size=(30, 4)))
    u = u.at[5].set(u[4])  # a repeated input: distance zero
    mask = jnp.ones(30)

    def total(log_ls, kernel):
        return jnp.sum(jnp.sin(kernel(jnp.exp(log_ls)).cross_covariance(u, u)))

    log_ls = jnp.log(jnp.array([0.2, 0.5, 1.5, 40.0]))
    ours = lambda ls: gpmod.matern52(ls, jnp.asarray(1.3))  # noqa: E731
    theirs = lambda ls: gpjax.kernels.Matern52(lengthscale=ls, variance=jnp.asarray(1.3))  # noqa: E731
    np.testing.assert_allclose(ours(jnp.exp(log_ls)).cross_covariance(u, u),
                               theirs(jnp.exp(log_ls)).cross_covariance(u, u), rtol=1e-12, atol=1e-12)
    g_ours = jax.jit(jax.grad(lambda l: total(l, ours)))(log_ls)
    g_theirs = jax.jit(jax.grad(lambda l: total(l, theirs)))(log_ls)
    np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-9, atol=1e-9)
    theta = jnp.concatenate([log_ls, jnp.array([0.1, np.log(0.01), 0.0])])
    g = jax.jit(jax.grad(gpmod.negative_log_marginal_likelihood))(theta, u, jnp.asarray(rng.normal(size=30)), mask)
    assert np.all(np.isfinite(np.asarray(g)))


def test_padding_does_not_change_the_marginal_likelihood():
    rng = np.random.default_rng(2)
    u = jnp.asarray(rng.uniform(size=(10, 2)))
    y = jnp.asarray(rng.normal(size=10))
    theta = jnp.array([np.log(0.4), np.log(0.7), 0.1, np.log(0.01), 0.0])
    plain = gpmod.negative_log_marginal_likelihood(theta, u, y, jnp.ones(10))
    up = jnp.zeros((16, 2)).at[:10].set(u)
    yp = jnp.zeros(16).at[:10].set(y)
    mask = jnp.zeros(16).at[:10].set(1.0)
    padded = gpmod.negative_log_marginal_likelihood(theta, up, yp, mask)
    np.testing.assert_allclose(plain, padded, rtol=1e-10)


def test_hand_written_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    u = jnp.asarray(rng.uniform(size=(12, 2)))
    y = jnp.asarray(rng.normal(size=12))
    theta = jnp.array([np.log(0.4), np.log(0.7), 0.1, np.log(0.05), 0.3])
    f = lambda t: gpmod.negative_log_marginal_likelihood(t, u, y, jnp.ones(12))
    g = jax.grad(f)(theta)
    eps = 1e-6
    fd = [(f(theta.at[i].add(eps)) - f(theta.at[i].add(-eps))) / (2 * eps) for i in range(theta.size)]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_predictions_match_a_float64_numpy_reference(fitted):
    x, y, model = fitted
    rng = np.random.default_rng(4)
    xs = rng.uniform(size=(7, 3)) * np.array([10.0, 20.0, 30.0])
    mean, var = model.predict(jnp.asarray(xs))
    # Reference: textbook GP regression on the same scaled data and hyper-parameters.
    low, high = np.asarray(model.low), np.asarray(model.high)
    u, us = (x - low) / (high - low), (xs - low) / (high - low)
    ls, v, noise, m = (np.asarray(model.lengthscale), float(model.variance), float(model.noise), float(model.mean_const))
    ys = (y - float(model.y_loc)) / float(model.y_scale)
    K = _matern52(u, u, ls, v) + (noise + 1e-8 * v) * np.eye(len(u))
    Ks = _matern52(us, u, ls, v)
    ref_mean = m + Ks @ np.linalg.solve(K, ys - m)
    ref_var = v - np.sum(Ks * np.linalg.solve(K, Ks.T).T, axis=1)
    np.testing.assert_allclose(mean, float(model.y_loc) + float(model.y_scale) * ref_mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(var, float(model.y_scale) ** 2 * ref_var, rtol=1e-5, atol=1e-10)


def test_fit_explains_a_smooth_function(fitted):
    x, y, model = fitted
    q = gp_quality.fit_quality(model, y)
    assert q["loo_r2"] > 0.8
    assert 0.005 < q["noise_std"] < 0.2  # true noise 0.05


def test_leave_one_out_equals_refitting_without_each_point(fitted):
    x, y, model = fitted
    loo = gp_quality.leave_one_out(model)
    low, high = np.asarray(model.low), np.asarray(model.high)
    u = (x - low) / (high - low)
    ls, v, noise, m = (np.asarray(model.lengthscale), float(model.variance), float(model.noise), float(model.mean_const))
    ys = (y - float(model.y_loc)) / float(model.y_scale)
    for i in [0, 7, 19]:
        keep = np.arange(len(y)) != i
        K = _matern52(u[keep], u[keep], ls, v) + (noise + 1e-8 * v) * np.eye(keep.sum())
        k = _matern52(u[i : i + 1], u[keep], ls, v)[0]
        mu = m + k @ np.linalg.solve(K, ys[keep] - m)
        np.testing.assert_allclose(loo.mean[i], float(model.y_loc) + float(model.y_scale) * mu, rtol=1e-5)


def test_model_survives_jit_vmap_and_grad(fitted):
    x, _, model = fitted
    pts = jnp.asarray(x[:4]) + 0.1
    mean, var = model.predict(pts)
    jm, jv = jax.jit(lambda m, p: m.predict(p))(model, pts)
    np.testing.assert_allclose(jm, mean, rtol=1e-10)
    vm = jax.vmap(lambda p: model.predict(p[None]).mean[0])(pts)
    np.testing.assert_allclose(vm, mean, rtol=1e-10)
    g = jax.grad(lambda p: model.predict(p[None]).mean[0])(pts[0])
    eps = 1e-5
    fd = [(model.predict((pts[0] + eps * e)[None]).mean[0] - model.predict((pts[0] - eps * e)[None]).mean[0]) / (2 * eps)
          for e in np.eye(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-8)
    assert np.all(np.isfinite(jax.grad(lambda p: model.predict(p[None]).var[0])(jnp.asarray(x[0]))))


def test_a_new_row_in_the_same_bucket_does_not_recompile():
    x, y = _data(n=20)
    fit_gp(x, y, key=jax.random.key(0))
    before = gpmod._fit_hyperparameters._cache_size()
    fit_gp(np.vstack([x, x[:1] + 0.5]), np.append(y, 0.3), key=jax.random.key(1))
    assert gpmod._fit_hyperparameters._cache_size() == before


def test_predict_rows_equals_predict_and_compiles_once_per_bucket(fitted):
    x, _, model = fitted
    rng = np.random.default_rng(3)
    sizes = (1, 7, 40, 64)
    before = None
    for n in sizes:
        rows = rng.uniform(size=(n, 3)) * np.arange(1, 4) * 10.0
        ours, eager = padded.predict_rows(model, rows), model.predict(rows)
        assert isinstance(ours.mean, np.ndarray) and ours.mean.shape == (n,)
        np.testing.assert_allclose(ours.mean, eager.mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours.var, eager.var, rtol=1e-10, atol=1e-14)
        before = padded._predict._cache_size() if before is None else before
    assert padded._predict._cache_size() == before  # 1 to 64 rows: one program
    assert padded.predict_rows(model, np.zeros((0, 3))).mean.shape == (0,)


def test_on_device_equals_jnp_asarray_and_compiles_nothing(caplog):
    # jnp.asarray of a numpy array compiles a small program per shape (JAX 0.10); a short command pays ~15 ms each.
    import logging

    values = [(np.arange(6.0).reshape(2, 3) + 0.25, None), (np.float64(2.5), None), (True, None),
              (np.array([1, 0, 1]), np.float64), (7, np.int32), (np.arange(13.0).reshape(13, 1), jnp.float32)]
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.DEBUG, logger="jax"):
            moved = [padded.on_device(a, dtype) for a, dtype in values]
    finally:
        jax.config.update("jax_log_compiles", False)
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()]
    for (a, dtype), ours in zip(values, moved):
        expected = jnp.asarray(a, dtype)
        assert isinstance(ours, jax.Array) and ours.dtype == expected.dtype and ours.shape == expected.shape
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(expected))


def test_hyperparameters_kept_in_the_state_equal_the_models_own(fitted):
    from jaxopt_mat.strategies.fits import hyperparameters_of

    model = fitted[2]
    np.testing.assert_allclose(hyperparameters_of(model), np.asarray(model.hyperparameters), rtol=1e-14, atol=1e-15)
    # A fit that keeps them (no iterations) gives back the very same numbers: the state can tell it kept them.
    x, y, _ = fitted
    again = fit_gp(x, y, key=jax.random.key(5), init=hyperparameters_of(model), max_iter=0)
    assert hyperparameters_of(again) == hyperparameters_of(model)


def test_variance_stays_positive_at_training_points_and_far_away(fitted):
    x, _, model = fitted
    _, var = model.predict(jnp.asarray(np.vstack([x[:5], x[:5] * 100.0])))
    assert bool(jnp.all(var > 0))


@pytest.mark.parametrize("x, y, message", [
    (np.zeros((3, 2)), np.zeros(4), "shape"),
    (np.zeros((1, 2)), np.zeros(1), "at least 2"),
    (np.array([[0.0], [np.nan]]), np.zeros(2), "NaN"),
])
def test_bad_training_data_is_refused(x, y, message):
    with pytest.raises(DataError, match=message):
        fit_gp(x, y, key=jax.random.key(0))


def test_float32_inputs_raise_a_warning_and_still_give_a_finite_fit():
    x, y = _data(n=8)
    with pytest.warns(UserWarning, match="float32"):
        model = fit_gp(x.astype(np.float32), y.astype(np.float32), key=jax.random.key(0))
    post = model.predict(x.astype(np.float32))
    assert np.all(np.isfinite(np.asarray(post.mean))) and np.all(np.isfinite(np.asarray(post.std)))
    assert np.corrcoef(np.asarray(post.mean), y)[0, 1] > 0.9  # a fit, not just a number


def test_prediction_kernel_equals_gpjax_matern52():
    rng = np.random.default_rng(11)
    a, b = rng.uniform(size=(40, 3)), rng.uniform(size=(25, 3))
    b[:5] = a[:5]  # coincident points: distance zero
    ls, var = jnp.array([0.3, 1.2, 0.7]), jnp.asarray(1.7)
    ref = gpjax.kernels.Matern52(lengthscale=ls, variance=var).cross_covariance(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(gpmod.matern52_cross(jnp.asarray(a), jnp.asarray(b), ls, var), ref, rtol=1e-12, atol=1e-12)
    g = jax.grad(lambda u: jnp.sum(gpmod.matern52_cross(u, jnp.asarray(b), ls, var)))(jnp.asarray(a))
    assert np.all(np.isfinite(np.asarray(g)))


def test_believer_variance_equals_refitting_with_the_believed_points():
    """Conditioning on picked points at their predicted means = the GP with those rows added noise-free."""
    rng = np.random.default_rng(13)
    x = rng.uniform(size=(20, 2))
    y = np.sin(5 * x[:, 0]) + x[:, 1]
    model = fit_gp(x, y, key=jax.random.key(0), low=np.zeros(2), high=np.ones(2))
    picked = jnp.asarray(rng.uniform(size=(4, 2)))
    mask = jnp.array([1.0, 1.0, 0.0, 1.0])
    xt = jnp.asarray(rng.uniform(size=(30, 2)))
    got = model.predict_believer(xt, picked, mask)
    # Reference: dense float64 algebra in standardized units with the fitted hyper-parameters.
    u = np.asarray(model.x_unit)[: 20]
    keep = np.asarray(picked)[np.asarray(mask) > 0]
    U = np.concatenate([u, keep])
    ls, v, noise = np.asarray(model.lengthscale), float(model.variance), float(model.noise)
    K = _matern52(U, U, ls, v) + np.diag(np.r_[np.full(20, noise + 1e-8 * v), np.full(len(keep), 1e-8 * v)])
    ks = _matern52(np.asarray(xt), U, ls, v)
    var = v - np.sum(ks * np.linalg.solve(K, ks.T).T, axis=1)
    np.testing.assert_allclose(got.var, float(model.y_scale) ** 2 * np.maximum(var, 1e-10 * v), rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(got.mean, model.predict(xt).mean, rtol=1e-12)
    assert np.all(np.asarray(got.var) <= np.asarray(model.predict(xt).var) + 1e-12)


def _penalised_nlml(model, y):
    """The fit's objective (negative log marginal likelihood minus log prior) at the model's hyper-parameters."""
    ys = (np.asarray(y) - float(model.y_loc)) / float(model.y_scale)
    y_pad = np.zeros(model.x_unit.shape[0])
    y_pad[: ys.size] = ys
    return float(gpmod._objective(model.hyperparameters, model.x_unit, jnp.asarray(y_pad), model.mask))


def test_warm_start_from_a_fit_on_fewer_points_is_as_good_as_a_cold_fit():
    x, y = _data(n=45, seed=4)
    earlier = fit_gp(x[:30], y[:30], key=jax.random.key(0))
    cold = fit_gp(x, y, key=jax.random.key(1))
    compiled = gpmod._fit_hyperparameters._cache_size()
    warm = fit_gp(x, y, key=jax.random.key(1), init=earlier.hyperparameters)
    assert gpmod._fit_hyperparameters._cache_size() == compiled  # the cold fit's program serves the warm one
    assert _penalised_nlml(warm, y) <= _penalised_nlml(cold, y) + 0.05
    # Restarting from a fit's own optimum stays there.
    again = fit_gp(x, y, key=jax.random.key(2), init=cold.hyperparameters)
    assert _penalised_nlml(again, y) <= _penalised_nlml(cold, y) + 1e-6
    np.testing.assert_allclose(again.hyperparameters, cold.hyperparameters, atol=1e-3)


def test_a_warm_start_of_the_wrong_size_is_refused():
    x, y = _data(n=10)
    with pytest.raises(DataError, match="init must be 6"):
        fit_gp(x, y, key=jax.random.key(0), init=np.zeros(4))


@pytest.mark.parametrize("d", [2, 6, 17])
def test_the_length_scale_prior_is_a_log_normal_density_over_the_length_scale(d):
    """Its mode is exp(mu - sigma^2) (as BoTorch's MAP), not exp(mu); checked against scipy's log-normal density."""
    import math

    from scipy.stats import lognorm

    from jaxopt_mat.surrogates.gp_likelihood import _log_prior

    mu, sigma = math.sqrt(2.0) + 0.5 * math.log(d), math.sqrt(3.0)
    rng = np.random.default_rng(d)
    base = jnp.asarray(np.concatenate([rng.normal(size=d), [0.3, -3.0, 0.1]]))
    for ls in (0.05, 0.4, 3.0):
        theta = base.at[0].set(math.log(ls))
        other = base.at[0].set(math.log(1.0))
        by_scipy = lognorm(s=sigma, scale=math.exp(mu)).logpdf(ls) - lognorm(s=sigma, scale=math.exp(mu)).logpdf(1.0)
        np.testing.assert_allclose(float(_log_prior(theta, d) - _log_prior(other, d)), by_scipy, rtol=1e-10)
    grad = jax.grad(lambda t: _log_prior(base.at[0].set(t), d))(mu - sigma**2)
    assert abs(float(grad)) < 1e-10
