"""Gradient-based spectrum targeting on the study's own network, and the grid baseline."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat import SearchSpace, maximize, maximize_grid, spectrum_loss
from jaxopt_mat.virtual_lab import CONSTRAINT_A, CONSTRAINT_B, HIGH, INPUT_NAMES, LOW, NetworkLab, mlp_spectra

from .conftest import shared_file


def neg_smooth_loss(x, params, target):
    return -spectrum_loss(mlp_spectra(params, x.astype(jnp.float32)), target, smoothness=0.02)


def neg_loss(x, params, target):
    return -spectrum_loss(mlp_spectra(params, x.astype(jnp.float32)), target)


def test_gradient_method_recovers_a_known_recipe_on_the_studys_network():
    lab = NetworkLab.from_npz(shared_file("agbonn", "agbonn_dnn.npz"))
    params = {k: v for k, v in lab.params.items() if k != "wavelength_nm"}
    space = SearchSpace(LOW, HIGH, names=INPUT_NAMES, A=CONSTRAINT_A, b=CONSTRAINT_B)
    recipe = np.array([[18.0, 22.0, 12.0, 3.0, 450.0]])
    target = lab.spectra(recipe)[0]
    res = maximize(neg_smooth_loss, space, key=jax.random.key(0), args=(params, target), n_starts=64, n_raw=4096, n_steps=200)
    exact = float(spectrum_loss(lab.spectra(res.x[None]), target)[0])
    assert exact < 1e-3
    assert bool(space.is_feasible(res.x[None], atol=0.0)[0])


def test_grid_baseline_on_a_network_equals_brute_force():
    rng = np.random.default_rng(0)
    params = {f"W{i}": jnp.asarray(rng.normal(size=s) / np.sqrt(s[0]), jnp.float32)
              for i, s in enumerate([(5, 8), (8, 8), (8, 8), (8, 8), (8, 30)])}
    params.update({f"b{i}": jnp.asarray(rng.normal(size=s[1]) * 0.1, jnp.float32)
                   for i, s in enumerate([(5, 8), (8, 8), (8, 8), (8, 8), (8, 30)])})
    space = SearchSpace(LOW, HIGH, names=INPUT_NAMES, A=CONSTRAINT_A, b=CONSTRAINT_B)
    target = mlp_spectra(params, jnp.asarray([[20.0, 20.0, 10.0, 5.0, 500.0]], jnp.float32))[0]
    res = maximize_grid(neg_loss, space, resolution=5, args=(params, target), chunk=97)
    best, best_v = None, -np.inf
    for p in itertools.product(*[np.linspace(lo, hi, 5) for lo, hi in zip(LOW, HIGH)]):
        p = np.array(p)
        if p[:4].sum() > 90:
            continue
        v = float(neg_loss(jnp.asarray(p[None]), params, target)[0])
        if v > best_v:
            best, best_v = p, v
    np.testing.assert_allclose(np.asarray(res.x), best, rtol=1e-12)
    assert abs(float(res.value) - best_v) < 1e-6
