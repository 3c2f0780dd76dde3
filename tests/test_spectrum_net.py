import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_mat import SearchSpace, latin_hypercube, random_design
from jaxopt_mat.acquisition.spectrum import spectrum_batch
from jaxopt_mat.errors import DataError
from jaxopt_mat.objectives import cosine_similarity
from jaxopt_mat.surrogates.spectrum_net import fit_spectrum_ensemble
from jaxopt_mat.virtual_lab import CONSTRAINT_A, CONSTRAINT_B, HIGH, INPUT_NAMES, LOW, SilverLab


@pytest.fixture(scope="module")
def lab_data():
    space = SearchSpace(LOW, HIGH, names=INPUT_NAMES, A=CONSTRAINT_A, b=CONSTRAINT_B)
    lab = SilverLab()
    x = latin_hypercube(space, 80, seed=0)
    spectra = lab.measure(x, rng=np.random.default_rng(0))
    x_test = random_design(space, 200, seed=5)
    return space, lab, x, spectra, x_test, np.asarray(lab.spectra(x_test))


def test_ensemble_beats_a_single_network_on_held_out_recipes(lab_data):
    space, _, x, spectra, x_test, truth = lab_data
    errs = {}
    for members in (1, 5):
        ens = fit_spectrum_ensemble(x, spectra, key=jax.random.key(0), low=LOW, high=HIGH, n_members=members, epochs=800)
        errs[members] = float(np.mean((np.asarray(ens.predict(x_test)[0]) - truth) ** 2))
    assert errs[5] < errs[1]


def test_ensemble_is_a_pytree_with_a_spread(lab_data):
    _, _, x, spectra, x_test, truth = lab_data
    ens = fit_spectrum_ensemble(x, spectra, key=jax.random.key(1), low=LOW, high=HIGH, n_members=3, epochs=400)
    mean, std = jax.jit(lambda e, z: e.predict(z))(ens, jnp.asarray(x_test[:10]))
    assert mean.shape == (10, 421) and bool(jnp.all(std >= 0)) and float(jnp.max(std)) > 0
    cos = np.asarray(cosine_similarity(mean, truth[:10]))
    assert np.median(cos) > 0.9
    g = jax.grad(lambda z: jnp.sum(ens.predict(z[None])[0]))(jnp.asarray(x_test[0]))
    assert np.all(np.isfinite(np.asarray(g)))


def test_spectrum_batch_returns_distinct_feasible_recipes_with_low_predicted_loss(lab_data):
    space, lab, x, spectra, _, _ = lab_data
    ens = fit_spectrum_ensemble(x, spectra, key=jax.random.key(2), low=LOW, high=HIGH, n_members=3, epochs=600)
    target = jnp.asarray(lab.spectra(np.array([[18.0, 22.0, 12.0, 3.0, 450.0]]))[0])
    b = spectrum_batch(ens, space, target, 6, key=jax.random.key(0))
    assert bool(jnp.all(space.is_feasible(b.x, atol=0.0)))
    u = np.asarray(space.to_unit(b.x))
    d = np.linalg.norm(u[:, None] - u[None], axis=-1) + np.eye(6)
    assert d.min() > 1e-3
    assert float(jnp.min(b.loss_mean)) < 0.05
    # Recipes already in the batch from elsewhere (``pending``) repel new ones as the batch's own do:
    # handed the first recipe, the same search (same key) no longer returns it.
    beside = spectrum_batch(ens, space, target, 1, key=jax.random.key(0), pending=b.x[:1])
    gap = float(np.linalg.norm(np.asarray(space.to_unit(beside.x) - space.to_unit(b.x[:1]))))
    assert gap > 0.025  # the repulsion's radius is 0.05 in the unit cube
    assert bool(jnp.all(space.is_feasible(beside.x, atol=0.0)))


