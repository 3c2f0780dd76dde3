import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import norm

from jaxopt_mat import (
    expected_improvement,
    log_expected_improvement,
    log_probability_of_improvement,
    probability_of_improvement,
    upper_confidence_bound,
)
from jaxopt_mat.acquisition.analytic import log_h


def reference_log_h(z: float) -> float:
    """log E[max(Z + z, 0)] for Z ~ N(0, 1), by quadrature in float64.

    Writes h(z) = phi(z) * int_0^inf s exp(-s^2/2 + s z) ds, whose integrand has no
    cancellation however negative z is (relative error ~1e-10 from quad).
    """
    if z > -1.0:
        return math.log(norm.pdf(z) + z * norm.cdf(z))
    val, _ = integrate.quad(lambda s: s * math.exp(-0.5 * s * s + s * z), 0.0, math.inf, epsabs=0, epsrel=1e-12, limit=200)
    return norm.logpdf(z) + math.log(val)


def scaled_reference_log_h(z: float) -> float:
    """The same quantity for z < 0 after the substitution t = s |z|, which stays accurate however negative z is.

    h(z) = phi(z) / z^2 * int_0^inf t exp(-t - t^2 / (2 z^2)) dt: the integrand is
    smooth and of order one for every z (the integral tends to 1), so quadrature
    keeps its relative precision where the unscaled integrand's peak is too
    narrow to find; independent of the code's erfcx and 1/z^2 branches.
    """
    val, _ = integrate.quad(lambda t: t * math.exp(-t - t * t / (2.0 * z * z)), 0.0, math.inf, epsabs=0, epsrel=1e-13,
                            limit=200)
    return norm.logpdf(z) - 2.0 * math.log(-z) + math.log(val)


@pytest.mark.parametrize("z", [3.0, 0.5, 0.0, -0.99, -1.0, -1.01, -2.0, -5.0, -10.0, -37.5, -100.0, -999.0, -1e3,
                               -1e4, -1e6])
def test_log_h_matches_an_independent_quadrature_reference(z):
    ours = float(log_h(jnp.float64(z)))
    if z > -1.0:
        assert ours == pytest.approx(reference_log_h(z), rel=1e-12, abs=1e-14)
        return
    ref = scaled_reference_log_h(z)
    if z >= -100.0:
        assert ref == pytest.approx(reference_log_h(z), rel=1e-10)  # the two references agree where both work
    # Below -1e3 the code drops the log(1 - 3/z^2 + ...) term of the tail series (at most 3/z^2);
    # the rest is the rounding of z^2 / 2 in float64.
    assert abs(ours - ref) <= 1e-10 * abs(ref) + (3.5 / z**2 if z < -1e3 else 0.0) + 1e-14 * z * z


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e6, 1e3), st.floats(1e-9, 1e3))
def test_log_ei_is_finite_with_finite_gradients_everywhere(mean, std):
    val, grads = jax.value_and_grad(log_expected_improvement, argnums=(0, 1))(jnp.float64(mean), jnp.float64(std), 0.0)
    assert np.isfinite(float(val))
    assert all(np.isfinite(float(g)) for g in grads)


def test_log_ei_is_finite_far_below_the_incumbent():
    v = log_expected_improvement(jnp.array([-1e3, -1e5, -1e8]), jnp.array([1.0, 1.0, 1.0]), 0.0)
    assert bool(jnp.all(jnp.isfinite(v)))
    assert bool(jnp.all(jnp.diff(v) < 0))  # still ordered: worse means lower


def test_log_ei_equals_the_closed_form_expected_improvement():
    rng = np.random.default_rng(0)
    mean, std, best = rng.normal(size=50), rng.uniform(0.1, 2.0, 50), 0.3
    z = (mean - best) / std
    ref = std * (z * norm.cdf(z) + norm.pdf(z))
    np.testing.assert_allclose(np.exp(log_expected_improvement(mean, std, best)), ref, rtol=1e-10)
    np.testing.assert_allclose(expected_improvement(mean, std, best), ref, rtol=1e-10)


def test_minimization_mirrors_maximization():
    mean, std = jnp.array([0.2, -1.0, 3.0]), jnp.array([0.5, 1.0, 0.1])
    np.testing.assert_allclose(
        log_expected_improvement(mean, std, 0.4, maximize=False),
        log_expected_improvement(-mean, std, -0.4),
    )
    np.testing.assert_allclose(
        log_probability_of_improvement(mean, std, 0.4, maximize=False),
        log_probability_of_improvement(-mean, std, -0.4),
    )


def test_probability_of_improvement_matches_the_normal_cdf():
    mean, std = np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.5, 2.0])
    np.testing.assert_allclose(probability_of_improvement(mean, std, 0.5), norm.cdf((mean - 0.5) / std), rtol=1e-12)
    assert np.isfinite(float(log_probability_of_improvement(-1e4, 1.0, 0.0)))


def test_upper_confidence_bound_is_optimistic_in_both_directions():
    assert float(upper_confidence_bound(1.0, 0.5, beta=4.0)) == pytest.approx(2.0)
    # Minimising: the score is -(mean - 2 std), larger for lower means.
    assert float(upper_confidence_bound(1.0, 0.5, beta=4.0, maximize=False)) == pytest.approx(0.0)


def test_acquisitions_vmap_and_jit():
    f = jax.jit(jax.vmap(log_expected_improvement, in_axes=(0, 0, None)))
    out = f(jnp.linspace(-5, 5, 11), jnp.ones(11), 0.0)
    np.testing.assert_allclose(out, log_expected_improvement(jnp.linspace(-5, 5, 11), jnp.ones(11), 0.0))
