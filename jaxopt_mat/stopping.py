"""When to stop a campaign: explicit rules, each with its value, threshold and verdict.

Rules (thresholds in ``[stopping]`` of ``campaign.toml``; defaults below):

- ``threshold``: the best median-of-replicates value reached ``threshold``
  (<= for minimised objectives and spectrum losses, >= for maximised ones;
  Pareto campaigns: the hypervolume reached it). Off unless ``threshold`` is set.
- ``stability``: GPs fitted on the data up to each of the last
  ``stability_rounds`` batches and up to the batch before agree on a fixed probe
  set of 64 recipes (64 candidates of a pool): the cosine similarity of their mean-centred prediction
  vectors (their correlation) is at least ``stability`` (0.95) every time.
- ``accuracy``: the GP fitted before the newest batch predicts that batch's
  medians with relative MSE (MSE over the variance of the measurements) at most
  ``accuracy`` (0.1).
- ``plateau``: over the last ``plateau_rounds`` batches (3) the best value
  improved by less than ``plateau_fraction`` (0.01) of the range of all
  measured values (Pareto campaigns: the hypervolume grew by less than that
  fraction of itself; spectrum campaigns: the best loss, in the log-loss that
  ``gp`` models, against that log-loss's range, as for the acquisition rule).
- ``acquisition``: the largest expected improvement in the newest GP batch
  (from its ``log_ei`` column) is below ``min_improvement`` (0.001) of that range
  (spectrum campaigns: of the range of the capped log-loss that ``gp`` models;
  ``cgp``, ``auto``'s GP step and the ``cgp`` half of ``mixed`` batches record
  the expected improvement of the log-loss, in the same units).
- ``budget``: at least ``budget`` runs recorded, failed runs included. Off unless set.
- spectrum campaigns also: ``spectrum_accuracy``, ``spectrum_mse`` and
  ``spectrum_stability``, the spectrum network's accuracy on the newest batch
  and its stability, by the ``auto`` switch's numbers and thresholds
  (:func:`spectrum_rules`).

``should_stop`` is true when the threshold or the budget is met, or when the
model is stable and accurate and either the plateau or the acquisition rule
holds (nothing left to learn, nothing left to gain). In spectrum campaigns the
model is either the GP of the loss (``stability`` and ``accuracy``) or the
spectrum network (its three rules): the network predicts the whole spectrum,
so it can be accurate where the loss, which jumps at the intensity window's
edge, is not.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from jaxopt_mat.campaign import Snapshot
from jaxopt_mat.data import combine_replicates, replicate_noise_columns
from jaxopt_mat.design import latin_hypercube
from jaxopt_mat.objectives import LOSS_FLOOR, capped_log_loss
from jaxopt_mat.pareto import hypervolume_history
from jaxopt_mat.strategies.base import Context, n_lengthscales
from jaxopt_mat.strategies.fits import data_digest, hyperparameters_of, valid_hyperparameters
from jaxopt_mat.strategies.two_step import COS_ACCURACY, COS_STABILITY, REL_MSE_ACCURACY, network_readiness
from jaxopt_mat.padded import predict_rows
from jaxopt_mat.surrogates.independent import fit_objectives

DEFAULTS = {
    "threshold": None,
    "stability": 0.95,
    "stability_rounds": 2,
    "accuracy": 0.1,
    "plateau_fraction": 0.01,
    "plateau_rounds": 3,
    "min_improvement": 1e-3,
    "budget": None,
}


def _rule(value, threshold, met) -> dict:
    clean = lambda v: None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v  # noqa: E731
    return {"value": clean(value), "threshold": threshold, "met": bool(met)}


def centred_cosine(a, b) -> float:
    a = np.asarray(a) - np.mean(a)
    b = np.asarray(b) - np.mean(b)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else 1.0


# state.json key of the stop rules' fits on earlier batches: the data's digest -> each GP's hyper-parameters
FITS_KEY = "stop_rule_fits"
FITS_KEPT = 8


def _digest(x, y, space, seed) -> str:
    """What a fit on ``(x, y)`` depends on, as a short hex digest (an edited record or a widened bound gives another)."""
    return data_digest(x, y, space.low, space.high, [seed])


def _remembered(saved: dict, digest: str, k: int, d: int):
    """The ``k`` hyper-parameter vectors stored for ``digest``, or None (absent or malformed: a hand edit)."""
    thetas = saved.get(digest)
    if isinstance(thetas, list) and len(thetas) == k and all(valid_hyperparameters(t, d) for t in thetas):
        return tuple(np.asarray(t, dtype=np.float64) for t in thetas)
    return None


def _fit(x, y, space, seed, program_cache, saved: dict, new: dict, d: int):
    """GPs for the data ``y`` ``(n, k)``, one per column, on the replicate medians.

    The fits on earlier batches come back in every later ``suggest``: their
    hyper-parameters are kept in ``saved`` (the state's :data:`FITS_KEY`, by the
    data's digest, newest first) and a stored fit is only conditioned again; a
    new fit starts from the newest stored one (``fit_gp``'s warm start). ``new``
    collects the fits made here.
    """
    cond = combine_replicates(x, y)
    digest = _digest(cond.x, cond.y, space, seed)
    k = cond.y.shape[1]
    kept = _remembered(saved, digest, k, d)
    warm = kept or next((t for t in (_remembered(saved, key, k, d) for key in saved) if t is not None), None)
    models = fit_objectives(cond.x, cond.y, key=jax.random.key(seed), low=space.low, high=space.high,
                            features=space.features, noise_variance=replicate_noise_columns(cond, y),
                            program_cache=program_cache, inits=warm, max_iter=0 if kept is not None else 200)
    if kept is None:
        new[digest] = [hyperparameters_of(m) for m in models]
    return models, cond


def _probe(snap: Snapshot, space, seed: int) -> np.ndarray:
    """The fixed probe set of the stability rule: 64 candidates of a pool, or a Latin hypercube."""
    if snap.config.is_pool:
        feats = snap.pool.features
        rng = np.random.default_rng(seed)
        return feats[rng.choice(feats.shape[0], min(64, feats.shape[0]), replace=False)]
    return latin_hypercube(space, 64, seed=seed, optimize=False)


def _progress(snap: Snapshot, x, y, batches) -> tuple[np.ndarray, float, bool]:
    """What the threshold and plateau rules watch, after each batch: the best value, or the hypervolume.

    Returns ``(values per batch, scale for relative gains, minimise?)``.
    """
    cfg = snap.config
    order = sorted(set(batches.tolist()))
    if cfg.objective.is_pareto:
        cond = snap.conditions
        signs = cfg.objective.signs
        ref = snap.reference_point(cond.y * signs)
        hv = np.array(hypervolume_history(cond.y[cond.index] * signs, batches, ref))
        return hv, float(hv[-1]) if hv.size else 0.0, False
    minimize = not cfg.objective.maximize
    best = np.array([(np.min if minimize else np.max)(y[batches <= b]) for b in order])
    return best, float(np.ptp(y)) if y.size else 0.0, minimize


def evaluate(snap: Snapshot, settings: dict | None = None, *, lazy: bool = False, context: Context | None = None,
             diagnostics: dict | None = None, acquisition=None, seed: int | None = None) -> dict:
    """Every stop rule for the campaign's current data: ``{"stop_rules": {...}, "should_stop": bool}``.

    With ``lazy`` (what ``suggest`` uses), the stability and accuracy rules,
    which need GP fits, are evaluated only when the plateau or acquisition rule
    holds, i.e. only when they can change ``should_stop``; otherwise they are
    reported as not met with value ``None``. Pareto campaigns watch the
    hypervolume (threshold, plateau), the largest EHVI (acquisition, relative to
    the hypervolume) and every objective's GP (stability: the smallest cosine;
    accuracy: the largest relative MSE). Spectrum campaigns add the spectrum
    network's rules (:func:`spectrum_rules`).

    ``diagnostics`` (a strategy's, or ``status``'s) lend what was already
    computed: ``objective_models``, GPs of the recorded objective on every
    condition (the all-data fit of the stability rule), and ``readiness``, the
    spectrum network's measured readiness (otherwise measured here, only if
    its rules are evaluated, from the ensembles of ``seed``, default the
    campaign's, through ``context``'s ensemble cache). ``acquisition``: the
    largest acquisition value of the batch being suggested (default: the
    newest recorded one's).
    """
    s = {**DEFAULTS, **(settings if settings is not None else snap.config.stopping)}
    ctx = context or Context()
    diagnostics = diagnostics or {}
    cfg = snap.config
    x, y, batches = snap.x, snap.y, snap.batches
    space = snap.space
    rules: dict = {}
    order = sorted(set(batches.tolist()))
    progress, scale, minimize = _progress(snap, x, y, batches)
    now = float(progress[-1]) if progress.size else None
    thr = s["threshold"]
    rules["threshold"] = _rule(now, thr, thr is not None and now is not None and (now <= thr if minimize else now >= thr))
    budget = s["budget"]
    runs = int(x.shape[0] + snap.failed_x.shape[0])  # a failed run spent the budget too
    rules["budget"] = _rule(runs, budget, budget is not None and runs >= budget)

    if cfg.objective.is_spectrum:
        # Spectrum losses are judged in the log-loss the GP step models: a best loss going from 0.006 to
        # 0.003 is progress, although the range of all losses (up to 1, out of the window) dwarfs it.
        progress = np.log(progress + LOSS_FLOOR)
        scale = float(np.ptp(capped_log_loss(snap.conditions.y))) if y.size else 0.0

    # Plateau: improvement of the progress value over the last k batches.
    k = s["plateau_rounds"]
    if len(order) > k:
        past, last = float(progress[-k - 1]), float(progress[-1])
        gain = (past - last if minimize else last - past) / scale if scale > 0 else 0.0
        rules["plateau"] = _rule(gain, s["plateau_fraction"], gain < s["plateau_fraction"])
    else:
        rules["plateau"] = _rule(None, s["plateau_fraction"], False)

    acq = snap.last_acquisition if acquisition is None else acquisition
    # Spectrum campaigns: the EI of a log-loss (gp: capped; cgp: not), against the capped log-loss's range.
    rel = acq / scale if (acq is not None and scale > 0) else None
    rules["acquisition"] = _rule(rel, s["min_improvement"], rel is not None and rel < s["min_improvement"])
    if lazy and not (rules["plateau"]["met"] or rules["acquisition"]["met"]):
        rules["stability"] = _rule(None, s["stability"], False)
        rules["accuracy"] = _rule(None, s["accuracy"], False)
        if cfg.objective.is_spectrum:
            spectrum_rules(snap, rules, readiness=_UNMEASURED)
        return {"stop_rules": rules, "should_stop": bool(rules["threshold"]["met"] or rules["budget"]["met"])}

    # Stability and accuracy need fits on nested data sets.
    Y = y.reshape(y.shape[0], -1)
    probe = _probe(snap, space, cfg.seed + 104729)
    fits = {}
    saved, new = snap.state.get(FITS_KEY, {}), {}
    saved = saved if isinstance(saved, dict) else {}  # a hand edit is ignored, not fatal
    if diagnostics.get("objective_models") is not None and order:  # the strategy's GPs of all the data
        lent = tuple(diagnostics["objective_models"])
        fits[order[-1]] = (lent, snap.conditions)
        cond = snap.conditions  # kept: the next suggest's fit on the batches before its newest
        new[_digest(cond.x, cond.y.reshape(cond.x.shape[0], -1), space, cfg.seed)] = [
            hyperparameters_of(m) for m in lent]

    def fit_upto(b):
        if b not in fits:
            keep = batches <= b
            enough = combine_replicates(x[keep], Y[keep]).x.shape[0] >= 3
            fits[b] = (_fit(x[keep], Y[keep], space, cfg.seed, ctx.program_cache, saved, new, n_lengthscales(snap))
                       if enough else None)
        return fits[b]

    m = s["stability_rounds"]
    sims = []
    if len(order) > m:
        for i in range(len(order) - m, len(order)):
            a, b = fit_upto(order[i - 1]), fit_upto(order[i])
            if a is None or b is None:
                sims = []
                break
            sims.append(min(centred_cosine(predict_rows(ma, probe).mean, predict_rows(mb, probe).mean)
                            for ma, mb in zip(a[0], b[0])))
    rules["stability"] = _rule(min(sims) if sims else None, s["stability"], bool(sims) and min(sims) >= s["stability"])

    acc = None
    if len(order) >= 2 and fit_upto(order[-2]) is not None:
        models = fit_upto(order[-2])[0]
        newest = combine_replicates(x[batches == order[-1]], Y[batches == order[-1]])
        errs = []
        for j, model in enumerate(models):
            pred = predict_rows(model, newest.x).mean
            var = float(np.var(Y[:, j])) if Y.shape[0] > 1 else 0.0
            errs.append(float(np.mean((pred - newest.y[:, j]) ** 2) / var) if var > 0 else 0.0)
        acc = max(errs)
    rules["accuracy"] = _rule(acc, s["accuracy"], acc is not None and acc <= s["accuracy"])

    learned = rules["stability"]["met"] and rules["accuracy"]["met"]
    if cfg.objective.is_spectrum:  # either model may have learned what there is to learn
        learned = spectrum_rules(snap, rules, readiness=diagnostics.get("readiness"),
                                 ensemble_cache=ctx.ensemble_cache, seed=seed) or learned
    should = (rules["threshold"]["met"] or rules["budget"]["met"]
              or (learned and (rules["plateau"]["met"] or rules["acquisition"]["met"])))
    out = {"stop_rules": rules, "should_stop": bool(should)}
    if new:  # the newest fits, then the stored ones, FITS_KEPT in all
        kept = {**new, **{k: v for k, v in saved.items() if k not in new}}
        out["state"] = {FITS_KEY: dict(list(kept.items())[:FITS_KEPT])}
    return out


_UNMEASURED = object()


def spectrum_rules(snap: Snapshot, rules: dict, *, readiness=None, ensemble_cache=None,
                   seed: int | None = None) -> bool:
    """Add the spectrum network's rules to ``rules``; true when all three are met.

    The numbers the ``auto`` switch uses (:mod:`jaxopt_mat.strategies.two_step`), with its
    thresholds: ``spectrum_accuracy``, the median cosine similarity of the
    newest batch's measured spectra and those predicted by the ensemble trained
    without it (at least 0.95); ``spectrum_mse``, that prediction's relative MSE
    (at most 0.05); ``spectrum_stability``, the median cosine similarity of
    that ensemble's and the all-data ensemble's spectra on 64 probe recipes (at
    least 0.97). They are measured in the network step too. With fewer than 30
    conditions or two batches they are ``None``, not met.
    """
    if readiness is _UNMEASURED:
        values = (None, None, None)
    else:
        if readiness is None:
            readiness = network_readiness(snap, seed=snap.config.seed if seed is None else seed,
                                          cache=ensemble_cache, assess=True)
        values = (readiness.accuracy_cos, readiness.accuracy_rel_mse, readiness.stability_cos)
    met = []
    for (name, threshold, at_least), value in zip((("spectrum_accuracy", COS_ACCURACY, True),
                                                   ("spectrum_mse", REL_MSE_ACCURACY, False),
                                                   ("spectrum_stability", COS_STABILITY, True)), values):
        ok = value is not None and (value >= threshold if at_least else value <= threshold)
        rules[name] = _rule(value, threshold, ok)
        met.append(ok)
    return all(met)
