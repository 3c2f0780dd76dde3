"""Independent GPs, one per objective: fitted together, predicted together in maximisation form."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.padded import on_device, on_rows
from jaxopt_mat.surrogates.gp import MAX_ITER, fit_gp


def fit_objectives(x, y, *, key, low, high, inits=None, noise_variance=None, features=None,
                   program_cache=None, max_iter: int = MAX_ITER) -> tuple:
    """One GP per column of ``y`` ``(n, m)`` (independent objectives), as a tuple of models.

    ``inits``: optional warm start per objective (``fit_gp``'s ``init``; ``None`` entries fit cold).
    ``noise_variance``: optional ``(n, m)`` known noise variance of each value (``fit_gp``'s).
    ``max_iter``: ``fit_gp``'s (0 with ``inits``: the GPs of those hyper-parameters, not fitted), or one per column.

    Example:
        >>> models = fit_objectives(x, y, key=jax.random.key(0), low=space.low, high=space.high)
    """
    keys = jax.random.split(key, y.shape[1])
    inits = inits or (None,) * y.shape[1]
    known = (None,) * y.shape[1] if noise_variance is None else tuple(np.asarray(noise_variance).T)
    iters = (max_iter,) * y.shape[1] if isinstance(max_iter, int) else tuple(max_iter)
    return tuple(fit_gp(x, y[:, j], key=keys[j], low=low, high=high, init=inits[j], noise_variance=known[j], features=features,
                        program_cache=program_cache, max_iter=iters[j]) for j in range(y.shape[1]))


def _stack(posts, signs):
    mean = jnp.stack([p.mean for p in posts], axis=-1) * signs
    return mean, jnp.stack([p.std for p in posts], axis=-1)


def predict_objectives(x, models, signs):
    """Means and standard deviations ``(n, m)`` of independent GPs, in maximisation form (times ``signs``)."""
    return _stack([m.predict(x) for m in models], signs)


_predict_objectives = jax.jit(predict_objectives)


def predict_objectives_rows(x, models, signs) -> tuple[np.ndarray, np.ndarray]:
    """:func:`predict_objectives` outside ``jit``, as numpy, for a number of rows that changes between calls
    (one compiled program per 64 rows: :func:`~jaxopt_mat.padded.on_rows`)."""
    return on_rows(_predict_objectives, np.asarray(x), tuple(models), on_device(signs))


def predict_objectives_believer(x, models, signs, picked, picked_mask):
    """:func:`predict_objectives` after believing the ``picked`` points observed (see ``GPModel.predict_believer``)."""
    return _stack([m.predict_believer(x, picked, picked_mask) for m in models], signs)
