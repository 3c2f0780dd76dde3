"""The one-sided Yeo-Johnson warp of a scalar objective (jaxopt_mat.surrogates.output_warp)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from jaxopt_mat.surrogates.output_warp import LAMBDA_RANGE, OutputWarp, fit_output_warp

values = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=5, max_size=40)


@settings(max_examples=60, deadline=None)
@given(values, st.booleans())
def test_the_warp_is_increasing_in_the_objective_and_inverts(y, maximize):
    y = np.asarray(y)
    warp = fit_output_warp(y, maximize=maximize)
    assert LAMBDA_RANGE[0] <= warp.lam <= LAMBDA_RANGE[1]
    grid = np.linspace(y.min() - 1.0, y.max() + 1.0, 101)
    t = warp.forward(grid)
    assert np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)
    np.testing.assert_allclose(warp.inverse(t), grid, rtol=1e-9, atol=1e-9 * (1.0 + np.abs(grid).max()))
    assert np.all(warp.derivative(grid) > 0)


@pytest.mark.parametrize("lam", [0.0, 0.35, 1.0])
def test_the_derivative_matches_finite_differences(lam):
    for sign in (1.0, -1.0):
        warp = OutputWarp(sign, loc=2.0, scale=3.0, lam=lam)
        y = np.linspace(-20.0, 25.0, 91) + 0.013  # off the kink at y = loc
        h = 1e-6
        fd = (warp.forward(y + h) - warp.forward(y - h)) / (2 * h)
        np.testing.assert_allclose(warp.derivative(y), fd, rtol=1e-6)


def test_the_power_is_scipys_estimate_clipped_and_one_sided():
    rng = np.random.default_rng(0)
    right_tail = np.exp(rng.normal(size=60) * 1.5)  # bad values spread over decades when minimising
    warp = fit_output_warp(right_tail, maximize=False)
    z = (right_tail - right_tail.mean()) / right_tail.std()
    # scipy's Brent search stops within about 1e-8 of the maximum; ours within 1e-12
    assert warp.lam == pytest.approx(np.clip(stats.yeojohnson_normmax(z), *LAMBDA_RANGE), abs=1e-7)
    assert warp.lam < 0.5
    # the same values maximised: the long tail holds the good values, which are left alone
    assert fit_output_warp(right_tail, maximize=True).is_identity
    # mirrored, the roles swap
    assert fit_output_warp(-right_tail, maximize=True).lam == pytest.approx(warp.lam, abs=1e-9)
    assert fit_output_warp(-right_tail, maximize=False).is_identity


def test_the_warp_compresses_the_bad_tail_and_keeps_the_order():
    rng = np.random.default_rng(1)
    y = np.exp(rng.normal(size=50) * 2.0)
    warp = fit_output_warp(y, maximize=False)
    t = warp.forward(y)
    assert np.array_equal(np.argsort(t), np.argsort(y))
    # the worst value sits far fewer spreads from the rest after the warp
    spread = lambda v: (v.max() - np.median(v)) / (np.percentile(v, 75) - np.percentile(v, 25))  # noqa: E731
    assert spread(t) < 0.5 * spread(y)


def test_few_or_equal_values_give_the_identity():
    assert fit_output_warp(np.array([1.0, 2.0, 3.0]), maximize=False).is_identity
    assert fit_output_warp(np.full(10, 4.0), maximize=False).is_identity
    assert fit_output_warp(np.array([1.0, 1.0, 1.0, 2.0, 2.0, 50.0]), maximize=False).is_identity


def test_posterior_and_noise_back_in_objective_units():
    rng = np.random.default_rng(2)
    y = np.exp(rng.normal(size=40))
    warp = fit_output_warp(y, maximize=False)
    assert not warp.is_identity
    median, std = warp.posterior(warp.forward(y), np.full(y.shape, 1e-3))
    np.testing.assert_allclose(median, y, rtol=1e-10)
    # a small spread in warped units is that spread over the slope in objective units (Monte Carlo check)
    t0, s = warp.forward(np.array([3.0]))[0], 0.01
    draws = warp.inverse(t0 + s * rng.normal(size=200_000))
    _, std0 = warp.posterior(np.array([t0]), np.array([s]))
    assert std0[0] == pytest.approx(np.std(draws), rel=0.02)
    np.testing.assert_allclose(warp.noise_variance(y, np.full(y.shape, 0.04)), 0.04 * warp.derivative(y) ** 2)
    assert warp.noise_variance(y, None) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(6, 300), st.sampled_from(["normal", "lognormal", "negative lognormal", "t3"]),
       st.floats(0.2, 2.5), st.integers(0, 2**31))
def test_the_power_equals_scipys_clipped_estimate_on_random_data(n, shape, spread, seed):
    from jaxopt_mat.surrogates.output_warp import yeo_johnson_power

    rng = np.random.default_rng(seed)
    x = {"normal": rng.normal(size=n), "lognormal": np.exp(rng.normal(size=n) * spread),
         "negative lognormal": -np.exp(rng.normal(size=n) * spread), "t3": rng.standard_t(3, size=n)}[shape]
    z = (x - x.mean()) / x.std()
    with np.errstate(all="ignore"):
        unclipped = float(stats.yeojohnson_normmax(z))
    expected = float(np.clip(unclipped, *LAMBDA_RANGE))
    ours = yeo_johnson_power(z)
    assert ours == pytest.approx(expected, abs=1e-6)
    if not LAMBDA_RANGE[0] - 1e-6 < unclipped < LAMBDA_RANGE[1] + 1e-6:  # beyond the range: its end, exactly
        assert ours == expected  # (the identity is lam == 1)
