"""Compiled functions over tables that grow a row at a time, called outside ``jit``.

An eager JAX operation compiles for every new shape it sees, and a campaign's
tables gain a row with each measurement: evaluated eagerly, a loss or a
prediction over the recorded rows compiles its dozen operations again at every
``suggest``. :func:`on_rows` pads the rows to the next multiple of
:data:`ROWS` and calls a jitted function, so a table compiles once per 64 rows;
:func:`predict_rows` does it for a model's predictions. :func:`on_device` moves
host arrays to the device without compiling anything.
"""

from __future__ import annotations

import jax
import numpy as np

ROWS = 64


def on_device(a, dtype=None) -> jax.Array:
    """A host array or number as a device array, copied by ``device_put``.

    ``jnp.asarray`` of a numpy array compiles a small program for every new
    shape and dtype (JAX 0.10); in a short command each costs about 15 ms.
    """
    return jax.device_put(np.asarray(a, dtype=dtype))


def on_rows(fn, rows, *args, **static):
    """``fn(rows, *args, **static)`` with ``rows`` zero-padded to a multiple of :data:`ROWS`, cut back, as numpy.

    ``fn`` is a jitted function whose outputs (any pytree) have the rows along their first axis.
    """
    rows = np.asarray(rows)
    n = rows.shape[0]
    padded = np.zeros((ROWS * max(1, -(-n // ROWS)),) + rows.shape[1:], dtype=rows.dtype)
    padded[:n] = rows
    return jax.tree.map(lambda a: np.asarray(a)[:n], fn(padded, *args, **static))


@jax.jit
def _predict(x, model):
    return model.predict(x)


def predict_rows(model, x):
    """``model.predict(x)`` for a concrete model pytree (a ``GPModel``, a ``SpectrumEnsemble``) and rows ``x``
    ``(n, d)`` in physical units, as numpy, compiled once per :data:`ROWS` rows (:func:`on_rows`)."""
    return on_rows(_predict, np.asarray(x), model)
