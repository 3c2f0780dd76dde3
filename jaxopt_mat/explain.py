"""What the surrogate has learned: SHAP values, per-wavelength attributions, landscapes.

Everything here returns arrays; plotting lives in :mod:`jaxopt_mat.plots`.

- :func:`shap_values` explains a batched prediction function by exact
  Shapley values over all ``2^d`` coalitions of the inputs, with the
  background set as the distribution of absent inputs (what shap's ``Exact``
  explainer with an ``Independent`` masker computes, and checked against it in
  the tests). Every coalition of every point goes to the prediction function
  in a few large batches, which suits a jitted surrogate: 0.2 s for 36
  conditions of a 5-input recipe in a new process, where shap's explainer
  spends 11 s on its first call (compiling its own routines), which a CLI
  command would pay every time. Above 10 inputs, e.g. a pool's descriptors, ``2^d`` is too many and
  shap's ``Permutation`` explainer samples them.
- :func:`spectrum_attributions` gives, for each input, how it moves each
  wavelength of a predicted spectrum: integrated gradients (Sundararajan et
  al., "Axiomatic Attribution for Deep Networks", ICML 2017) of every wavelength
  with respect to the recipe, from a baseline recipe, vmapped over recipes and
  wavelengths. They sum over inputs to the spectrum's change from the baseline.
- :func:`landscape` evaluates a prediction over two inputs with the others held fixed.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


# Up to this many inputs SHAP values are exact (all coalitions); beyond, shap's permutation explainer.
EXACT_MAX_INPUTS = 10
# Rows per call of the prediction function when every coalition is evaluated.
_ROWS_PER_CALL = 1 << 16


class Explanation(NamedTuple):
    """SHAP values of a prediction.

    Attributes:
        values: ``(n, d)`` SHAP value of each input for each explained point.
        base_value: expected prediction over the background.
        importance: ``(d,)`` mean absolute SHAP value per input (the global ranking).
        names: input names.
    """

    values: np.ndarray
    base_value: float
    importance: np.ndarray
    names: tuple

    def ranking(self) -> list[str]:
        """Input names from most to least important."""
        return [self.names[i] for i in np.argsort(-self.importance)]


def shap_values(predict: Callable, x, background, *, names) -> Explanation:
    """Exact SHAP values of ``predict`` (batch ``(n, d)`` -> ``(n,)``) at the points ``x``.

    Args:
        predict: batched prediction, e.g. a jitted ``lambda x: model.predict(x).mean``.
        x: points to explain, ``(n, d)``.
        background: reference points standing in for absent inputs, ``(m, d)``
            (the observed conditions are the natural choice; at most 100 are used).
        names: input names.
    """
    x = np.asarray(x, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)[:100]

    def f(z):
        return np.asarray(predict(jnp.asarray(z, dtype=jnp.float64)), dtype=np.float64)

    if x.shape[1] <= EXACT_MAX_INPUTS:
        values, base = exact_shapley(f, x, background)
    else:  # 2^d coalitions get too many: sampled permutations, antithetic, still additive
        import shap

        masker = shap.maskers.Independent(background, max_samples=100)
        explainer = shap.explainers.Permutation(f, masker, feature_names=list(names), seed=0)
        result = explainer(x, max_evals=max(500, 20 * x.shape[1] + 1), silent=True)
        values = np.asarray(result.values)
        base = float(np.mean(np.asarray(result.base_values)))
    return Explanation(values, base, np.mean(np.abs(values), axis=0), tuple(names))


def exact_shapley(f: Callable, x: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float]:
    """Interventional Shapley values of ``f`` at ``x`` ``(n, d)`` over ``background`` ``(m, d)``.

    A coalition ``S`` is worth ``v(S) = mean_b f(x_S, b_rest)`` over the
    background rows ``b``; input ``i`` gets ``sum_S |S|! (d - |S| - 1)! / d! *
    (v(S + i) - v(S))`` over the coalitions without it. All ``2^d m`` rows of a
    point are predicted together, several points per call, every call the same
    size (the last is padded), so a jitted ``f`` compiles once.

    Returns ``(values (n, d), base_value)``; ``base_value = v(empty)``.
    """
    n, d = x.shape
    m = background.shape[0]
    if n == 0 or m == 0:
        raise ValueError(f"exact_shapley needs points to explain and background rows, got {n} and {m}")
    coalitions = ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(bool)  # (2^d, d), row k = bits of k
    weights = _shapley_weights(d)  # (2^d, d)
    per_point = 2**d * m
    points = max(1, min(n, _ROWS_PER_CALL // per_point))
    worth = np.empty((n, 2**d))
    for start in range(0, n, points):
        idx = np.minimum(np.arange(start, start + points), n - 1)  # the last call repeats the last point
        rows = np.where(coalitions[None, :, None, :], x[idx][:, None, None, :], background[None, None])
        pred = f(rows.reshape(-1, d)).reshape(points, 2**d, m).mean(axis=-1)
        worth[start:start + points] = pred[: n - start]
    return worth @ weights, float(worth[0, 0])


def _shapley_weights(d: int) -> np.ndarray:
    """``(2^d, d)`` matrix taking coalition worths to Shapley values."""
    sizes = np.array([bin(k).count("1") for k in range(2**d)])
    weights = np.zeros((2**d, d))
    for i in range(d):
        without = np.nonzero(((np.arange(2**d) >> i) & 1) == 0)[0]
        s = sizes[without]
        w = np.array([math.factorial(k) * math.factorial(d - k - 1) for k in s]) / math.factorial(d)
        weights[without | (1 << i), i] += w
        weights[without, i] -= w
    return weights


def integrated_gradients(spectra_fn: Callable, x, baseline, *, steps: int = 32):
    """Integrated gradients of every output of ``spectra_fn`` with respect to each input.

    Args:
        spectra_fn: maps one recipe ``(d,)`` to a spectrum ``(w,)``; differentiable.
        x: recipes, ``(n, d)``.
        baseline: reference recipe, ``(d,)`` (e.g. the centre of the space).
        steps: midpoint-rule steps along the straight path.

    Returns:
        ``(n, d, w)``: attribution of input ``i`` to wavelength ``k``; summed over
        ``i`` it equals ``spectra_fn(x) - spectra_fn(baseline)`` up to the
        quadrature error.
    """
    alphas = (jnp.arange(steps) + 0.5) / steps
    jac = jax.jacfwd(spectra_fn)  # (w, d)

    def one(xi):
        path = baseline + alphas[:, None] * (xi - baseline)
        grads = jax.vmap(jac)(path)  # (steps, w, d)
        return (xi - baseline)[:, None] * jnp.mean(grads, axis=0).T  # (d, w)

    return jax.jit(jax.vmap(one))(jnp.asarray(x))


def spectrum_attributions(spectra_fn: Callable, x, baseline, *, steps: int = 32) -> np.ndarray:
    """Mean absolute integrated gradient per input and wavelength, ``(d, w)``: the heat-map data."""
    return np.asarray(jnp.mean(jnp.abs(integrated_gradients(spectra_fn, x, baseline, steps=steps)), axis=0))


def landscape(predict: Callable, at, i: int, j: int, low, high, *, resolution: int = 60, values=None):
    """Prediction over inputs ``i`` and ``j`` on a ``resolution``² grid, other inputs held at ``at``.

    ``values`` optionally gives, per input, its allowed values (``None`` for a
    continuum): an input with allowed values is evaluated at those only (a
    categorical input's label indices, an integer's whole numbers).
    Returns ``(grid_i, grid_j, values)`` with ``values[a, b]`` at ``(grid_i[a], grid_j[b])``.
    """
    allowed = values or {}

    def axis(k):
        v = allowed[k] if k < len(allowed) else None
        return np.linspace(low[k], high[k], resolution) if v is None else np.asarray(v, dtype=np.float64)

    gi, gj = axis(i), axis(j)
    pts = np.repeat(np.asarray(at, dtype=np.float64)[None], len(gi) * len(gj), axis=0)
    pts[:, i] = np.repeat(gi, len(gj))
    pts[:, j] = np.tile(gj, len(gi))
    vals = np.asarray(predict(jnp.asarray(pts))).reshape(len(gi), len(gj))
    return gi, gj, vals
