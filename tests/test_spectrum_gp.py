"""Composite spectrum GP: principal components, posterior spectra, expected loss and its batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import jaxopt_mat as jm
from jaxopt_mat.acquisition.spectrum import (
    LOSS_FLOOR,
    expected_spectrum_loss,
    log_exclusion,
    log_expected_loss_improvement,
    posterior_expected_loss,
    spectrum_gp_batch,
)
from jaxopt_mat import Campaign
from jaxopt_mat.cli import app
from jaxopt_mat.errors import DataError
from jaxopt_mat.simulate import measurements_csv
from jaxopt_mat.surrogates.gp import fit_gp
from jaxopt_mat.surrogates.spectrum_gp import SpectrumGP, fit_spectrum_gp, principal_components
from jaxopt_mat.virtual_lab import INPUT_NAMES, SilverLab
from tests.test_two_step import spectrum_config

WL = np.linspace(380.0, 800.0, 120)
SPACE = jm.SearchSpace([0.0, 0.0], [1.0, 1.0], A=[[1.0, 1.0]], b=[1.6])


def band_spectra(x):
    """A band whose position and height follow the two inputs smoothly, plus a fixed background."""
    x = np.atleast_2d(x)
    centre = 450.0 + 200.0 * x[:, :1]
    height = 0.4 + 0.8 * x[:, 1:]
    return height * np.exp(-0.5 * ((WL - centre) / 40.0) ** 2) + 0.05


def reference_loss(s, t, lo=0.7, hi=1.2):
    """The study's loss written out with numpy, one spectrum at a time."""
    def mm(v):
        return (v - v.min()) / (v.max() - v.min())
    a, b = mm(s), mm(t)
    cos = a @ b / np.sqrt((a @ a) * (b @ b))
    peak = s.max()
    factor = 0.0 if peak > hi else min(peak / lo, 1.0)
    return 1.0 - cos * factor


@pytest.fixture(scope="module")
def fitted():
    x = np.asarray(jm.latin_hypercube(SPACE, 30, seed=0))
    rng = np.random.default_rng(0)
    spectra = band_spectra(x) + 0.002 * rng.standard_normal((30, WL.size))
    return x, spectra, fit_spectrum_gp(x, spectra, key=jax.random.key(0), low=SPACE.low, high=SPACE.high)


def test_principal_components_explain_the_asked_fraction_and_are_orthonormal():
    x = np.random.default_rng(1).uniform(size=(40, 2))
    s = band_spectra(x)
    mean, basis = principal_components(s, explained=0.999, max_components=10)
    np.testing.assert_allclose(basis @ basis.T, np.eye(basis.shape[0]), atol=1e-10)
    centred = s - mean
    kept = np.sum((centred @ basis.T) ** 2) / np.sum(centred**2)
    assert kept >= 0.999
    fewer = basis[:-1]
    assert np.sum((centred @ fewer.T) ** 2) / np.sum(centred**2) < 0.999  # the smallest such number


