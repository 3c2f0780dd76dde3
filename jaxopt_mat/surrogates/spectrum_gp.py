"""Composite GP spectrum surrogate: one GP per principal component of the measured spectra.

A spectrum of a few hundred wavelengths is, across a recipe space, close to a
combination of a handful of shapes. This surrogate takes the principal
components of the measured spectra (the leading right singular vectors of the
centred spectra, enough to explain a set fraction of their variance, at most
``max_components``) and fits an independent GP to each component's score. The
predicted spectrum at a recipe is the mean spectrum plus the scores times the
components; drawing the scores from their Gaussian posteriors draws spectra.

Modelling the spectrum and applying the known loss to it, instead of modelling
the loss, is Bayesian optimisation of a composite function (Astudillo and
Frazier, "Bayesian Optimization of Composite Functions", ICML 2019): the GPs
see smooth quantities, and the loss's kinks (the min-max normalisation, the
intensity window) are applied exactly rather than learned from a few points.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.errors import DataError
from jaxopt_mat.surrogates.gp import GPModel, fit_gp


@partial(jax.tree_util.register_dataclass, data_fields=["models", "mean", "basis"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class SpectrumGP:
    """A fitted composite spectrum GP: a pytree usable inside ``jit``/``vmap``/``grad``.

    Attributes:
        models: the GPs of the ``k`` component scores, stacked into one
            :class:`~jaxopt_mat.surrogates.gp.GPModel` whose arrays have a leading axis of
            length ``k`` (so a prediction is one ``vmap`` over components, and the
            compiled program does not grow with ``k``).
        mean: mean measured spectrum, shape ``(w,)``.
        basis: principal components (orthonormal rows), shape ``(k, w)``.
    """

    models: GPModel
    mean: jnp.ndarray
    basis: jnp.ndarray

    @property
    def n_components(self) -> int:
        return self.models.mean_const.shape[0]

    def scores(self, x, picked=None, picked_mask=None):
        """Posterior mean and standard deviation of the component scores, each ``(n, k)``.

        With ``picked`` ``(q, d)`` and ``picked_mask`` ``(q,)``: after believing
        the picked recipes observed at their means (see
        :meth:`~jaxopt_mat.surrogates.gp.GPModel.predict_believer`), what a sequential batch uses.
        """
        if picked is None:
            post = jax.vmap(GPModel.predict, in_axes=(0, None))(self.models, x)
        else:
            post = jax.vmap(GPModel.predict_believer, in_axes=(0, None, None, None))(self.models, x, picked, picked_mask)
        return post.mean.T, post.std.T

    def mean_spectra(self, x):
        """Spectra of the posterior mean scores, ``(n, w)``, for recipes ``x`` ``(n, d)``."""
        return self.mean + self.scores(x)[0] @ self.basis

    def sample_spectra(self, x, z, picked=None, picked_mask=None):
        """Spectra ``(s, n, w)`` for standard normal score draws ``z`` ``(s, k)``: ``mean + (mu + sigma z) V``.

        The same ``z`` at every recipe (fixed base samples): the draws are smooth
        in ``x``, so an average over them can be optimised by gradient.
        """
        mu, sigma = self.scores(x, picked, picked_mask)
        return self.mean + (mu[None] + sigma[None] * z[:, None, :]) @ self.basis


def principal_components(spectra, *, explained: float = 0.9995, max_components: int = 8):
    """Mean ``(w,)`` and leading principal components ``(k, w)`` of ``spectra`` ``(n, w)``.

    ``k`` is the smallest number explaining the fraction ``explained`` of the
    variance about the mean, at most ``max_components`` (and at most ``n - 1``).
    On measured spectra the cap is what binds: their noise is spread over every
    component (in four of the closed-loop benchmark's campaigns the first 8
    components leave 0.2-0.3 % of the variance, an even floor of about 4e-5 per
    component).
    """
    spectra = np.asarray(spectra, dtype=np.float64)
    mean = spectra.mean(axis=0)
    _, sv, vt = np.linalg.svd(spectra - mean, full_matrices=False)
    power = sv**2
    if power.sum() <= 0:
        raise DataError("all measured spectra are identical: no spectrum shape to model")
    frac = np.cumsum(power) / power.sum()
    k = min(int(np.searchsorted(frac, explained)) + 1, max_components, spectra.shape[0] - 1)
    return mean, vt[: max(k, 1)]


def fit_spectrum_gp(x, spectra, *, key, low=None, high=None, explained: float = 0.9995, max_components: int = 8,
                    features=None, program_cache=None) -> SpectrumGP:
    """Fit a :class:`SpectrumGP` to recipes ``x`` ``(n, d)`` and their spectra ``(n, w)``.

    Combine replicates first (e.g. the median spectrum of each condition).
    Other arguments as in :func:`fit_gp`.

    Example:
        >>> model = fit_spectrum_gp(x, spectra, key=jax.random.key(0), low=space.low, high=space.high)
        >>> model.mean_spectra(x[:2]).shape
        (2, 421)
    """
    x = np.asarray(x, dtype=np.float64)
    spectra = np.asarray(spectra, dtype=np.float64)
    if spectra.ndim != 2 or spectra.shape[0] != x.shape[0]:
        raise DataError(f"fit_spectrum_gp expects spectra of shape (n, w) with n = {x.shape[0]}, got {spectra.shape}")
    if x.shape[0] < 3:
        raise DataError(f"a spectrum GP needs at least 3 measured conditions, got {x.shape[0]}")
    mean, basis = principal_components(spectra, explained=explained, max_components=max_components)
    scores = (spectra - mean) @ basis.T
    keys = jax.random.split(key, basis.shape[0])
    models = [fit_gp(x, scores[:, j], key=keys[j], low=low, high=high, features=features, program_cache=program_cache)
              for j in range(basis.shape[0])]
    return SpectrumGP(jax.tree.map(lambda *leaves: jnp.stack(leaves), *models), jnp.asarray(mean), jnp.asarray(basis))

