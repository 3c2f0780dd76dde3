"""Where runs fail: a Gaussian-process classifier of success, by the Laplace approximation.

A run may give no result (a clogged droplet, no solid, a crashed
simulation). Which recipes fail is learned from the recorded runs, successes
``+1`` and failures ``-1``, by a latent GP ``f`` with a probit link,
``P(success | f) = Phi(f)``, whose posterior is approximated by a Gaussian at
its mode (Rasmussen & Williams, "Gaussian Processes for Machine Learning",
2006, algorithms 3.1 and 3.2; the approach Trieste and Atlas use for their
failure models). The predictive probability of success is
``Phi(mean / sqrt(1 + var))``; acquisition functions add its log weight
(:meth:`FeasibilityModel.log_weight`), so a batch avoids the regions that
failed, while unexplored regions keep the campaign's overall success rate
(the latent prior mean).

The kernel is Matérn-5/2 on the unit cube with one length-scale; length-scale
and variance are chosen from a small grid by the Laplace approximation of the
marginal likelihood. Data are padded to a multiple of 64 rows (masked), so a
growing campaign reuses compiled code. Pure functions over a pytree: jit,
vmap and grad pass through :meth:`FeasibilityModel.log_probability`.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import log_ndtr, ndtri
from jax.scipy.stats import norm

from jaxopt_mat.surrogates.gp_likelihood import matern52_cross

_PAD = 64
_LENGTHSCALES = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0)
_VARIANCES = (1.0, 4.0, 16.0, 64.0)
_NEWTON_STEPS = 40
# Slope of the soft constraint P(success) >= 1/2 in log space (see FeasibilityModel.log_weight).
PENALTY = 10.0


@partial(jax.tree_util.register_dataclass,
         data_fields=["u", "mask", "grad", "sqrt_w", "chol", "lengthscale", "variance", "prior_mean", "low", "high"],
         meta_fields=["features"])
@dataclasses.dataclass(frozen=True)
class FeasibilityModel:
    """A fitted success classifier (a pytree of arrays).

    Attributes:
        u: ``(n_pad, D)`` training inputs in the unit cube of ``[low, high]`` (their kernel features when
            ``features`` is given); ``mask`` ``(n_pad,)`` marks real rows.
        grad: ``(n_pad,)`` gradient of the log-likelihood at the posterior mode (predictive mean weights).
        sqrt_w: ``(n_pad,)`` square roots of the likelihood's curvature there.
        chol: ``(n_pad, n_pad)`` Cholesky factor of ``I + W^1/2 K W^1/2``.
        lengthscale, variance: the kernel's hyper-parameters; prior_mean: the latent prior mean.
        low, high: the box that maps inputs to the unit cube.
        features: static: the space's :class:`~jaxopt_mat.input_kinds.FeatureMap` (a categorical input as a
            one-hot block: a failing label says nothing of its neighbours in the list), or ``None``.
    """

    u: jnp.ndarray
    mask: jnp.ndarray
    grad: jnp.ndarray
    sqrt_w: jnp.ndarray
    chol: jnp.ndarray
    lengthscale: jnp.ndarray
    variance: jnp.ndarray
    prior_mean: jnp.ndarray
    low: jnp.ndarray
    high: jnp.ndarray
    features: object = None

    def latent(self, x):
        """Mean and variance of the latent ``f`` at ``x`` ``(n, d)`` (physical units)."""
        u = (jnp.asarray(x, self.u.dtype) - self.low) / (self.high - self.low)
        u = u if self.features is None else self.features(u)
        k = matern52_cross(u, self.u, jnp.full(u.shape[1], self.lengthscale), self.variance) * self.mask
        mean = self.prior_mean + k @ self.grad
        v = solve_triangular(self.chol, (self.sqrt_w[:, None] * k.T), lower=True)
        var = jnp.maximum(self.variance - jnp.sum(v * v, axis=0), 1e-12)
        return mean, var

    def log_probability(self, x):
        """``log P(success)`` at ``x`` ``(n, d)``, finite everywhere (``log Phi`` of the probit-averaged latent)."""
        mean, var = self.latent(x)
        return log_ndtr(mean / jnp.sqrt(1.0 + var))

    def probability(self, x):
        """``P(success)`` at ``x`` ``(n, d)``."""
        return jnp.exp(self.log_probability(x))

    def log_weight(self, x):
        """What acquisitions add: ``log P(success)``, and below ``P = 1/2`` a steep slope down.

        The product of an acquisition and ``P(success)`` (feasibility-weighted
        acquisition) alone keeps choosing unexplored failing regions: a
        classifier's probability there rarely falls below 0.1, while the
        objective's GP, which never sees failed runs, keeps its uncertainty
        and its expected improvement high. The constraint ``P(success) >= 1/2``
        (feasibility-constrained acquisition, as in Atlas) is added as a soft
        penalty, ``PENALTY * min(log(2 P), 0)``, so that a gradient search
        still has a slope to follow out of a failing region.
        """
        log_p = self.log_probability(x)
        return log_p + PENALTY * jnp.minimum(log_p + math.log(2.0), 0.0)

    def log_constraint(self, x):
        """The soft constraint ``P(success) >= 1/2`` alone: 0 where it holds, ``PENALTY * log(2 P)`` below.

        For scores that are not log acquisitions (the spectrum network's
        predicted loss): it leaves the ranking of likely successes alone.
        """
        return PENALTY * jnp.minimum(self.log_probability(x) + math.log(2.0), 0.0)


def log_weight_of_rows(rows, model: FeasibilityModel):
    """Row function for :func:`~jaxopt_mat.chunked.map_rows`: each row's :meth:`FeasibilityModel.log_weight`."""
    return model.log_weight(rows)