def test_stacked_component_gps_predict_as_the_separate_gps_would(fitted):
    """One vmapped prediction over the stacked GPs equals each component's own GP, plain and believed."""
    x, spectra, model = fitted
    mean, basis = principal_components(spectra)
    scores = (spectra - mean) @ basis.T
    keys = jax.random.split(jax.random.key(0), basis.shape[0])
    x_new = jnp.asarray(np.random.default_rng(9).uniform(0.0, 0.8, size=(7, 2)))
    picked, picked_mask = x_new[:3] + 0.05, jnp.array([1.0, 1.0, 0.0])
    mu, sd = model.scores(x_new)
    mu_b, sd_b = model.scores(x_new, picked, picked_mask)
    assert model.n_components == basis.shape[0] and mu.shape == (7, basis.shape[0])
    for j in (0, basis.shape[0] - 1):
        gp = fit_gp(x, scores[:, j], key=keys[j], low=SPACE.low, high=SPACE.high)
        plain, believed = gp.predict(x_new), gp.predict_believer(x_new, picked, picked_mask)
        np.testing.assert_allclose(mu[:, j], plain.mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(sd[:, j], plain.std, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(mu_b[:, j], believed.mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(sd_b[:, j], believed.std, rtol=1e-9, atol=1e-12)
    assert np.all(np.asarray(sd_b) <= np.asarray(sd) + 1e-12)


def test_identical_spectra_and_too_few_conditions_are_refused():
    with pytest.raises(DataError, match="identical"):
        principal_components(np.ones((5, 10)))
    with pytest.raises(DataError, match="at least 3"):
        fit_spectrum_gp(np.zeros((2, 2)), np.ones((2, 10)), key=jax.random.key(0))


def test_posterior_mean_spectra_predict_held_out_recipes(fitted):
    _, _, model = fitted
    x_new = np.random.default_rng(2).uniform(0.1, 0.7, size=(20, 2))
    pred = np.asarray(model.mean_spectra(jnp.asarray(x_new)))
    true = band_spectra(x_new)
    cos = np.sum(pred * true, 1) / np.linalg.norm(pred, axis=1) / np.linalg.norm(true, axis=1)
    assert np.median(cos) > 0.99
    # Zero draws give the mean spectra.
    z0 = jnp.zeros((1, model.n_components))
    np.testing.assert_allclose(np.asarray(model.sample_spectra(jnp.asarray(x_new), z0))[0], pred, atol=1e-12)


def test_expected_loss_matches_a_monte_carlo_reference(fitted):
    """Fixed-draw average against independent numpy draws of the scores and the numpy loss (4 standard errors)."""
    x, spectra, model = fitted
    target = band_spectra(np.array([[0.5, 0.4]]))[0]
    x_new = jnp.asarray(np.random.default_rng(3).uniform(0.0, 0.8, size=(4, 2)))
    z = jax.random.normal(jax.random.key(4), (4000, model.n_components))
    fast = np.asarray(expected_spectrum_loss(model, x_new, jnp.asarray(target), z)).mean(axis=0)
    compiled = posterior_expected_loss(model, x_new, jnp.asarray(target), z, jnp.array([0.7, 1.2]))
    np.testing.assert_allclose(compiled, fast, rtol=1e-10, atol=1e-14)
    mu, sigma = (np.asarray(a) for a in model.scores(x_new))
    rng = np.random.default_rng(5)
    for i in range(4):
        draws = mu[i] + sigma[i] * rng.standard_normal((4000, model.n_components))
        losses = np.array([reference_loss(np.asarray(model.mean) + d @ np.asarray(model.basis), target) for d in draws])
        assert abs(fast[i] - losses.mean()) <= 4 * np.sqrt(2.0) * losses.std() / np.sqrt(4000) + 1e-9


def test_log_improvement_is_finite_with_gradients_and_converges_to_expected_improvement(fitted):
    _, _, model = fitted
    target = jnp.asarray(band_spectra(np.array([[0.5, 0.4]]))[0])
    z = jax.random.normal(jax.random.key(6), (64, model.n_components))
    x = jnp.asarray(np.random.default_rng(7).uniform(0.0, 0.8, size=(6, 2)))
    for best in (1e-6, 0.05, 0.5):  # hopeless, typical, easy incumbents
        value = log_expected_loss_improvement(model, x, target, z, best)
        grad = jax.grad(lambda x: jnp.sum(log_expected_loss_improvement(model, x, target, z, best)))(x)
        assert np.all(np.isfinite(np.asarray(value))) and np.all(np.isfinite(np.asarray(grad)))
    losses = np.asarray(expected_spectrum_loss(model, x, target, z, smoothness=0.01))
    gain = np.maximum(np.log(0.5 + LOSS_FLOOR) - np.log(losses + LOSS_FLOOR), 0.0).mean(axis=0)
    sharp = np.exp(np.asarray(log_expected_loss_improvement(model, x, target, z, 0.5, tau=1e-4)))
    np.testing.assert_allclose(sharp, gain, rtol=1e-2, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(st.floats(1e-5, 0.9), st.floats(1e-5, 0.9), st.integers(0, 2**31 - 1))
def test_expected_loss_lies_in_the_unit_interval_and_improvement_grows_with_the_incumbent(fitted, b1, b2, seed):
    _, _, model = fitted
    target = jnp.asarray(band_spectra(np.array([[0.3, 0.7]]))[0])
    z = jax.random.normal(jax.random.key(seed), (16, model.n_components))
    x = jnp.asarray(np.random.default_rng(seed).uniform(0.0, 0.8, size=(5, 2)))
    losses = np.asarray(expected_spectrum_loss(model, x, target, z))
    assert np.all((losses >= 0) & (losses <= 1))
    lo, hi = sorted((b1, b2))
    assert np.all(np.asarray(log_expected_loss_improvement(model, x, target, z, lo))
                  <= np.asarray(log_expected_loss_improvement(model, x, target, z, hi)) + 1e-12)


def test_batch_is_feasible_distinct_and_lands_near_the_target_recipe(fitted):
    _, _, model = fitted
    target = band_spectra(np.array([[0.5, 0.4]]))[0]
    sb = spectrum_gp_batch(model, SPACE, target, 4, key=jax.random.key(8), best=0.05)
    x = np.asarray(sb.x)
    assert x.shape == (4, 2) and np.all(np.asarray(SPACE.is_feasible(x, atol=0.0)))
    assert min(np.linalg.norm(x[i] - x[j]) for i in range(4) for j in range(i)) > 0.05  # the unit square
    true = np.array([reference_loss(s, target) for s in band_spectra(x)])
    assert true.min() < 0.01  # the band at (0.5, 0.4) is reachable: the first pick comes close
    assert np.all(np.isfinite(np.asarray(sb.loss_mean))) and np.all(np.asarray(sb.loss_std) >= 0)
    # The first pick's recorded acquisition is the log-EI at that recipe (nothing believed or excluded yet),
    # evaluated as the batch does: the same 32 draws, every second wavelength, the smooth window edge.
    z = jax.random.normal(jax.random.split(jax.random.key(8))[0], (32, model.n_components), dtype=model.mean.dtype)
    coarse = SpectrumGP(model.models, model.mean[::2], model.basis[:, ::2])
    first = log_expected_loss_improvement(coarse, sb.x[:1], jnp.asarray(target)[::2], z, 0.05, window=(0.7, 1.2),
                                          smoothness=0.01, tau=0.05)
    assert sb.log_acquisition.shape == (4,) and np.all(np.isfinite(np.asarray(sb.log_acquisition)))
    np.testing.assert_allclose(sb.log_acquisition[0], first[0], rtol=1e-6)


def test_log_exclusion_vanishes_far_away_forbids_chosen_recipes_and_ignores_unchosen_rows():
    chosen = jnp.array([[0.2, 0.2], [0.9, 0.9]])
    u = jnp.array([[0.2, 0.2], [0.2 + 1e-9, 0.2], [0.23, 0.2], [0.6, 0.6], [0.9, 0.9]])
    mask = jnp.array([1.0, 0.0])  # only the first row is chosen
    v = np.asarray(log_exclusion(u, chosen, mask, 0.03))
    assert np.all(np.isfinite(v)) and np.all(v <= 0)
    assert v[0] == pytest.approx(np.log(1e-12)) and v[1] < -20  # at (and next to) a chosen recipe: forbidden
    np.testing.assert_allclose(v[2], np.log(1 - np.exp(-0.5)), rtol=1e-9)  # one radius away
    assert v[3] == 0 and v[4] == 0  # far away, or at an unchosen row
    g = jax.grad(lambda z: jnp.sum(log_exclusion(z, chosen, mask, 0.03)))(u)
    assert np.all(np.isfinite(np.asarray(g)))


def test_batch_from_a_program_cache_equals_the_direct_batch(fitted, tmp_path):
    from jaxopt_mat.program_cache import ProgramCache

    _, _, model = fitted
    target = band_spectra(np.array([[0.5, 0.4]]))[0]
    small = dict(key=jax.random.key(3), best=0.05, n_starts=2, n_raw=16, n_steps=5)
    direct = spectrum_gp_batch(model, SPACE, target, 2, **small)
    cached = spectrum_gp_batch(model, SPACE, target, 2, program_cache=ProgramCache(tmp_path), **small)
    assert len(list(tmp_path.iterdir())) == 1  # stored (reloading from disk: tests/test_program_cache.py)
    for u, v in zip(direct, cached):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-9, atol=1e-12)


@pytest.mark.heavy
def test_cgp_suggestions_through_the_cli(tmp_path):
    lab = SilverLab()
    camp = Campaign.create(tmp_path / "c", spectrum_config(tmp_path, lab), source_dir=tmp_path)
    x = jm.latin_hypercube(camp.space, 16, seed=0)
    text = measurements_csv(list(INPUT_NAMES), [f"{w:g}" for w in lab.wavelengths], x,
                            lab.measure(x, rng=np.random.default_rng(0)))
    camp.observe_text(text, "m.csv")
    res = CliRunner().invoke(app, ["suggest", str(tmp_path / "c"), "--batch", "3", "--method", "cgp"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split(",") == ["suggestion"] + list(INPUT_NAMES) + ["predicted_loss", "predicted_loss_std", "log_ei"]
    rows = np.array([[float(v) for v in ln.split(",")[1:]] for ln in lines[1:]])
    assert rows.shape == (3, 8) and np.all(rows[:, :4].sum(axis=1) <= 90.0) and np.all(np.isfinite(rows))
    assert np.all((rows[:, 5] >= 0) & (rows[:, 5] <= 1))
    # The expected loss of the measured conditions, averaged chunk by chunk, equals one average over all the draws.
    from jaxopt_mat.strategies.spectrum import DRAW_CHUNK, spectrum_gp_view

    key = jax.random.key(7)
    model, med, chunked = spectrum_gp_view(camp.snapshot(), key=key, draws=2 * DRAW_CHUNK)
    z = jax.random.normal(jax.random.split(key)[1], (2 * DRAW_CHUNK, model.n_components), dtype=model.mean.dtype)
    target = jnp.asarray(camp.snapshot().target)
    whole = posterior_expected_loss(model, jnp.asarray(med.x), target, z, jnp.array([0.7, 1.2]))
    np.testing.assert_allclose(chunked, whole, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="multiple of 256"):
        spectrum_gp_view(camp.snapshot(), key=key, draws=300)
