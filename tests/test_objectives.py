import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jaxopt_mat import spectrum_loss
from jaxopt_mat import objectives
from jaxopt_mat.objectives import intensity_factor


def reference_loss(s, t, lo=0.7, hi=1.2):
    """The study's loss written directly from its definition, in float64 numpy."""
    s, t = np.asarray(s, float), np.asarray(t, float)
    ns = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.zeros_like(s)
    nt = (t - t.min()) / (t.max() - t.min()) if t.max() > t.min() else np.zeros_like(t)
    den = np.linalg.norm(ns) * np.linalg.norm(nt)
    cos = ns @ nt / den if den > 0 else 0.0
    m = s.max()
    delta = 0.0 if m > hi else (1.0 if m >= lo else (m / lo if m > 0 else 0.0))
    return 1.0 - cos * delta


def test_loss_matches_the_numpy_reference_on_random_spectra():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 1, 50)
    s = rng.uniform(0, 1.6, (200, 50)) * rng.uniform(0.1, 1.0, (200, 1))
    ours = spectrum_loss(jnp.asarray(s), jnp.asarray(t))
    ref = np.array([reference_loss(row, t) for row in s])
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    assert ((ref > 0.99) & (s.max(axis=1) > 1.2)).any()  # the window was exercised


def test_the_table_versions_equal_the_definitions_and_compile_once_per_64_rows():
    rng = np.random.default_rng(1)
    t = rng.uniform(0, 1, 30)
    before = None
    for n in (0, 1, 5, 63, 64):
        s = rng.uniform(0, 1.6, (n, 30)) * rng.uniform(0.1, 1.0, (n, 1))
        ref = np.array([reference_loss(row, t, 0.6, 1.1) for row in s])
        np.testing.assert_allclose(objectives.spectrum_loss_rows(s, t, window=[0.6, 1.1]), ref, rtol=1e-12,
                                   atol=1e-12)
        cos = objectives.shape_similarity_rows(s, t)
        peak = s.max(axis=1) if n else np.zeros(0)
        delta = objectives.intensity_factor_rows(peak, (0.6, 1.1))
        np.testing.assert_allclose(1.0 - cos * delta, ref, rtol=1e-12, atol=1e-12)
        assert cos.shape == delta.shape == (n,)
        if n:
            before = before or objectives._loss_rows._cache_size()
    assert objectives._loss_rows._cache_size() == before  # 1 to 64 rows: one program


@pytest.mark.parametrize("peak, factor", [(-0.1, 0.0), (0.0, 0.0), (0.35, 0.5), (0.7, 1.0), (1.2, 1.0), (1.2001, 0.0)])
def test_intensity_factor_follows_the_definition(peak, factor):
    assert float(intensity_factor(jnp.float64(peak))) == pytest.approx(factor)


def test_smooth_factor_converges_to_the_exact_one():
    peaks = jnp.array([0.3, 0.9, 1.15, 1.25, 2.0])
    exact = intensity_factor(peaks)
    errs = [float(jnp.max(jnp.abs(intensity_factor(peaks, smoothness=tau) - exact))) for tau in (0.1, 0.01, 0.001)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-6


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (3, 20), elements=st.floats(-2.0, 3.0)), st.sampled_from([None, 0.02]))
def test_loss_and_gradients_are_finite_everywhere(spectra, smoothness):
    t = jnp.linspace(0.0, 1.0, 20) ** 2
    f = lambda s: jnp.sum(spectrum_loss(s, t, smoothness=smoothness))
    val, grad = jax.value_and_grad(f)(jnp.asarray(spectra))
    assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(grad)))
    losses = spectrum_loss(jnp.asarray(spectra), t)
    assert bool(jnp.all((losses >= -1e-12) & (losses <= 1 + 1e-12)))


@pytest.mark.parametrize("flat", [0.0, 0.5, 5.0])
def test_flat_and_zero_spectra_have_loss_one_and_finite_gradients(flat):
    t = jnp.sin(jnp.linspace(0, 3, 30)) + 1
    s = jnp.full((30,), flat)
    assert float(spectrum_loss(s, t)) == pytest.approx(1.0)
    g = jax.grad(lambda s: spectrum_loss(s, t, smoothness=0.02))(s)
    assert np.all(np.isfinite(np.asarray(g)))


def test_loss_works_over_any_batch_shape_and_under_vmap_and_jit():
    rng = np.random.default_rng(1)
    t = jnp.asarray(rng.uniform(size=40))
    s = jnp.asarray(rng.uniform(size=(2, 3, 40)))
    full = spectrum_loss(s, t)
    assert full.shape == (2, 3)
    vm = jax.jit(jax.vmap(jax.vmap(lambda r: spectrum_loss(r, t))))(s)
    np.testing.assert_allclose(vm, full, rtol=1e-12)


def test_a_spectrum_equal_to_the_target_in_the_window_has_zero_loss():
    t = jnp.exp(-((jnp.arange(421.0) - 150.0) / 30.0) ** 2)
    assert float(spectrum_loss(t, t)) == pytest.approx(0.0, abs=1e-12)
    # Same shape, peak above the window: loss 1.
    assert float(spectrum_loss(1.5 * t, t)) == pytest.approx(1.0)
