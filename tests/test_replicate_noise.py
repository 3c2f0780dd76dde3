"""Replicate-aware noise: each median's known noise from its replicates, added to a learned common level."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import cho_factor, cho_solve

import jaxopt_mat as jm
from jaxopt_mat.data import combine_replicates, median_efficiency, replicate_noise_variance
from jaxopt_mat.errors import DataError
from jaxopt_mat.surrogates import gp_likelihood
from jaxopt_mat.surrogates.gp import fit_gp


def matern52_numpy(a, b, ls, var):
    r = np.sqrt(np.sum(((a[:, None, :] - b[None, :, :]) / ls) ** 2, axis=-1))
    return var * (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)


def test_the_likelihood_and_posterior_match_dense_numpy_algebra():
    rng = np.random.default_rng(0)
    n, d = 14, 3
    u, y = rng.uniform(size=(n, d)), rng.normal(size=n)
    known = rng.uniform(0.0, 0.3, size=n)
    theta = np.concatenate([np.log([0.3, 0.5, 0.8]), [np.log(1.3), np.log(0.05), 0.2]])
    ls, var, noise, m = np.exp(theta[:3]), np.exp(theta[3]), np.exp(theta[4]), theta[5]
    K = matern52_numpy(u, u, ls, var) + np.diag(noise + known + 1e-8 * var)
    c = cho_factor(K, lower=True)
    r = y - m
    reference = 0.5 * r @ cho_solve(c, r) + np.sum(np.log(np.diag(c[0]))) + 0.5 * n * np.log(2 * np.pi)
    ours = gp_likelihood.negative_log_marginal_likelihood(jnp.asarray(theta), jnp.asarray(u), jnp.asarray(y),
                                                          jnp.ones(n), jnp.asarray(known))
    np.testing.assert_allclose(float(ours), reference, rtol=1e-10)
    # The fitted model's posterior mean and latent variance against the same algebra at its own hyper-parameters.
    x = rng.uniform(size=(n, d))
    ys = np.sin(4 * x[:, 0]) + x[:, 1]
    known_y = rng.uniform(0.0, 0.05, size=n)
    model = fit_gp(x, ys, key=jax.random.key(0), low=np.zeros(d), high=np.ones(d), noise_variance=known_y)
    t = np.asarray(model.hyperparameters)
    loc, scale = float(model.y_loc), float(model.y_scale)
    K = matern52_numpy(x, x, np.exp(t[:d]), np.exp(t[d])) + np.diag(np.exp(t[d + 1]) + known_y / scale**2
                                                                      + 1e-8 * np.exp(t[d]))
    xs = rng.uniform(size=(6, d))
    ks = matern52_numpy(xs, x, np.exp(t[:d]), np.exp(t[d]))
    c = cho_factor(K, lower=True)
    mean = t[-1] + ks @ cho_solve(c, (ys - loc) / scale - t[-1])
    latent = np.exp(t[d]) - np.sum(ks * cho_solve(c, ks.T).T, axis=1)
    post = model.predict(xs)
    np.testing.assert_allclose(np.asarray(post.mean), loc + scale * mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(post.var), scale**2 * latent, rtol=1e-6, atol=1e-12)


def test_zero_known_noise_is_the_plain_fit_and_bad_values_are_refused():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(size=(10, 2)), rng.normal(size=10)
    a = fit_gp(x, y, key=jax.random.key(0))
    b = fit_gp(x, y, key=jax.random.key(0), noise_variance=np.zeros(10))
    np.testing.assert_array_equal(np.asarray(a.hyperparameters), np.asarray(b.hyperparameters))
    for bad in (np.full(10, -1.0), np.full(9, 0.1), np.full(10, np.nan)):
        with pytest.raises(DataError, match="noise_variance must be 10 non-negative finite numbers"):
            fit_gp(x, y, key=jax.random.key(0), noise_variance=bad)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=2, max_size=8), st.integers(0, 2**16))
def test_replicate_noise_shrinks_each_spread_towards_the_pooled_one(counts, seed):
    rng = np.random.default_rng(seed)
    x = np.repeat(np.arange(len(counts), dtype=float)[:, None], counts, axis=0)
    y = rng.normal(scale=rng.uniform(0.1, 2.0, size=len(counts)).repeat(counts))
    cond = combine_replicates(x, y)
    noise = replicate_noise_variance(cond, y)
    n = np.asarray(counts, float)
    if np.all(n == 1):
        np.testing.assert_array_equal(noise, 0.0)  # nothing to tell without replicates
        return
    own = np.array([np.var(y[cond.index == g], ddof=1) if c > 1 else 0.0 for g, c in enumerate(counts)])
    pooled = np.sum((n - 1) * own) / np.sum(n - 1)
    eff = median_efficiency(n) / n
    # No prior replicates: each condition's own spread (a single measurement, which has none: the pooled one).
    np.testing.assert_allclose(replicate_noise_variance(cond, y, prior_replicates=0.0),
                               np.where(n > 1, own, pooled) * eff, rtol=1e-9)
    # A very strong prior: the pooled spread for all.
    np.testing.assert_allclose(replicate_noise_variance(cond, y, prior_replicates=1e12), pooled * eff, rtol=1e-6)
    # Between the two, and one measurement gets the pooled spread.
    lo, hi = np.minimum(own, pooled) * eff, np.maximum(own, pooled) * eff
    assert np.all((noise >= lo - 1e-12) & (noise <= hi + 1e-12))
    np.testing.assert_allclose(noise[n == 1], pooled, rtol=1e-9)


def test_median_efficiency_matches_monte_carlo():
    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 5, 11):
        medians = np.median(rng.normal(size=(200_000, n)), axis=1)
        assert median_efficiency(n) / n == pytest.approx(np.var(medians), rel=0.04 if n % 2 else 0.2)


def test_a_median_of_many_replicates_is_better_known_than_one_measurement(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", {
        "name": "r", "seed": 0, "initial_design": 4,
        "inputs": [{"name": "x", "low": 0.0, "high": 1.0}], "objective": {"name": "y"}})
    rng = np.random.default_rng(3)
    xs = np.array([0.1] * 10 + [0.35, 0.6] + [0.9] * 1)
    ys = np.sin(3 * xs) + rng.normal(scale=0.2, size=xs.size)
    import pandas as pd

    camp.observe(pd.DataFrame({"x": xs, "y": ys}))
    snap = camp.snapshot()
    noise = snap.replicate_noise
    assert noise[0] < noise[-1] / 5  # ten replicates against the pooled spread of one
    status = camp.status()
    assert status.model is not None
    model = fit_gp(snap.conditions.x, snap.conditions.y, key=jax.random.key(0), low=[0.0], high=[1.0],
                   noise_variance=noise)
    post = model.predict(np.array([[0.1], [0.9]]))
    assert float(post.var[0]) < float(post.var[1])
