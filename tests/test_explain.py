import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_mat import SearchSpace, fit_gp, latin_hypercube
from jaxopt_mat.explain import exact_shapley, integrated_gradients, landscape, shap_values
from jaxopt_mat.virtual_lab import SilverLab, peak_wavelength


def test_shap_ranks_the_two_inputs_that_matter_first_and_the_rest_near_zero():
    space = SearchSpace(np.zeros(5), np.ones(5))
    x = latin_hypercube(space, 60, seed=0)
    y = np.sin(3 * x[:, 1]) + 2 * x[:, 3] ** 2  # only inputs 1 and 3 matter
    model = fit_gp(x, y, key=jax.random.key(0), low=space.low, high=space.high)
    predict = jax.jit(lambda z: model.predict(z).mean)
    exp = shap_values(predict, x[:30], x, names=["a", "b", "c", "d", "e"])
    assert set(exp.ranking()[:2]) == {"b", "d"}
    top = exp.importance[[1, 3]].min()
    assert np.all(exp.importance[[0, 2, 4]] < 0.05 * top)
    # Efficiency: SHAP values add up to the prediction minus the base value.
    np.testing.assert_allclose(exp.values.sum(axis=1) + exp.base_value, np.asarray(predict(x[:30])), atol=1e-6)


@pytest.mark.parametrize("d", [1, 3, 6])
def test_exact_shapley_equals_shaps_exact_explainer_on_a_function_with_interactions(d, monkeypatch):
    import shap

    from jaxopt_mat import explain

    monkeypatch.setattr(explain, "_ROWS_PER_CALL", 1000)  # d = 6: two points a call, the last call padded

    rng = np.random.default_rng(d)
    w, b = rng.normal(size=(d, d)), rng.normal(size=d)
    calls = []

    def f(z):
        calls.append(z.shape[0])
        return np.sin(z @ b) + np.einsum("ni,ij,nj->n", z, w, z) * np.cos(z[:, 0])

    x, background = rng.normal(size=(9, d)), rng.normal(size=(7, d))
    values, base = exact_shapley(f, x, background)
    assert len(set(calls)) == 1  # every call the same size: a jitted f compiles once
    assert len(calls) == (5 if d == 6 else 1)
    ref = shap.explainers.Exact(f, shap.maskers.Independent(background, max_samples=100))(x, silent=True)
    np.testing.assert_allclose(values, ref.values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(base, np.mean(ref.base_values), rtol=1e-12)
    with pytest.raises(ValueError, match="points to explain"):
        exact_shapley(f, x[:0], background)


def test_integrated_gradients_add_up_to_the_change_of_the_spectrum():
    lab = SilverLab()
    fn = lambda r: lab.spectra(r[None])[0]  # noqa: E731
    base = jnp.array([20.0, 25.0, 10.0, 8.0, 600.0])
    x = jnp.array([[25.0, 20.0, 20.0, 3.0, 500.0]])
    ig = integrated_gradients(fn, x, base, steps=64)
    np.testing.assert_allclose(jnp.sum(ig[0], axis=0), fn(x[0]) - fn(base), atol=2e-3 * float(jnp.max(fn(x[0]))))


def test_per_wavelength_map_shows_citrate_moving_the_plasmon_to_the_red():
    # In the lab's physics citrate (q_tsc) turns spheres into prisms whose band lies
    # at long wavelengths: raising it must add absorbance there, and take it away
    # from the 400 nm sphere band.
    lab = SilverLab()
    fn = lambda r: lab.spectra(r[None])[0]  # noqa: E731
    base = jnp.array([20.0, 20.0, 1.0, 10.0, 600.0])
    x = base.at[2].set(25.0)[None]
    ig = np.asarray(integrated_gradients(fn, x, base))[0]  # (5, 421)
    wl = lab.wavelengths
    red_peak = peak_wavelength(fn(x[0])[None])[0]
    assert red_peak > 550
    assert ig[2, np.argmin(np.abs(wl - red_peak))] > 0
    assert ig[2, np.argmin(np.abs(wl - 400))] < 0
    others = np.delete(ig, 2, axis=0)
    assert np.all(np.abs(others) < 1e-9)  # only citrate changed


def test_landscape_holds_other_inputs_fixed():
    f = lambda z: z[:, 0] * 10 + z[:, 2]  # noqa: E731
    gi, gj, v = landscape(f, np.array([1.0, 2.0, 3.0]), 0, 2, [0, 0, 0], [1, 1, 1], resolution=5)
    np.testing.assert_allclose(v, gi[:, None] * 10 + gj[None, :])
