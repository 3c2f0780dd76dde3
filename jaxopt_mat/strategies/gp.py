"""``gp``: one GP of the objective, batch log-EI with local penalization (scalar and spectrum campaigns).

Outcome constraints (``[[outcome_constraints]]``) get one GP each; the
acquisition adds the log probability that every bound holds (expected
improvement with constraints, Gardner et al., ICML 2014), and the incumbent
is the best condition that kept them. For a spectrum campaign the GP models
the capped log of the peak-smoothed loss (:func:`peak_smoothed_losses`,
:func:`~jaxopt_mat.objectives.capped_log_loss`), and the intensity window is
one more such constraint: a GP of the log peak absorbance keeps the batch
below the window's top.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxopt_mat.acquisition.batch import local_penalization_batch
from jaxopt_mat.campaign import Snapshot
from jaxopt_mat.data import combine_replicates
from jaxopt_mat.objectives import LOSS_FLOOR, capped_log_loss, intensity_factor_rows, shape_similarity_rows
from jaxopt_mat.strategies.base import (Context, Request, Suggestion, check_feasible, failure_note, feasibility,
                                        incumbent, measured_x, n_lengthscales, objective_target, outcome_models,
                                        outcome_note, pending_x)
from jaxopt_mat.strategies.fits import data_digest, fit_start, remembered_fits
from jaxopt_mat.padded import predict_rows
from jaxopt_mat.surrogates.gp import fit_gp
from jaxopt_mat.surrogates.outcome_constraints import outcome_constraints

# Name of the spectrum campaigns' peak-intensity GP among the remembered fits.
PEAK_GP = "log_peak"


def fit_warm(snap: Snapshot, name: str, x, y, *, key, low, high, ctx: Context, noise_variance=None,
             refit_after: int = 1, digests: dict | None = None):
    """:func:`fit_gp` of the GP ``name``, optimized from its latest earlier fit's hyper-parameters or keeping
    those of an earlier fit (the rules of :mod:`jaxopt_mat.strategies.fits`); ``digests[name]`` gets its data's
    digest, for :func:`~jaxopt_mat.strategies.fits.remembered_fits`."""
    digest = data_digest(x, y, low, high, noise_variance)
    if digests is not None:
        digests[name] = digest
    init, keep = fit_start(snap.state, name, x.shape[0], n_lengthscales(snap), digest, refit_after)
    return fit_gp(x, y, key=key, low=low, high=high, init=init, noise_variance=noise_variance,
                  features=snap.space.features, program_cache=ctx.program_cache, **({"max_iter": 0} if keep else {}))


def log_peak(snap: Snapshot) -> np.ndarray:
    """Per measured row: log of the spectrum's maximum, the variable of the loss's intensity window."""
    return np.log(np.maximum(snap.measured.max(axis=1), 1e-12))


def peak_smoothed_losses(snap: Snapshot, peak_model) -> np.ndarray:
    """Per condition: the loss with the measured peak replaced by the peak GP's posterior mean.

    The loss is ``1 - cos * delta(peak)``. Near the edges of the intensity
    window the few-percent intensity noise of a measurement moves ``delta``
    by far more than the shape term varies between good recipes (replicate
    losses scatter by about 0.02 there, against about 0.0005 for the shape
    term alone). The peak is a smooth function of the recipe that its GP
    estimates from all conditions at once, so ``gp`` models
    ``1 - median(cos) * delta(exp(posterior mean of log peak))``: the same
    loss, with the intensity noise averaged out.
    """
    cos = combine_replicates(snap.x, shape_similarity_rows(snap.measured, snap.target)).y
    peak = np.exp(predict_rows(peak_model, snap.conditions.x).mean)
    return 1.0 - cos * intensity_factor_rows(peak, snap.config.objective.window)


def gp_target(snap: Snapshot, y: np.ndarray) -> np.ndarray:
    """What ``gp`` models for the objective values ``y``: ``y`` itself, or a spectrum's capped log-loss."""
    return capped_log_loss(y) if snap.config.objective.is_spectrum else np.asarray(y, dtype=np.float64)


def suggest_gp(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """Batch log-EI with local penalization on a GP of the objective (see the module's docstring)."""
    config, space, cond = snap.config, snap.space, snap.conditions
    maximize = config.objective.maximize
    spectrum = config.objective.is_spectrum
    k_fit, k_acq = jax.random.split(jax.random.key(req.rng_seed))
    digests = {}
    constraints, fits = outcome_models(snap, key=jax.random.fold_in(k_fit, 2), low=space.low, high=space.high,
                                       ctx=ctx, refit_after=req.refit_after, digests=digests)
    y = cond.y
    if spectrum:  # keep the peak below the top of the intensity window: its own GP, log P(log peak <= log top)
        ctx.progress("fitting GP to the peak intensity")
        r_cond = combine_replicates(snap.x, log_peak(snap)).y
        fits[PEAK_GP] = fit_warm(snap, PEAK_GP, cond.x, r_cond, key=jax.random.fold_in(k_fit, 1),
                                 low=space.low, high=space.high, ctx=ctx, refit_after=req.refit_after, digests=digests)
        window = outcome_constraints([fits[PEAK_GP]], [np.log(config.objective.window[1])], [True])
        constraints = window if constraints is None else window + constraints
        y = peak_smoothed_losses(snap, fits[PEAK_GP])
    ctx.progress(f"fitting GP to {cond.x.shape[0]} conditions")
    if spectrum:
        warp, y_model, known_noise = None, gp_target(snap, y), None
    else:  # a long tail of bad values compressed (output_warp)
        warp, y_model, known_noise = objective_target(snap, y)
    model = fit_warm(snap, config.objective.name, cond.x, y_model, key=k_fit, low=space.low, high=space.high,
                     ctx=ctx, noise_variance=known_noise, refit_after=req.refit_after, digests=digests)
    fits[config.objective.name] = model
    best = incumbent(snap, y_model, maximize)
    order = np.lexsort((-y if maximize else y, ~snap.satisfied))  # start near the best conditions that count
    top = cond.x[order[:5]]
    rng = np.random.default_rng(req.rng_seed)
    jitter = rng.normal(scale=0.05, size=(2,) + top.shape) * (space.high - space.low)
    init = np.clip(np.concatenate([top, (top[None] + jitter).reshape(-1, space.dim)]), space.low, space.high)
    ctx.progress(f"optimizing log-EI for a batch of {req.batch}")
    result = local_penalization_batch(model, space, req.batch, key=k_acq, best=best, maximize=maximize, init=init,
                                      constraints=constraints, program_cache=ctx.program_cache,
                                      feasibility=feasibility(snap, low=space.low, high=space.high, ctx=ctx),
                                      pending=pending_x(snap), exclude=measured_x(snap, req.batch))
    x = check_feasible(space, result.x)
    mean, std = np.asarray(result.mean), np.asarray(result.std)
    if spectrum:  # back to loss units: median and delta-method spread of exp(model) - floor
        mean, std = np.exp(mean) - LOSS_FLOOR, np.exp(mean) * std
    elif warp is not None:
        mean, std = warp.posterior(mean, std)
    extra = {"predicted_mean": mean, "predicted_std": std, "log_ei": np.asarray(result.log_acquisition)}
    # The stop rules judge GPs of the recorded objective: a spectrum's or a warped GP models a transform of it.
    diagnostics = {} if spectrum or warp is not None else {"objective_models": (model,)}
    return Suggestion(x, "gp", extra, failure_note(snap) + outcome_note(snap),
                      state=remembered_fits(snap.state, cond.x.shape[0], fits, digests),
                      diagnostics=diagnostics)