def test_padding_rows_do_not_change_training(lab_data):
    """Rows of weight 0 (how training sizes are bucketed) leave the trained members as they are."""
    from jaxopt_mat.surrogates.spectrum_net import _train

    _, _, x, spectra, _, _ = lab_data
    u = jnp.asarray((x - LOW) / (HIGH - LOW), jnp.float32)
    s = jnp.asarray(spectra / np.max(spectra), jnp.float32)
    rng = np.random.default_rng(3)

    def padded(a, k):
        # Padding rows hold garbage: only their zero weight keeps them out.
        return jnp.concatenate([a, jnp.asarray(rng.normal(size=(k, a.shape[1])), jnp.float32)])

    def weights(n, k):
        return jnp.concatenate([jnp.ones(n, jnp.float32), jnp.zeros(k, jnp.float32)])

    def train(pad_tr, pad_va):
        params, best, _ = _train(jax.random.key(0), padded(u[:60], pad_tr), padded(s[:60], pad_tr), weights(60, pad_tr),
                                 padded(u[60:], pad_va), padded(s[60:], pad_va), weights(20, pad_va), 3e-3, 1e-4,
                                 hidden=(16, 16), n_out=s.shape[1], n_members=2, epochs=50)
        return params, best

    (p0, v0), (p1, v1) = train(0, 0), train(7, 12)
    np.testing.assert_allclose(np.asarray(v1), np.asarray(v0), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(p1)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_too_few_spectra_are_refused():
    with pytest.raises(DataError, match="at least 5"):
        fit_spectrum_ensemble(np.zeros((3, 5)), np.zeros((3, 10)), key=jax.random.key(0), low=LOW, high=HIGH)


def test_stored_ensembles_round_trip_and_bad_files_are_misses(lab_data, tmp_path):
    import os
    import time

    from jaxopt_mat.ensemble_cache import EnsembleCache, EnsembleMemo
    from jaxopt_mat.surrogates.spectrum_net import ensemble_from_arrays, ensemble_to_arrays

    _, _, x, spectra, x_test, _ = lab_data
    ens = fit_spectrum_ensemble(x[:40], spectra[:40], key=jax.random.key(1), low=LOW, high=HIGH, n_members=2,
                                epochs=30)
    cache = EnsembleCache(tmp_path / "ens", keep=2)
    key = cache.key(x[:40], spectra[:40], seed=1, low=LOW, high=HIGH)
    assert cache.get(key) is None
    cache.put(key, ens)
    back = cache.get(key)
    np.testing.assert_array_equal(np.asarray(back.member_spectra(x_test)), np.asarray(ens.member_spectra(x_test)))
    assert (back.hidden, back.n_out) == (ens.hidden, ens.n_out)
    # Any change of rows, seed or bounds is another entry.
    others = [cache.key(x[:39], spectra[:39], seed=1, low=LOW, high=HIGH),
              cache.key(x[:40], spectra[:40], seed=2, low=LOW, high=HIGH),
              cache.key(x[:40], spectra[:40], seed=1, low=LOW, high=HIGH + 1.0)]
    assert len({key, *others}) == 4
    # A truncated file is a miss, not an error; pruning keeps the newest `keep` entries.
    path = next((tmp_path / "ens").glob("ensemble-*.npz"))
    path.write_bytes(path.read_bytes()[:100])
    assert cache.get(key) is None
    start = time.time() - 1000.0
    os.utime(path, (start - 1.0, start - 1.0))
    for i, k in enumerate(others):
        cache.put(k, ens)
        # Distinct past times: the order stays defined on file systems with coarse timestamps.
        os.utime(tmp_path / "ens" / f"ensemble-{k}.npz", (start + i, start + i))
    assert sorted(p.name for p in (tmp_path / "ens").glob("ensemble-*.npz")) == sorted(
        f"ensemble-{k}.npz" for k in others[1:])
    # The per-call memo in front of it: a miss falls through to the folder, a stored ensemble reaches both.
    memo = EnsembleMemo(cache)
    assert memo.get(others[2]) is not None and memo.get(key) is None
    memo.put(key, ens)
    assert memo.get(key) is ens and cache.get(key) is not None
    alone = EnsembleMemo()
    assert alone.get(key) is None and alone.put(key, ens) is ens and alone.get(key) is ens
    arrays = ensemble_to_arrays(ens)
    arrays["params/params/Dense_0/kernel"] = arrays["params/params/Dense_0/kernel"][:, :3]
    with pytest.raises(DataError, match="do not match"):
        ensemble_from_arrays(arrays)
    with pytest.raises(DataError, match="not a stored spectrum ensemble"):
        ensemble_from_arrays({"low": LOW})
