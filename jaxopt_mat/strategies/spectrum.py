"""Spectrum campaigns beyond ``gp``: the composite spectrum GP (``cgp``), the network (``dnn``), and their mixes.

``mixed`` takes the first half of the batch (rounded up) from the network,
kept away from the rest, which comes from the composite spectrum GP; ``auto``
suggests with ``cgp`` until the network is ready (:mod:`~jaxopt_mat.strategies.two_step`)
and then as ``mixed``, as the study split its last rounds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.acquisition.spectrum import posterior_expected_loss, spectrum_batch, spectrum_gp_batch
from jaxopt_mat.campaign import Snapshot
from jaxopt_mat.data import combine_replicates
from jaxopt_mat.strategies.base import (Context, Request, Suggestion, check_feasible, failure_note, feasibility,
                                        incumbent, outcome_models, outcome_note, pending_x)
from jaxopt_mat.strategies.two_step import network_readiness, network_seed, train_on
from jaxopt_mat.surrogates.spectrum_gp import fit_spectrum_gp

# Score draws per evaluation of the composite GP's posterior expected loss (memory: draws x conditions x wavelengths).
DRAW_CHUNK = 256
# The recommendation is an argmin among conditions whose expected losses can differ by less than the
# Monte Carlo error of 256 draws; 4,096 draws cut that error by four.
RECOMMENDATION_DRAWS = 4096


def spectrum_gp_view(snap: Snapshot, *, key, draws: int = DRAW_CHUNK, program_cache=None):
    """The composite spectrum GP of a campaign and each condition's posterior expected loss.

    Returns ``(model, conditions, expected_loss)``: the
    :class:`~jaxopt_mat.surrogates.spectrum_gp.SpectrumGP` fitted to the median
    spectrum of every measured condition, those conditions, and the posterior
    expected exact loss of each (Monte Carlo over ``draws`` score draws, a
    multiple of 256, evaluated 256 at a time). The expected loss weighs each
    measurement against all the others, so a single lucky reading at the
    intensity window's edge does not make a condition look best.
    """
    if draws <= 0 or draws % DRAW_CHUNK:
        raise ValueError(f"draws must be a positive multiple of {DRAW_CHUNK}, got {draws}")
    space = snap.space
    med = combine_replicates(snap.x, snap.measured)
    k_fit, k_z = jax.random.split(key)
    model = fit_spectrum_gp(med.x, med.y, key=k_fit, low=space.low, high=space.high, features=space.features,
                            program_cache=program_cache)
    z = jax.random.normal(k_z, (draws, model.n_components), dtype=model.mean.dtype)
    target = jnp.asarray(snap.target)
    window = jnp.asarray(snap.config.objective.window, dtype=model.mean.dtype)
    # Padded to the GPs' padded training size, so the compiled program serves every round of a padding bucket.
    n, n_pad = med.x.shape[0], model.models.x_unit.shape[1]
    x_pad = jnp.asarray(np.concatenate([med.x, np.repeat(med.x[:1], n_pad - n, axis=0)]))
    chunks = [posterior_expected_loss(model, x_pad, target, z[i:i + DRAW_CHUNK], window)
              for i in range(0, draws, DRAW_CHUNK)]  # equal chunks: their mean is the mean over all draws
    return model, med, np.asarray(sum(chunks) / len(chunks))[:n]


def recommended_condition(snap: Snapshot, *, key, program_cache=None) -> tuple[int, float]:
    """The measured condition with the lowest posterior expected loss: ``(its index, that loss)``.

    The lowest measured loss is a noisy choice: a single reading whose peak
    noise lands inside the intensity window makes a recipe at the window's
    edge look best. The composite spectrum GP (:func:`spectrum_gp_view`)
    weighs each measurement against all the others. The expected loss is
    averaged over :data:`RECOMMENDATION_DRAWS` draws: near-equal conditions
    are told apart by the model, not by the Monte Carlo error.
    """
    _, med, expected = spectrum_gp_view(snap, key=key, draws=RECOMMENDATION_DRAWS, program_cache=program_cache)
    cond = snap.conditions
    if med.x.shape != cond.x.shape or not np.array_equal(med.x, cond.x):
        raise AssertionError("internal error: spectra and losses grouped into different conditions")
    i = int(np.argmin(np.where(snap.satisfied, expected, np.inf)) if snap.satisfied.any() else np.argmin(expected))
    return i, float(expected[i])


def suggest_cgp(snap: Snapshot, req: Request, ctx: Context, batch: int | None = None, success=None,
                constraints=None) -> Suggestion:
    """``cgp``: expected improvement of the loss under GPs of the spectrum's principal components.

    ``success``, ``constraints``: the success classifier and the outcome constraints' GPs when the
    caller has fitted them already (``mixed``).
    """
    batch = req.batch if batch is None else batch
    k_fit, k_acq = jax.random.split(jax.random.key(req.rng_seed))
    ctx.progress("fitting GPs to the principal components of the measured spectra")
    model, _, expected = spectrum_gp_view(snap, key=k_fit, program_cache=ctx.program_cache)
    ctx.progress(f"optimizing the expected improvement of the loss for a batch of {batch}")
    if success is None:
        success = feasibility(snap, low=snap.space.low, high=snap.space.high, ctx=ctx)
    if constraints is None:
        constraints, _ = outcome_models(snap, key=jax.random.fold_in(k_fit, 7), low=snap.space.low,
                                        high=snap.space.high, ctx=ctx)
    sb = spectrum_gp_batch(model, snap.space, snap.target, batch, key=k_acq, best=incumbent(snap, expected, False),
                           window=snap.config.objective.window, feasibility=success, constraints=constraints,
                           pending=pending_x(snap), program_cache=ctx.program_cache)
    x = check_feasible(snap.space, sb.x)
    extra = {"predicted_loss": np.asarray(sb.loss_mean), "predicted_loss_std": np.asarray(sb.loss_std),
             "log_ei": np.asarray(sb.log_acquisition)}
    return Suggestion(x, "cgp", extra, failure_note(snap) + outcome_note(snap))


def suggest_dnn(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """``dnn``: the whole batch minimises the spectrum network's predicted loss."""
    return _network_batch(snap, req, ctx, ensemble=None, n_dnn=req.batch, label="dnn")