def _newton(K, y, mask, prior_mean):
    """Posterior mode of the latent (R&W algorithm 3.1, probit); returns the model's arrays and the log evidence."""
    n = K.shape[0]
    eye = jnp.eye(n, dtype=K.dtype)

    def derivatives(f):
        z = y * (f + prior_mean)
        ratio = jnp.exp(norm.logpdf(z) - log_ndtr(z))  # phi(z) / Phi(z), stable for z << 0
        grad = y * ratio * mask
        w = (ratio * ratio + z * ratio) * mask
        return grad, jnp.maximum(w, 0.0)

    def step(f, _):
        grad, w = derivatives(f)
        sw = jnp.sqrt(w)
        L = jnp.linalg.cholesky(eye + sw[:, None] * K * sw[None, :])
        b = w * f + grad
        c = solve_triangular(L, sw * (K @ b), lower=True)
        a = b - sw * solve_triangular(L.T, c, lower=False)
        return K @ a, None

    f, _ = jax.lax.scan(step, jnp.zeros(n, K.dtype), None, length=_NEWTON_STEPS)
    grad, w = derivatives(f)
    sw = jnp.sqrt(w)
    L = jnp.linalg.cholesky(eye + sw[:, None] * K * sw[None, :])
    a = grad  # at the mode f = K grad
    log_lik = jnp.sum(log_ndtr(y * (f + prior_mean)) * mask)
    log_evidence = -0.5 * jnp.dot(a, f) + log_lik - jnp.sum(jnp.log(jnp.diag(L)))
    return grad, sw, L, log_evidence


def _kernel(u, mask, lengthscale, variance):
    K = matern52_cross(u, u, jnp.full(u.shape[1], lengthscale), variance)
    m = mask[:, None] * mask[None, :]
    return K * m + jnp.diag(1.0 - mask) + 1e-8 * variance * jnp.eye(u.shape[0], dtype=u.dtype)


@jax.jit
def _fit(u, y, mask, prior_mean):
    grid = jnp.asarray([(ls, var) for ls in _LENGTHSCALES for var in _VARIANCES], u.dtype)

    def evidence(h):
        return _newton(_kernel(u, mask, h[0], h[1]), y, mask, prior_mean)[3]

    best = grid[jnp.argmax(jax.vmap(evidence)(grid))]
    grad, sw, L, _ = _newton(_kernel(u, mask, best[0], best[1]), y, mask, prior_mean)
    return grad, sw, L, best[0], best[1]


def fit_feasibility(x, success, *, low, high, features=None) -> FeasibilityModel:
    """Fit the success classifier to runs at ``x`` ``(n, d)``; ``success`` ``(n,)`` is True for runs with a result.

    The latent prior mean is the probit of the smoothed success rate
    ``(successes + 1) / (n + 2)``, so far from every run the model predicts
    that rate. Needs at least one run; with only successes (or only
    failures) it predicts a uniformly high (or low) probability. ``features``:
    the space's feature map, for categorical inputs (``space.features``).

    Example:
        >>> model = fit_feasibility(x_runs, ~failed, low=space.low, high=space.high)
        >>> log_p = model.log_probability(candidates)   # add to a log acquisition
    """
    x = np.asarray(x, np.float64)
    success = np.asarray(success, bool)
    n, d = x.shape
    if n == 0:
        raise ValueError("fit_feasibility needs at least one run")
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    high = np.where(high > low, high, low + 1.0)
    n_pad = _PAD * max(1, math.ceil(n / _PAD))
    u = np.zeros((n_pad, d))
    u[:n] = (x - low) / (high - low)
    y = np.zeros(n_pad)
    y[:n] = np.where(success, 1.0, -1.0)
    mask = np.zeros(n_pad)
    mask[:n] = 1.0
    rate = (success.sum() + 1.0) / (n + 2.0)
    prior_mean = jnp.asarray(ndtri(rate), jnp.float64)
    u = jnp.asarray(u) if features is None else features(jnp.asarray(u))
    grad, sw, L, ls, var = _fit(u, jnp.asarray(y), jnp.asarray(mask), prior_mean)
    return FeasibilityModel(u, jnp.asarray(mask), grad, sw, L, ls, var, prior_mean, jnp.asarray(low),
                            jnp.asarray(high), features)
