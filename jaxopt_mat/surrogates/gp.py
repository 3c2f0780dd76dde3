"""Gaussian-process surrogate: Matérn-5/2 ARD kernel (gpjax), constant mean, Gaussian noise.

Inputs are scaled to the unit cube and outputs standardised before fitting.
Hyper-parameters are the maximum a posteriori of the marginal likelihood under
weak log-normal priors: the length-scale prior scales with the dimension
(Hvarfner et al., "Vanilla Bayesian Optimization Performs Great in High
Dimensions", ICML 2024), its MAP taken as a density over the length-scale (mode
exp(mu - sigma^2), 0.3 to 0.9 in the unit cube, as BoTorch does), the noise prior is
LogNormal(-4, 1) on the standardised scale. Many random hyper-parameter draws are scored at once; the best few are
refined by L-BFGS, one after another inside one compiled call.

Training data are padded to a fixed bucket size with a mask, so a campaign that
gains a row reuses the compiled fit and predict instead of tracing again.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.linalg import cho_solve, solve_triangular

from jaxopt_mat.errors import DataError, NumericalError
from jaxopt_mat.padded import on_device
from jaxopt_mat.surrogates.base import Posterior

from jaxopt_mat.surrogates.gp_likelihood import (  # noqa: F401  (re-exported: the kernel and likelihood of the fit)
    _JITTER,
    _LOG_LS_RANGE,
    _MIN_NOISE,
    _PAD_BUCKET,
    _default_theta,
    _masked_covariance,
    _objective,
    _unpack,
    expand_lengthscales,
    matern52,
    matern52_cross,
    negative_log_marginal_likelihood,
)


@partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "x_unit", "mask", "chol", "chol_inv", "alpha", "lengthscale", "variance", "noise",
        "mean_const", "y_loc", "y_scale", "low", "high",
    ],
    meta_fields=["features"],
)
@dataclasses.dataclass(frozen=True)
class GPModel:
    """A fitted GP: a pytree of arrays that can be passed into ``jit``, ``vmap`` and ``grad``.

    Attributes:
        x_unit: training inputs in the unit cube, padded, shape ``(n_pad, d)``.
        mask: 1 for real rows, 0 for padding, shape ``(n_pad,)``.
        chol: lower Cholesky factor of the (masked) training covariance.
        chol_inv: its inverse; predicting many points is then one matrix product
            (about 3x faster on CPU than a triangular solve per batch).
        alpha: ``K^{-1} (y - m)`` on the standardised scale.
        lengthscale, variance, noise, mean_const: hyper-parameters (standardised scale).
        y_loc, y_scale: output standardisation.
        low, high: input scaling to the unit cube.
        features: static: how the kernel sees unit-cube inputs (a categorical input's
            index becomes a one-hot block or a descriptor row; :mod:`jaxopt_mat.input_kinds`),
            ``None`` for the coordinates themselves. ``lengthscale`` then holds one
            length-scale per group of features (per input, or per descriptor).
    """

    x_unit: jnp.ndarray
    mask: jnp.ndarray
    chol: jnp.ndarray
    chol_inv: jnp.ndarray
    alpha: jnp.ndarray
    lengthscale: jnp.ndarray
    variance: jnp.ndarray
    noise: jnp.ndarray
    mean_const: jnp.ndarray
    y_loc: jnp.ndarray
    y_scale: jnp.ndarray
    low: jnp.ndarray
    high: jnp.ndarray
    features: object = None

    def kernel_unit(self, a, b):
        """The fitted kernel between unit-cube points ``a`` ``(n, d)`` and ``b`` ``(k, d)`` (unscaled outputs)."""
        if self.features is None:
            return matern52_cross(a, b, self.lengthscale, self.variance)
        ls = self.features.lengthscales(self.lengthscale)
        return matern52_cross(self.features(a), self.features(b), ls, self.variance)

    def predict(self, x) -> Posterior:
        """Posterior of the latent function at ``x`` (physical units, shape ``(n, d)``).

        Returns ``Posterior(mean, var)`` in the units of the training targets;
        ``var`` excludes observation noise and is floored at a tiny positive value.

        Example:
            >>> mean, var = model.predict(x_new)
        """
        u = (x - self.low) / (self.high - self.low)
        return self.predict_unit(u)

    def predict_unit(self, u) -> Posterior:
        """Like :meth:`predict` for inputs already in the unit cube."""
        k_star = self.kernel_unit(u, self.x_unit) * self.mask[None, :]
        mean = self.mean_const + k_star @ self.alpha
        v = k_star @ self.chol_inv.T
        var = jnp.maximum(self.variance - jnp.sum(v * v, axis=1), 1e-10 * self.variance)
        return Posterior(self.y_loc + self.y_scale * mean, self.y_scale**2 * var)

    def predict_joint(self, x):
        """Joint posterior of the latent function at ``x`` ``(q, d)``: ``(mean (q,), cov (q, q))``.

        What a batch acquisition that samples correlated outcomes needs (e.g.
        :func:`jaxopt_mat.acquisition.ehvi.q_expected_hypervolume_improvement`).
        """
        u = (x - self.low) / (self.high - self.low)
        k_star = self.kernel_unit(u, self.x_unit) * self.mask[None, :]
        mean = self.mean_const + k_star @ self.alpha
        v = k_star @ self.chol_inv.T
        cov = self.kernel_unit(u, u) - v @ v.T
        return self.y_loc + self.y_scale * mean, self.y_scale**2 * cov

    def predict_believer(self, x, picked, picked_mask) -> Posterior:
        """Posterior at ``x`` after "observing" the points ``picked`` ``(q, d)`` at their predicted means.

        The Kriging believer's fantasy: the mean is unchanged (the believed
        outcome is the mean), the variance shrinks as if the latent function had
        been observed without noise at the rows of ``picked`` whose
        ``picked_mask`` is 1 (so it vanishes there). Exact rank-``q`` update of
        the posterior; what sequential batch acquisitions use so the next pick
        does not land on the last one.
        """
        u = (x - self.low) / (self.high - self.low)
        up = (picked - self.low) / (self.high - self.low)
        post = self.predict_unit(u)
        vx = (self.kernel_unit(u, self.x_unit) * self.mask[None, :]) @ self.chol_inv.T
        vp = (self.kernel_unit(up, self.x_unit) * self.mask[None, :]) @ self.chol_inv.T
        on = picked_mask > 0
        cxp = (self.kernel_unit(u, up) - vx @ vp.T) * on[None, :]
        q = picked.shape[0]
        cpp = self.kernel_unit(up, up) - vp @ vp.T
        cpp = cpp + _JITTER * self.variance * jnp.eye(q, dtype=cpp.dtype)  # believed: the latent value itself
        cpp = jnp.where(on[:, None] & on[None, :], cpp, jnp.eye(q, dtype=cpp.dtype))
        a = solve_triangular(jnp.linalg.cholesky(cpp), cxp.T, lower=True)
        var = jnp.maximum(post.var / self.y_scale**2 - jnp.sum(a * a, axis=0), 1e-10 * self.variance)
        return Posterior(post.mean, self.y_scale**2 * var)

    def without_padding(self) -> "GPModel":
        """The same posterior without the padding rows: cheaper predictions over a large pool.

        Padding rows carry an identity block in the covariance and a zero mask,
        so removing them changes no prediction. Needs a concrete model (not
        inside ``jit``), and the new shapes compile anew, so it pays off for a
        big one-off scoring (e.g. :func:`~jaxopt_mat.acquisition.ehvi.score_pool`),
        not in the fixed-shape suggest loop.
        """
        n = int(round(float(self.n_train)))
        if not bool(jnp.all(self.mask[:n] == 1)):
            raise ValueError("the training rows are not the leading rows of this model")
        return dataclasses.replace(self, x_unit=self.x_unit[:n], mask=self.mask[:n], chol=self.chol[:n, :n],
                                   chol_inv=self.chol_inv[:n, :n], alpha=self.alpha[:n])

    @property
    def hyperparameters(self):
        """The fitted hyper-parameters as one vector, ``[log lengthscales (d), log variance, log noise, mean]``
        on the standardised scale: what ``fit_gp(..., init=...)`` takes to warm-start a later fit."""
        return jnp.concatenate([
            jnp.log(self.lengthscale), jnp.log(self.variance)[None], jnp.log(self.noise)[None], self.mean_const[None],
        ])

    @property
    def n_train(self):
        return jnp.sum(self.mask)

    @property
    def noise_std(self):
        """Observation-noise standard deviation in the units of the targets."""
        return self.y_scale * jnp.sqrt(self.noise)


@partial(jax.jit, static_argnames=("n_candidates", "n_restarts", "max_iter", "groups"))
def _fit_hyperparameters(u, y, mask, known_noise, key, init, warm, n_active, *, n_candidates, n_restarts, max_iter,
                         groups=None):
    # ``warm`` and ``n_active`` are traced, so a warm-started fit reuses the
    # cold fit's compiled program: restarts beyond ``n_active`` do no iterations.
    d = init.shape[0] - 3
    k1, k2, k3 = jax.random.split(key, 3)
    log_ls = jax.random.uniform(k1, (n_candidates, d), minval=math.log(0.05), maxval=math.log(2.0))
    log_var = 0.5 * jax.random.normal(k2, (n_candidates, 1))
    log_noise = jax.random.uniform(k3, (n_candidates, 1), minval=math.log(1e-4), maxval=math.log(0.3))
    thetas = jnp.concatenate([log_ls, log_var, log_noise, jnp.zeros((n_candidates, 1))], axis=1)
    thetas = thetas.at[0].set(init)
    scores = jax.vmap(lambda t: _objective(t, u, y, mask, known_noise, groups))(thetas)
    scores = jnp.where(jnp.isfinite(scores), scores, jnp.inf)
    scores = scores.at[0].set(jnp.where(warm, -jnp.inf, scores[0]))  # a warm start is always refined
    starts = thetas[jnp.argsort(scores)[:n_restarts]]

    fun = lambda t: _objective(t, u, y, mask, known_noise, groups)  # noqa: E731
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(fun)

    def run(args):
        theta0, active = args
        # Stop like scipy's L-BFGS-B: small gradient, or a relative decrease of
        # the objective below ftol, or the iteration budget.
        def step(carry):
            theta, state, _, prev = carry
            value, grad = value_and_grad(theta, state=state)
            updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=fun)
            return optax.apply_updates(theta, updates), state, optax.tree.norm(grad), value

        def keep_going(carry):
            _, state, gnorm, prev = carry
            count = optax.tree.get(state, "count")
            value = optax.tree.get(state, "value")
            stalled = (prev - value) <= 1e-9 * jnp.maximum(jnp.maximum(jnp.abs(prev), jnp.abs(value)), 1.0)
            return active & (count < max_iter) & (gnorm > 1e-5) & jnp.isfinite(gnorm) & ~((count > 1) & stalled)

        big = jnp.asarray(1e30, dtype=theta0.dtype)
        theta, _, _, _ = jax.lax.while_loop(keep_going, step, (theta0, opt.init(theta0), big, big))
        return theta, jnp.where(active, fun(theta), jnp.inf)

    # lax.map, not vmap: a batched while_loop keeps stepping converged restarts,
    # and L-BFGS line searches at a zero gradient can stall.
    finals, values = jax.lax.map(run, (starts, jnp.arange(n_restarts) < n_active))
    values = jnp.where(jnp.isfinite(values), values, jnp.inf)
    best = jnp.argmin(values)
    return finals[best], values[best]


@partial(jax.jit, static_argnames=("groups",))
def _condition(theta, u, y, mask, known_noise, groups=None):
    ls, var, noise, m = _unpack(theta, theta.shape[0] - 3)
    K = _masked_covariance(u, mask, expand_lengthscales(ls, groups), var, noise, known_noise)
    L = jnp.linalg.cholesky(K)
    alpha = cho_solve((L, True), (y - m) * mask)
    L_inv = solve_triangular(L, jnp.eye(L.shape[0], dtype=L.dtype), lower=True)
    return L, L_inv, alpha, ls, var, noise, m


def _scaled_and_padded(x, y, low, high, noise_variance, *, n_pad, dtype):
    """Inputs to the unit cube of ``[low, high]``, standardized targets and their known noise, padded to ``n_pad`` rows.

    In numpy: a few vector operations, with no program to compile for each new number of rows. Returns
    device arrays ``(u, y, mask, known noise, low, high, y_loc, y_scale)``.
    """
    x, y, low, high = (np.asarray(a, dtype=np.float64) for a in (x, y, low, high))
    n, d = x.shape
    high = np.where(high > low, high, low + 1.0)
    y_loc = np.mean(y)
    y_scale = np.std(y)
    y_scale = y_scale if y_scale > 0 else 1.0
    u_pad, y_pad, mask = np.zeros((n_pad, d)), np.zeros(n_pad), np.zeros(n_pad)
    u_pad[:n] = (x - low) / (high - low)
    y_pad[:n] = (y - y_loc) / y_scale
    mask[:n] = 1.0
    known = np.zeros(n_pad)
    if noise_variance is not None:
        noise_variance = np.asarray(noise_variance, dtype=np.float64)
        if noise_variance.shape != (n,) or not np.all(np.isfinite(noise_variance) & (noise_variance >= 0)):
            raise DataError(f"noise_variance must be {n} non-negative finite numbers, got shape {noise_variance.shape}")
        known[:n] = noise_variance / y_scale**2  # standardised units
    return tuple(on_device(a, dtype) for a in (u_pad, y_pad, mask, known, low, high, y_loc, y_scale))


def _padded_size(n: int, pad_to: int | None) -> int:
    if pad_to is not None:
        if pad_to < n:
            raise ValueError(f"pad_to = {pad_to} is smaller than the {n} training points")
        return pad_to
    return _PAD_BUCKET * max(1, math.ceil(n / _PAD_BUCKET))


# L-BFGS iterations per restart of a hyper-parameter fit (fit_gp's default).
MAX_ITER = 200


def fit_gp(
    x,
    y,
    *,
    key,
    low=None,
    high=None,
    n_restarts: int | None = None,
    n_candidates: int = 64,
    max_iter: int = MAX_ITER,
    pad_to: int | None = None,
    init=None,
    noise_variance=None,
    features=None,
    program_cache=None,
) -> GPModel:
    """Fit a GP to ``(x, y)`` by maximising the (prior-regularised) marginal likelihood.

    Args:
        x: inputs, shape ``(n, d)``, physical units.
        y: targets, shape ``(n,)``. Combine replicates first (see
            :func:`jaxopt_mat.data.combine_replicates`): noise is learned from the
            scatter of the combined values around the fit.
        key: PRNG key for the hyper-parameter restarts.
        low, high: bounds that map inputs to the unit cube (default: the data's range).
        n_restarts: L-BFGS runs from the best random draws (default 4; 2 beyond 128
            points, 1 beyond 256, where each run costs more and the screening of
            ``n_candidates`` draws already picks a good start).
        n_candidates: random hyper-parameter draws scored to choose the restarts.
        max_iter: L-BFGS iterations per restart; 0 with ``init``: the GP of exactly those
            hyper-parameters (conditioned on the data, nothing fitted).
        pad_to: pad the data to this many rows (default: the next multiple of 64).
        init: warm start, e.g. ``model.hyperparameters`` of a fit on fewer data
            (shape ``(d + 3,)``). It is always one of the L-BFGS restarts, and
            the default number of restarts is halved (at least one).
        noise_variance: optional ``(n,)`` non-negative: each target's known noise variance
            (units of ``y`` squared), added to the common noise level, which is still
            learned (heteroscedastic noise; e.g. :func:`jaxopt_mat.data.replicate_noise_variance`
            for medians of replicates: a median of ten droplets is better known than one).
        features: optional :class:`~jaxopt_mat.input_kinds.FeatureMap` (``space.features``):
            categorical inputs, coded by label index, enter the kernel as one-hot
            blocks (one length-scale per input: the kernel depends only on whether two
            labels are equal) or descriptor rows.
        program_cache: optional :class:`~jaxopt_mat.program_cache.ProgramCache`
            that keeps the compiled fit between processes (used by the CLI).

    Returns:
        A :class:`GPModel`.

    Raises:
        DataError: for mismatched shapes, fewer than 2 points, or non-finite values.
        NumericalError: if the covariance cannot be factorised even with jitter.

    Example:
        >>> model = fit_gp(x, y, key=jax.random.key(0))
        >>> mean, var = model.predict(x[:3])
    """
    # numpy until the padded arrays: jnp.asarray of a numpy table compiles a program for each new row count
    x, y = np.asarray(x), np.asarray(y)
    dtype = jax.dtypes.canonicalize_dtype(np.result_type(x.dtype, np.float32))
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"fit_gp expects x of shape (n, d) and y of shape (n,), got {x.shape} and {y.shape}")
    n, d = x.shape
    if n < 2:
        raise DataError(f"a GP needs at least 2 observations, got {n}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DataError("fit_gp got NaN or infinite values")
    if dtype != jnp.float64:
        warnings.warn(
            "fit_gp is running in float32; GP results are unreliable. Call "
            "jax.config.update('jax_enable_x64', True) before creating arrays.",
            stacklevel=2,
        )
    low = np.min(x, axis=0) if low is None else np.asarray(low)
    high = np.max(x, axis=0) if high is None else np.asarray(high)
    n_pad = _padded_size(n, pad_to)
    u_pad, y_pad, mask, known, low, high, y_loc, y_scale = _scaled_and_padded(x, y, low, high, noise_variance,
                                                                              n_pad=n_pad, dtype=dtype)
    groups = None if features is None else features.groups
    g = d if features is None else features.n_groups
    f_pad = u_pad if features is None else features(u_pad)
    warm = init is not None
    if warm:
        init = np.asarray(init, dtype=dtype)
        if init.shape != (g + 3,) or not np.all(np.isfinite(init)):
            raise DataError(f"init must be {g + 3} finite hyper-parameters (model.hyperparameters), got shape {init.shape}")
    init = on_device(init if warm else _default_theta(g, dtype))
    n_active = n_restarts
    if n_restarts is None:
        n_restarts = 4 if n <= 128 else (2 if n <= 256 else 1)
        n_active = max(1, n_restarts // 2) if warm else n_restarts
    static = dict(n_candidates=n_candidates, n_restarts=n_restarts, max_iter=max_iter)
    if groups is not None:
        static["groups"] = groups
    args = (f_pad, y_pad, mask, known, key, init, on_device(warm), on_device(n_active, np.int32))
    if warm and max_iter == 0:
        theta = init
    elif program_cache is None:
        theta, _ = _fit_hyperparameters(*args, **static)
    else:
        theta, _ = program_cache.call("fit_gp", _fit_hyperparameters, args, static)
    cond_static = {} if groups is None else {"groups": groups}
    if program_cache is None:
        L, L_inv, alpha, ls, var, noise, m = _condition(theta, f_pad, y_pad, mask, known, **cond_static)
    else:
        L, L_inv, alpha, ls, var, noise, m = program_cache.call("condition_gp", _condition,
                                                                (theta, f_pad, y_pad, mask, known), cond_static)
    if not np.all(np.isfinite(np.asarray(L))):
        raise NumericalError(
            f"GP covariance is not positive definite even with jitter {_JITTER:g} x variance; "
            "check for duplicated inputs with conflicting targets"
        )
    return GPModel(u_pad, mask, L, L_inv, alpha, ls, var, noise, m, y_loc, y_scale, low, high, features)
