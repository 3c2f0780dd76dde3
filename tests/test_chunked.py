"""Row-chunked evaluation: every row once, in order, whatever the chunking and the threads."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxopt_mat.chunked import map_rows


def _rows_fn(rows, w):
    x, tag = rows
    return {"linear": x @ w, "tag": tag * 2, "norm": jnp.sqrt(jnp.sum(x * x, axis=1))}


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 200), chunk=st.integers(1, 48), threads=st.integers(1, 4), seed=st.integers(0, 1000))
def test_map_rows_equals_the_direct_evaluation(n, chunk, threads, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    tag = np.arange(n)
    w = jnp.asarray(rng.normal(size=(3, 2)))
    out = map_rows(_rows_fn, (w,), (x, tag), chunk=chunk, threads=threads)
    direct = _rows_fn((jnp.asarray(x), jnp.asarray(tag)), w)
    np.testing.assert_array_equal(out["tag"], 2 * tag)  # every row once, in order
    np.testing.assert_allclose(out["linear"], direct["linear"], rtol=1e-12)
    np.testing.assert_allclose(out["norm"], direct["norm"], rtol=1e-12)


def test_map_rows_casts_floating_rows_only():
    x = np.random.default_rng(0).normal(size=(50, 3))
    out = map_rows(_rows_fn, (jnp.ones((3, 2), jnp.float32),), (x, np.arange(50)), chunk=16, dtype=jnp.float32)
    assert out["norm"].dtype == jnp.float32 and out["tag"].dtype == jnp.arange(1).dtype
    np.testing.assert_allclose(out["norm"], np.linalg.norm(x, axis=1), rtol=1e-5)


def test_map_rows_refuses_an_empty_table():
    with pytest.raises(ValueError, match="at least one row"):
        map_rows(_rows_fn, (jnp.ones((3, 2)),), (np.zeros((0, 3)), np.zeros(0, int)))


def test_map_rows_works_inside_jit_and_under_grad():
    import jax

    rng = np.random.default_rng(1)
    x, tag = rng.normal(size=(100, 3)), np.arange(100)
    w = jnp.asarray(rng.normal(size=(3, 2)))
    inside = jax.jit(lambda x: map_rows(_rows_fn, (w,), (x, tag), chunk=16, threads=4)["linear"])(x)
    np.testing.assert_allclose(inside, x @ np.asarray(w), rtol=1e-12)
    g = jax.grad(lambda w: jnp.sum(map_rows(_rows_fn, (w,), (x, tag), chunk=16)["linear"]))(w)
    np.testing.assert_allclose(g, np.tile(x.sum(0)[:, None], (1, 2)), rtol=1e-10)
