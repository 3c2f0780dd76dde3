"""How well a fitted GP explains its own data: closed-form leave-one-out predictions and their summary."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxopt_mat.surrogates.base import Posterior
from jaxopt_mat.surrogates.gp import GPModel


def leave_one_out(model: GPModel) -> Posterior:
    """Closed-form leave-one-out predictions at the training points (real rows only).

    Uses ``mu_i = y_i - [K^{-1} r]_i / [K^{-1}]_ii`` and ``var_i = 1 / [K^{-1}]_ii``
    (Rasmussen & Williams 2006, eq. 5.12); the variance includes observation noise.
    """
    n = int(jnp.sum(model.mask))
    K_inv = model.chol_inv.T @ model.chol_inv
    diag = jnp.diag(K_inv)[:n]
    y_std = model.mean_const + (model.chol @ (model.chol.T @ model.alpha))[:n]
    # chol chol^T alpha = K alpha = r (+ jitter effects): recover r, then y.
    loo_std = y_std - model.alpha[:n] / diag
    return Posterior(model.y_loc + model.y_scale * loo_std, model.y_scale**2 / diag)


def fit_quality(model: GPModel, y) -> dict:
    """Leave-one-out R² and RMSE for the training targets ``y``, the noise level and length-scales."""
    loo = leave_one_out(model)
    y = np.asarray(y)
    resid = y - np.asarray(loo.mean)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    return {
        "loo_r2": r2,
        "loo_rmse": float(np.sqrt(np.mean(resid**2))),
        "noise_std": float(model.noise_std),
        "lengthscales": [float(v) for v in np.asarray(model.lengthscale)],
    }
