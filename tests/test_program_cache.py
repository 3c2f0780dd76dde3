import jax
import numpy as np

from jaxopt_mat import fit_gp
from jaxopt_mat import program_cache
from jaxopt_mat.program_cache import ProgramCache


def test_cached_programs_give_the_same_fit_and_are_reused_from_disk(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(15, 2))
    y = np.sin(4 * x[:, 0]) + x[:, 1]
    direct = fit_gp(x, y, key=jax.random.key(0))
    first = fit_gp(x, y, key=jax.random.key(0), program_cache=ProgramCache(tmp_path))
    stored = sorted(p.name for p in tmp_path.iterdir())
    assert len(stored) == 2  # the hyper-parameter search and the conditioning
    # A fresh cache object (as in a new process) must load, not rebuild, them.
    second = fit_gp(x, y, key=jax.random.key(0), program_cache=ProgramCache(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == stored
    for a, b in [(direct, first), (first, second)]:
        np.testing.assert_allclose(a.lengthscale, b.lengthscale, rtol=1e-8)
        np.testing.assert_allclose(a.alpha, b.alpha, rtol=1e-8, atol=1e-12)


def test_a_torn_cache_file_is_rebuilt_and_read_back(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(size=(10, 2)), rng.normal(size=10)
    fit_gp(x, y, key=jax.random.key(0), program_cache=ProgramCache(tmp_path))
    for p in tmp_path.iterdir():
        p.write_bytes(b"torn")
    model = fit_gp(x, y, key=jax.random.key(0), program_cache=ProgramCache(tmp_path))
    assert np.all(np.isfinite(np.asarray(model.alpha)))
    stored = sorted(tmp_path.iterdir())
    assert len(stored) == 2
    for p in stored:  # rebuilt in place: whole programs again
        assert p.read_bytes() != b"torn" and ProgramCache._load(p) is not None

    def no_export(*args, **kwargs):
        raise AssertionError("the rebuilt programs should have been read back, not exported again")

    monkeypatch.setattr(program_cache.export, "export", no_export)
    again = fit_gp(x, y, key=jax.random.key(0), program_cache=ProgramCache(tmp_path))
    np.testing.assert_allclose(again.alpha, model.alpha, rtol=1e-10, atol=1e-14)