def suggest_mixed(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """``mixed``: half the batch (rounded up) from the network, the rest from ``cgp``."""
    return _network_batch(snap, req, ctx, ensemble=None, n_dnn=(req.batch + 1) // 2, label="mixed")


def suggest_auto(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """``auto``: ``cgp`` until the network is accurate and stable, then ``mixed`` (the switch is one-way)."""
    ctx.progress("training the spectrum network to judge its accuracy and stability")
    ready = network_readiness(snap, seed=req.seed, cache=ctx.ensemble_cache)
    note = f"auto: {ready.step} step ({ready.reason})"
    if ready.step == "gp":  # the GP step: the composite spectrum GP (``cgp``)
        result = suggest_cgp(snap, req, ctx)
        result.method = "auto:cgp"
    else:
        result = _network_batch(snap, req, ctx, ensemble=ready.ensemble, n_dnn=(req.batch + 1) // 2,
                                label="auto:mixed")
    result.notes.insert(0, note)
    if ready.switched is not None:
        result.state["network_step_since_batch"] = ready.switched
    if ready.assessed:
        result.diagnostics["readiness"] = ready
    return result


def _network_batch(snap: Snapshot, req: Request, ctx: Context, *, ensemble, n_dnn: int, label: str) -> Suggestion:
    """``n_dnn`` recipes from the network, the rest of the batch from ``cgp`` (chosen first, so the network's keep
    away from them)."""
    objective = snap.config.objective
    notes, cgp = [], None
    success = feasibility(snap, low=snap.space.low, high=snap.space.high, ctx=ctx)
    constraints, _ = outcome_models(snap, key=jax.random.fold_in(jax.random.key(req.rng_seed), 7),
                                    low=snap.space.low, high=snap.space.high, ctx=ctx)
    if n_dnn < req.batch:
        cgp = suggest_cgp(snap, req, ctx, batch=req.batch - n_dnn, success=success, constraints=constraints)
        notes.append(f"mixed: {n_dnn} recipes from the spectrum network, then {req.batch - n_dnn} from the "
                     "composite spectrum GP")
    if ensemble is None:
        ctx.progress("training the spectrum network")
        ensemble = train_on(snap, None, seed=network_seed(snap, req.seed), cache=ctx.ensemble_cache)
    ctx.progress(f"minimising the predicted loss for {n_dnn} recipes")
    sb = spectrum_batch(ensemble, snap.space, snap.target, n_dnn, key=jax.random.key(req.rng_seed),
                        window=objective.window, smoothness=objective.smoothness, kappa=req.kappa,
                        pending=_stacked(pending_x(snap), None if cgp is None else cgp.x),
                        program_cache=ctx.program_cache,
                        feasibility=success, constraints=constraints)
    x = np.asarray(sb.x)
    extra = {"predicted_loss": np.asarray(sb.loss_mean), "predicted_loss_std": np.asarray(sb.loss_std)}
    if cgp is not None:  # network rows first; the composite GP's keep their log-EI (the acquisition stop rule reads it)
        x = np.concatenate([x, cgp.x])
        extra = {k: np.concatenate([v, cgp.extra[k]]) for k, v in extra.items()}
        extra["log_ei"] = np.concatenate([np.full(n_dnn, np.nan), cgp.extra["log_ei"]])
    return Suggestion(x, label, extra, notes + failure_note(snap) + outcome_note(snap))


def _stacked(*parts):
    """The rows of the arrays among ``parts`` that are not ``None``, stacked (``None`` if all are)."""
    parts = [p for p in parts if p is not None]
    return np.concatenate(parts) if parts else None
