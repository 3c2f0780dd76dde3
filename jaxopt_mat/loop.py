"""One turn of the closed loop for a campaign folder: status and the next suggestions.

This layer reads a :class:`~jaxopt_mat.campaign.Campaign`, calls the functional
core (design, GP, local penalization) and returns plain arrays; the CLI prints
and writes them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

from jaxopt_mat.acquisition.batch import MAX_BATCH, local_penalization_batch
from jaxopt_mat.campaign import Campaign, Config
from jaxopt_mat.data import combine_replicates
from jaxopt_mat.design import latin_hypercube, random_design
from jaxopt_mat.errors import DataError
from jaxopt_mat.surrogates.gp import fit_gp, fit_quality

METHODS = ("gp", "random", "lhs")
POOL_METHODS = ("gp", "random", "spread")
SPECTRUM_METHODS = ("auto", "gp", "cgp", "dnn", "mixed", "random", "lhs")
# A suggestion within this fraction of an input's range from a bound "touches" it.
_BOUND_TOL = 0.01
# Share of a batch touching the same bound, in this batch and the previous one,
# that counts as "pressing" against it.
_PRESSURE_SHARE = 0.3
# Score draws per evaluation of the composite GP's posterior expected loss (memory: draws x conditions x wavelengths).
DRAW_CHUNK = 256
# The recommendation is an argmin among conditions whose expected losses can differ by less than the
# Monte Carlo error of 256 draws; 4,096 draws cut that error by four.
RECOMMENDATION_DRAWS = 4096


@dataclasses.dataclass
class Suggestion:
    """What ``suggest`` returns: points plus the model's view of them.

    Attributes:
        x: points, physical units, shape ``(q, d)``.
        method: what produced them (``lhs``, ``random`` or ``gp``).
        extra: extra columns by name (e.g. ``predicted_mean``), each shape ``(q,)``.
        notes: messages for the user (initial design, bound pressure, widened bounds).
        ids: pool campaigns: the candidate id of each row.
    """

    x: np.ndarray
    method: str
    extra: dict[str, np.ndarray]
    notes: list[str]
    ids: list[str] | None = None


def suggestion_csv(config: Config, sug: Suggestion) -> str:
    """The batch as CSV: (pool campaigns: ``id``,) input columns by name, then the extra columns."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow((["id"] if sug.ids is not None else []) + config.input_names + list(sug.extra))
    for i, row in enumerate(sug.x):
        cells = [repr(float(v)) for v in row] + [repr(float(col[i])) for col in sug.extra.values()]
        w.writerow(([sug.ids[i]] if sug.ids is not None else []) + cells)
    return buf.getvalue()


def _base_seed(campaign: Campaign, seed: int | None) -> int:
    """``seed`` if given (a command's override), else the campaign's own."""
    return campaign.config.seed if seed is None else seed


def next_suggestion_seed(campaign: Campaign, seed: int | None = None) -> int:
    """The random seed of the campaign's next ``suggest`` (``seed`` overrides the campaign's own).

    It depends on the seed and on the number of batches suggested so far.
    """
    n_suggested = len(campaign.suggestion_files())
    return int(np.random.SeedSequence([_base_seed(campaign, seed), n_suggested]).generate_state(1)[0])


def network_seed(campaign: Campaign, seed: int | None = None) -> int:
    """Training seed of the all-data spectrum ensemble the next ``suggest`` uses (also for plots and attributions).

    ``seed`` overrides the campaign's, as in :func:`suggest`.
    """
    from jaxopt_mat.two_step import ensemble_seed

    _, _, batches = campaign.read_table()
    return ensemble_seed(_base_seed(campaign, seed), int(batches.max()) if batches.size else 0)


def check_batch_size(batch: int) -> None:
    """A :class:`DataError` unless ``1 <= batch <= MAX_BATCH`` (what ``suggest`` can return in one call)."""
    if not 1 <= batch <= MAX_BATCH:
        raise DataError(f"--batch must be between 1 and {MAX_BATCH}, got {batch}")


def suggest(
    campaign: Campaign,
    batch: int,
    *,
    method: str | None = None,
    seed: int | None = None,
    extend_bounds: bool = False,
    kappa: float = 0.0,
    progress: Callable[[str], None] = lambda msg: None,
    program_cache=None,
    ensemble_cache=None,
) -> Suggestion:
    """The next ``batch`` conditions for a campaign.

    The random stream depends on the seed (default: the campaign's) and on the
    number of batches suggested so far, so a repeated call on the same state
    gives the same batch, and successive batches differ. ``program_cache``
    (a :class:`~jaxopt_mat.program_cache.ProgramCache`) keeps compiled programs
    between processes; ``ensemble_cache`` (an
    :class:`~jaxopt_mat.ensemble_cache.EnsembleCache`) keeps trained spectrum
    ensembles, e.g. those ``status`` trained for this very suggestion; with
    or without one, the call trains or loads each ensemble it needs once.
    """
    from jaxopt_mat.ensemble_cache import EnsembleMemo

    check_batch_size(batch)
    if not isinstance(ensemble_cache, EnsembleMemo):  # the batch and the stop rules may ask for the same ensemble
        ensemble_cache = EnsembleMemo(ensemble_cache)
    config = campaign.config
    spectrum = config.objective.is_spectrum
    allowed = POOL_METHODS if config.is_pool else SPECTRUM_METHODS if spectrum else METHODS
    method = method or ("auto" if spectrum else "gp")
    if method not in allowed:
        kind = f"{'pool ' if config.is_pool else ''}{config.objective.kind}"
        raise DataError(f"unknown method {method!r} for a {kind} campaign (choose from {', '.join(allowed)})")
    rng_seed = next_suggestion_seed(campaign, seed)
    notes: list[str] = []
    if config.is_pool:
        result = _suggest_pool(campaign, batch, method, rng_seed, progress, notes, program_cache)
        _stop_note(campaign, result, method, program_cache, ensemble_cache)
        return result
    space = campaign.space
    x_obs, y_obs, _ = campaign.read_observations()
    cond = combine_replicates(x_obs, y_obs)
    if config.objective.is_pareto and method == "gp" and cond.x.shape[0] >= config.initial_design:
        result = _suggest_pareto_continuous(campaign, cond, batch, rng_seed, progress, notes, program_cache)
        _stop_note(campaign, result, method, program_cache, ensemble_cache)
        return _with_bound_notes(campaign, result, batch, method, seed, extend_bounds, kappa, progress, program_cache,
                                 ensemble_cache)

    model_based = method in ("gp", "cgp", "dnn", "mixed", "auto")
    if method == "lhs" or (model_based and cond.x.shape[0] < config.initial_design):
        if model_based:
            notes.append(
                f"{cond.x.shape[0]} of {config.initial_design} initial conditions measured: "
                "returning a Latin-hypercube design"
            )
        result = Suggestion(latin_hypercube(space, batch, seed=rng_seed), "lhs", {}, notes)
    elif method == "random":
        result = Suggestion(random_design(space, batch, seed=rng_seed), "random", {}, notes)
    elif method == "gp":
        result = _suggest_gp(campaign, cond, batch, rng_seed, progress, notes, program_cache)
    elif method == "cgp":
        result = _suggest_spectrum_gp(campaign, batch, rng_seed, progress, notes, program_cache)
    else:
        result = _suggest_spectrum(campaign, batch, method, seed, rng_seed, kappa, progress, notes,
                                   program_cache, ensemble_cache)

    _stop_note(campaign, result, method, program_cache, ensemble_cache, seed)
    return _with_bound_notes(campaign, result, batch, method, seed, extend_bounds, kappa, progress, program_cache,
                             ensemble_cache)


def _stop_note(campaign, result, method, program_cache, ensemble_cache, seed=None) -> None:
    """Warn in the suggestion's notes when the stop rules say the campaign should stop.

    A spectrum network the rules ask for is judged from the ensembles of this
    call's seed, so those ``auto`` has just trained come from ``ensemble_cache``.
    """
    if method in ("lhs", "random", "spread") or result.method in ("lhs", "spread"):
        return
    x, y, _ = campaign.read_observations()
    if combine_replicates(x, y).x.shape[0] < 3:
        return
    from jaxopt_mat.stopping import evaluate

    verdict = evaluate(campaign, campaign.config.stopping, lazy=True, program_cache=program_cache,
                       ensemble_cache=ensemble_cache, seed=_base_seed(campaign, seed))
    if verdict["should_stop"]:
        met = [name for name, r in verdict["stop_rules"].items() if r["met"]]
        result.notes.append(f"the campaign should stop: stop rules met: {', '.join(met)} (see status)")


def _with_bound_notes(campaign, result, batch, method, seed, extend_bounds, kappa, progress, program_cache,
                      ensemble_cache):
    """Report (and with ``extend_bounds`` widen) extendable bounds the batch keeps pressing against."""
    config = campaign.config
    pressing = bound_pressure(campaign, result.x)
    for name, side, share_now, share_before in pressing:
        inp = next(i for i in config.inputs if i.name == name)
        bound = inp.low if side == "low" else inp.high
        new_config = widen_bound(config, name, side)
        new_bound = next(i for i in new_config.inputs if i.name == name)
        new_value = new_bound.low if side == "low" else new_bound.high
        what = (f"{name}: suggestions keep pressing against its {'lower' if side == 'low' else 'upper'} "
                f"bound {bound:g} ({share_now:.0%} of this batch, {share_before:.0%} of the previous one)")
        if extend_bounds:
            campaign.save_config(new_config)
            config = new_config
            result.notes.append(f"{what}; widened it by x{inp.extend_factor:g} to {new_value:g}")
        else:
            result.notes.append(f"{what}; rerun with --extend-bounds to widen it by x{inp.extend_factor:g} to {new_value:g}")
    if extend_bounds and pressing:
        # Suggest again in the widened space (without widening twice).
        again = suggest(campaign, batch, method=method, seed=seed, extend_bounds=False, kappa=kappa,
                        progress=progress, program_cache=program_cache, ensemble_cache=ensemble_cache)
        again.notes = result.notes + [n for n in again.notes if n not in result.notes]
        return again
    return result


def fit_objectives(x, y, *, key, low, high, inits=None, program_cache=None) -> tuple:
    """One GP per column of ``y`` ``(n, m)`` (independent objectives), as a tuple of models.

    ``inits``: optional warm start per objective (``fit_gp``'s ``init``; ``None`` entries fit cold).
    """
    keys = jax.random.split(key, y.shape[1])
    inits = inits or (None,) * y.shape[1]
    return tuple(fit_gp(x, y[:, j], key=keys[j], low=low, high=high, init=inits[j], program_cache=program_cache)
                 for j in range(y.shape[1]))


# state.json keeps each suggest-time GP's hyper-parameters for this many condition counts.
_WARM_STARTS_KEPT = 4


def warm_start(campaign: Campaign, name: str, n: int, d: int):
    """Hyper-parameters of the GP ``name`` fitted by an earlier ``suggest`` on fewer than ``n`` conditions.

    The latest such fit is returned (``None`` when there is none), so a fit
    on ``n`` conditions never starts from itself: repeating ``suggest`` on the
    same data gives the same model and batch.
    """
    saved = campaign.read_state().get("gp_hyperparameters", {}).get(name, {})
    if not isinstance(saved, dict):
        return None
    earlier = [int(k) for k, v in saved.items()  # anything malformed (a hand edit) is ignored, not fatal
               if k.isdigit() and int(k) < n and isinstance(v, list) and len(v) == d + 3
               and all(isinstance(t, (int, float)) and np.isfinite(t) for t in v)]
    return np.asarray(saved[str(max(earlier))], dtype=np.float64) if earlier else None


def remember_fits(campaign: Campaign, n: int, models: dict) -> None:
    """Record the hyper-parameters of GPs fitted on ``n`` conditions (``{name: model}``) for later warm starts."""
    saved = campaign.read_state().get("gp_hyperparameters", {})
    saved = saved if isinstance(saved, dict) else {}
    for name, model in models.items():
        old = saved.get(name, {})
        old = {k: v for k, v in old.items() if k.isdigit()} if isinstance(old, dict) else {}
        entries = {**old, str(n): [float(v) for v in np.asarray(model.hyperparameters)]}
        saved[name] = {k: entries[k] for k in sorted(entries, key=int)[-_WARM_STARTS_KEPT:]}
    campaign.update_state(gp_hyperparameters=saved)


def _stack(posts, signs):
    mean = jax.numpy.stack([p.mean for p in posts], axis=-1) * signs
    return mean, jax.numpy.stack([p.std for p in posts], axis=-1)


def predict_objectives(x, models, signs):
    """Means and standard deviations ``(n, m)`` of independent GPs, in maximisation form (times ``signs``)."""
    return _stack([m.predict(x) for m in models], signs)


def predict_objectives_believer(x, models, signs, picked, picked_mask):
    """:func:`predict_objectives` after believing the ``picked`` points observed (see ``GPModel.predict_believer``)."""
    return _stack([m.predict_believer(x, picked, picked_mask) for m in models], signs)


def _pareto_extra(config: Config, mean_max, std, ehvi, ehvi_name) -> dict[str, np.ndarray]:
    """Suggestion columns: each objective's predicted mean (own sign) and std, then the acquisition."""
    extra = {}
    signs = config.objective.signs
    for j, name in enumerate(config.objective.measured_names):
        extra[f"predicted_{name}"] = np.asarray(mean_max)[:, j] * signs[j]
        extra[f"predicted_{name}_std"] = np.asarray(std)[:, j]
    extra[ehvi_name] = np.asarray(ehvi)
    return extra


def _suggest_pool(campaign, batch, method, rng_seed, progress, notes, program_cache=None) -> Suggestion:
    """A batch of unmeasured rows of the candidate table."""
    from jaxopt_mat.acquisition.ehvi import greedy_pool_batch
    from jaxopt_mat.chunked import map_rows
    from jaxopt_mat.pool import farthest_point_design, penalized_pool_batch

    config = campaign.config
    pool = campaign.pool
    measured = campaign.measured_mask()
    free = int(np.sum(~measured))
    if free < batch:
        raise DataError(f"only {free} candidates of {len(pool.ids)} are left unmeasured; ask for at most {free}")
    x_obs, y_obs, _ = campaign.read_observations()
    cond = combine_replicates(x_obs, y_obs)
    extra: dict[str, np.ndarray] = {}
    if method == "random":
        idx = np.random.default_rng(rng_seed).choice(np.flatnonzero(~measured), batch, replace=False)
        used = "random"
    elif method == "spread" or cond.x.shape[0] < config.initial_design:
        if method == "gp":
            notes.append(f"{cond.x.shape[0]} of {config.initial_design} initial candidates measured: "
                         "returning a space-filling selection from the pool")
        idx = farthest_point_design(pool.features, batch, seed=rng_seed, exclude=measured)
        used = "spread"
    else:
        key = jax.random.key(rng_seed)
        feats = jax.numpy.asarray(pool.features)
        if config.objective.is_pareto:
            signs = config.objective.signs
            progress(f"fitting {len(signs)} GPs to {cond.x.shape[0]} candidates")
            models = _fit_objectives_warm(campaign, cond, key=key, low=pool.low, high=pool.high,
                                          program_cache=program_cache)
            front = cond.y * signs
            ref = campaign.reference_point(front)
            progress(f"scoring EHVI over {len(pool.ids)} candidates")
            mean, std = map_rows(predict_objectives, (models, jax.numpy.asarray(signs)), feats)
            idx, ehvi = greedy_pool_batch(mean, std, front, ref, batch, exclude=measured)
            idx = np.asarray(idx)
            extra = _pareto_extra(config, np.asarray(mean)[idx], np.asarray(std)[idx], ehvi, "ehvi")
        else:
            maximize = config.objective.maximize
            progress(f"fitting GP to {cond.x.shape[0]} candidates")
            model = _fit_warm(campaign, config.objective.name, cond.x, cond.y, key=key, low=pool.low, high=pool.high,
                              program_cache=program_cache)
            remember_fits(campaign, cond.x.shape[0], {config.objective.name: model})
            best = float(np.max(cond.y) if maximize else np.min(cond.y))
            progress(f"scoring log-EI over {len(pool.ids)} candidates")
            pb = penalized_pool_batch(model, feats, batch, best=best, maximize=maximize, exclude=measured)
            idx = np.asarray(pb.index)
            extra = {"predicted_mean": np.asarray(pb.mean), "predicted_std": np.asarray(pb.std),
                     "log_ei": np.asarray(pb.log_acquisition)}
        used = "gp"
    idx = np.asarray(idx)
    if measured[idx].any() or len(set(idx.tolist())) != len(idx):  # the selection rules guarantee this
        raise AssertionError("internal error: a measured or repeated candidate was selected")
    return Suggestion(pool.features[idx], used, extra, notes, ids=[pool.ids[i] for i in idx])


def _fit_warm(campaign, name, x, y, *, key, low, high, program_cache=None):
    """:func:`fit_gp` started from the hyper-parameters of ``name``'s latest earlier fit (see :func:`warm_start`)."""
    return fit_gp(x, y, key=key, low=low, high=high, init=warm_start(campaign, name, *x.shape),
                  program_cache=program_cache)


def _fit_objectives_warm(campaign, cond, *, key, low, high, program_cache=None) -> tuple:
    """:func:`fit_objectives` for a Pareto campaign, warm-started and remembered (see :func:`warm_start`)."""
    names = campaign.config.objective.measured_names
    n, d = cond.x.shape
    models = fit_objectives(cond.x, cond.y, key=key, low=low, high=high,
                            inits=tuple(warm_start(campaign, name, n, d) for name in names),
                            program_cache=program_cache)
    remember_fits(campaign, n, dict(zip(names, models)))
    return models


def _suggest_pareto_continuous(campaign, cond, batch, rng_seed, progress, notes, program_cache=None) -> Suggestion:
    """Sequential greedy EHVI with Kriging-believer fantasies, each point by the gradient maximizer."""
    from jaxopt_mat.acquisition.ehvi import ehvi_batch

    config = campaign.config
    space = campaign.space
    signs = config.objective.signs
    key = jax.random.key(rng_seed)
    k_fit, k_acq = jax.random.split(key)
    progress(f"fitting {len(signs)} GPs to {cond.x.shape[0]} conditions")
    models = _fit_objectives_warm(campaign, cond, key=k_fit, low=space.low, high=space.high,
                                  program_cache=program_cache)
    front = cond.y * signs
    ref = campaign.reference_point(front)
    progress(f"optimizing EHVI for a batch of {batch}")
    from jaxopt_mat.pareto import non_dominated_mask

    init = cond.x[np.asarray(non_dominated_mask(front))]
    x, log_e, mean, std = ehvi_batch(predict_objectives_believer, (models, jax.numpy.asarray(signs)), space, front, ref,
                                     batch,
                                     key=k_acq, init=init)
    x = np.asarray(x)
    if not np.all(np.asarray(space.is_feasible(x, atol=0.0))):  # the repair guarantees this
        raise AssertionError("internal error: an infeasible suggestion escaped the projection")
    return Suggestion(x, "gp", _pareto_extra(config, mean, std, np.asarray(log_e), "log_ehvi"), notes)


# Name of the spectrum campaigns' peak-intensity GP among the remembered fits.
_PEAK_GP = "log_peak"
# Spectrum losses: the `gp` method models log(min(loss, cap) + LOSS_FLOOR), cap = the median loss (see gp_target),
# of the peak-smoothed losses (see peak_smoothed_losses).
LOSS_FLOOR = 1e-4


def gp_target(config: Config, y: np.ndarray) -> np.ndarray:
    """What ``suggest --method gp`` models for the objective values ``y`` (a monotone transform: same optimum).

    Scalar objectives: ``y`` itself. Spectrum losses span orders of magnitude
    near the optimum and jump to 1 where the peak leaves the intensity window;
    a GP fitted to that jump undershoots beside it and sends log-EI into
    predicted holes. So the GP models ``log(min(loss, median loss) + 1e-4)``:
    losses worse than the median are flattened to it (the jump disappears), and
    the log spreads out the differences between good recipes.
    """
    y = np.asarray(y, dtype=np.float64)
    if not config.objective.is_spectrum or y.size == 0:
        return y
    cap = float(np.median(y))
    return np.log(np.minimum(y, cap) + LOSS_FLOOR)


def log_peak(campaign: Campaign, table=None) -> np.ndarray:
    """Per measured row: log of the spectrum's maximum, the variable of the loss's intensity window.

    ``table``: ``campaign.read_table()`` when the caller has read it already.
    """
    _, spectra, _ = campaign.read_table() if table is None else table
    return np.log(np.maximum(spectra.max(axis=1), 1e-12))


def peak_smoothed_losses(campaign: Campaign, cond, peak_model, table=None) -> np.ndarray:
    """Per condition: the loss with the measured peak replaced by the peak GP's posterior mean.

    The loss is ``1 - cos * delta(peak)``. Near the edges of the intensity
    window the few-percent intensity noise of a measurement moves ``delta``
    by far more than the shape term varies between good recipes (replicate
    losses scatter by about 0.02 there, against about 0.0005 for the shape
    term alone). The peak is a smooth function of the recipe that its GP
    estimates from all conditions at once, so ``gp`` models
    ``1 - median(cos) * delta(exp(posterior mean of log peak))``: the same
    loss, with the intensity noise averaged out. ``table``: as in :func:`log_peak`.
    """
    from jaxopt_mat.objectives import cosine_similarity, intensity_factor, minmax

    x, spectra, _ = campaign.read_table() if table is None else table
    target = campaign.target(campaign.wavelengths())
    cos = combine_replicates(x, np.asarray(cosine_similarity(minmax(spectra), minmax(target)))).y
    peak = np.exp(np.asarray(peak_model.predict(cond.x).mean))
    return 1.0 - cos * np.asarray(intensity_factor(peak, campaign.config.objective.window))


def _suggest_gp(campaign, cond, batch, rng_seed, progress, notes, program_cache) -> Suggestion:
    config = campaign.config
    space = campaign.space
    maximize = config.objective.maximize
    spectrum = config.objective.is_spectrum
    key = jax.random.key(rng_seed)
    k_fit, k_acq = jax.random.split(key)
    fits = {}
    constraint = None
    y = cond.y
    if spectrum:  # keep the peak below the top of the intensity window: its own GP, log P(log peak <= log top)
        progress("fitting GP to the peak intensity")
        table = campaign.read_table()
        r_cond = combine_replicates(table[0], log_peak(campaign, table)).y
        fits[_PEAK_GP] = _fit_warm(campaign, _PEAK_GP, cond.x, r_cond, key=jax.random.fold_in(k_fit, 1),
                                   low=space.low, high=space.high, program_cache=program_cache)
        constraint = (fits[_PEAK_GP], float(np.log(config.objective.window[1])))
        y = peak_smoothed_losses(campaign, cond, fits[_PEAK_GP], table)
    progress(f"fitting GP to {cond.x.shape[0]} conditions")
    y_model = gp_target(config, y)
    model = _fit_warm(campaign, config.objective.name, cond.x, y_model, key=k_fit, low=space.low, high=space.high,
                      program_cache=program_cache)
    fits[config.objective.name] = model
    best = float(np.max(y_model) if maximize else np.min(y_model))
    order = np.argsort(-y if maximize else y)
    top = cond.x[order[:5]]
    rng = np.random.default_rng(rng_seed)
    jitter = rng.normal(scale=0.05, size=(2,) + top.shape) * (space.high - space.low)
    init = np.concatenate([top, (top[None] + jitter).reshape(-1, space.dim)])
    init = np.clip(init, space.low, space.high)
    remember_fits(campaign, cond.x.shape[0], fits)
    progress(f"optimizing log-EI for a batch of {batch}")
    result = local_penalization_batch(
        model, space, batch, key=k_acq, best=best, maximize=maximize, init=init, constraint=constraint,
        program_cache=program_cache,
    )
    x = np.asarray(result.x)
    if not np.all(np.asarray(space.is_feasible(x, atol=0.0))):  # the repair guarantees this
        raise AssertionError("internal error: an infeasible suggestion escaped the projection")
    mean, std = np.asarray(result.mean), np.asarray(result.std)
    if spectrum:  # back to loss units: median and delta-method spread of exp(model) - floor
        mean, std = np.exp(mean) - LOSS_FLOOR, np.exp(mean) * std
    extra = {
        "predicted_mean": mean,
        "predicted_std": std,
        "log_ei": np.asarray(result.log_acquisition),
    }
    return Suggestion(x, "gp", extra, notes)


def spectrum_gp_view(campaign: Campaign, *, key, draws: int = DRAW_CHUNK, program_cache=None):
    """The composite spectrum GP of a campaign and each condition's posterior expected loss.

    Returns ``(model, conditions, expected_loss)``: the
    :class:`~jaxopt_mat.surrogates.spectrum_gp.SpectrumGP` fitted to the median
    spectrum of every measured condition, those conditions, and the posterior
    expected exact loss of each (Monte Carlo over ``draws`` score draws, a
    multiple of 256, evaluated 256 at a time). The expected loss weighs each
    measurement against all the others, so a single lucky reading at the
    intensity window's edge does not make a condition look best.
    """
    from jaxopt_mat.acquisition.spectrum import posterior_expected_loss
    from jaxopt_mat.surrogates.spectrum_gp import fit_spectrum_gp

    if draws <= 0 or draws % DRAW_CHUNK:
        raise ValueError(f"draws must be a positive multiple of {DRAW_CHUNK}, got {draws}")
    space = campaign.space
    x, spectra, _ = campaign.read_table()
    med = combine_replicates(x, spectra)
    k_fit, k_z = jax.random.split(key)
    model = fit_spectrum_gp(med.x, med.y, key=k_fit, low=space.low, high=space.high, program_cache=program_cache)
    z = jax.random.normal(k_z, (draws, model.n_components), dtype=model.mean.dtype)
    target = jax.numpy.asarray(campaign.target(campaign.wavelengths()))
    window = jax.numpy.asarray(campaign.config.objective.window, dtype=model.mean.dtype)
    # Padded to the GPs' padded training size, so the compiled program serves every round of a padding bucket.
    n, n_pad = med.x.shape[0], model.models.x_unit.shape[1]
    x_pad = jax.numpy.asarray(np.concatenate([med.x, np.repeat(med.x[:1], n_pad - n, axis=0)]))
    chunks = [posterior_expected_loss(model, x_pad, target, z[i:i + DRAW_CHUNK], window)
              for i in range(0, draws, DRAW_CHUNK)]  # equal chunks: their mean is the mean over all draws
    return model, med, np.asarray(sum(chunks) / len(chunks))[:n]


def _suggest_spectrum_gp(campaign, batch, rng_seed, progress, notes, program_cache) -> Suggestion:
    """``cgp``: expected improvement of the loss under GPs of the spectrum's principal components."""
    from jaxopt_mat.acquisition.spectrum import spectrum_gp_batch

    key = jax.random.key(rng_seed)
    k_fit, k_acq = jax.random.split(key)
    progress("fitting GPs to the principal components of the measured spectra")
    model, _, expected = spectrum_gp_view(campaign, key=k_fit, program_cache=program_cache)
    progress(f"optimizing the expected improvement of the loss for a batch of {batch}")
    target = campaign.target(campaign.wavelengths())
    sb = spectrum_gp_batch(model, campaign.space, target, batch, key=k_acq, best=float(np.min(expected)),
                           window=campaign.config.objective.window, program_cache=program_cache)
    x = np.asarray(sb.x)
    if not np.all(np.asarray(campaign.space.is_feasible(x, atol=0.0))):  # the repair guarantees this
        raise AssertionError("internal error: an infeasible suggestion escaped the projection")
    extra = {"predicted_loss": np.asarray(sb.loss_mean), "predicted_loss_std": np.asarray(sb.loss_std),
             "log_ei": np.asarray(sb.log_acquisition)}
    return Suggestion(x, "cgp", extra, notes)


def _suggest_spectrum(campaign, batch, method, seed, rng_seed, kappa, progress, notes, program_cache,
                      ensemble_cache) -> Suggestion:
    """``dnn``, ``mixed`` and ``auto`` for spectrum campaigns (``seed``: :func:`suggest`'s override, or None).

    ``mixed`` takes the first half of the batch (rounded up) from the network,
    kept away from the rest, which comes from the composite spectrum GP
    (``cgp``); ``auto`` suggests with ``cgp`` until the network is ready and
    then as ``mixed``.
    """
    from jaxopt_mat.acquisition.spectrum import spectrum_batch
    from jaxopt_mat.two_step import network_readiness, train_on

    objective = campaign.config.objective
    ensemble = None
    label = method
    if method == "auto":
        progress("training the spectrum network to judge its accuracy and stability")
        ready = network_readiness(campaign, seed=_base_seed(campaign, seed), record=True,
                                  cache=ensemble_cache)
        notes.append(f"auto: {ready.step} step ({ready.reason})")
        if ready.step == "gp":  # the GP step: the composite spectrum GP (``cgp``)
            result = _suggest_spectrum_gp(campaign, batch, rng_seed, progress, notes, program_cache)
            result.method = "auto:cgp"
            return result
        ensemble, method, label = ready.ensemble, "mixed", "auto:mixed"
    n_dnn = batch if method == "dnn" else (batch + 1) // 2
    cgp = None  # the composite GP's half of a mixed batch, chosen first so that the network's half keeps away from it
    if n_dnn < batch:
        cgp = _suggest_spectrum_gp(campaign, batch - n_dnn, rng_seed, progress, notes, program_cache)
        notes.append(f"mixed: {n_dnn} recipes from the spectrum network, then {batch - n_dnn} from the composite "
                     "spectrum GP")
    if ensemble is None:
        progress("training the spectrum network")
        ensemble = train_on(campaign, None, seed=network_seed(campaign, seed), cache=ensemble_cache)
    progress(f"minimising the predicted loss for {n_dnn} recipes")
    target = campaign.target(campaign.wavelengths())
    sb = spectrum_batch(ensemble, campaign.space, target, n_dnn, key=jax.random.key(rng_seed), window=objective.window,
                        smoothness=objective.smoothness, kappa=kappa, pending=None if cgp is None else cgp.x,
                        program_cache=program_cache)
    x = np.asarray(sb.x)
    extra = {"predicted_loss": np.asarray(sb.loss_mean), "predicted_loss_std": np.asarray(sb.loss_std)}
    if cgp is not None:  # network rows first; the composite GP's keep their log-EI (the acquisition stop rule reads it)
        x = np.concatenate([x, cgp.x])
        extra = {k: np.concatenate([v, cgp.extra[k]]) for k, v in extra.items()}
        extra["log_ei"] = np.concatenate([np.full(n_dnn, np.nan), cgp.extra["log_ei"]])
    return Suggestion(x, label, extra, notes)


def bound_pressure(campaign: Campaign, x_new: np.ndarray) -> list[tuple[str, str, float, float]]:
    """Extendable inputs whose suggestions press against a bound in this batch and the previous one.

    Returns ``(name, side, share in this batch, share in the previous batch)`` per pressed bound.
    """
    files = campaign.suggestion_files()
    if not files:
        return []
    previous = campaign.read_suggestion(files[-1])
    out = []
    for j, inp in enumerate(campaign.config.inputs):
        if not inp.extendable:
            continue
        width = inp.high - inp.low
        for side, bound in (("low", inp.low), ("high", inp.high)):
            now = float(np.mean(np.abs(x_new[:, j] - bound) <= _BOUND_TOL * width))
            before = float(np.mean(np.abs(previous[:, j] - bound) <= _BOUND_TOL * width)) if previous.size else 0.0
            if now >= _PRESSURE_SHARE and before >= _PRESSURE_SHARE:
                out.append((inp.name, side, now, before))
    return out


def widen_bound(config: Config, name: str, side: str) -> Config:
    """A copy of ``config`` with one bound of ``name`` moved out so the range grows by its factor."""
    inputs = []
    for inp in config.inputs:
        if inp.name == name:
            grow = (inp.extend_factor - 1.0) * (inp.high - inp.low)
            if side == "low":
                inp = dataclasses.replace(inp, low=inp.low - grow)
            else:
                inp = dataclasses.replace(inp, high=inp.high + grow)
        inputs.append(inp)
    return dataclasses.replace(config, inputs=tuple(inputs))


def status(campaign: Campaign, *, with_model: bool = True, key_seed: int = 0, program_cache=None,
           ensemble_cache=None) -> dict:
    """Campaign summary: counts, best condition (median of replicates), model fit quality.

    For spectrum campaigns with ``with_model``, also the two-step state (``step``):
    which surrogate ``suggest --method auto`` would use, and why: the same
    decision, from the same training seeds, as the next ``suggest`` (so with an
    ``ensemble_cache`` the next ``suggest`` reuses the ensembles trained here). For Pareto
    campaigns, ``pareto`` holds the reference point, the hypervolume (now and
    after each batch) and the Pareto set; ``model`` then maps each objective to
    its GP's fit quality. Pool campaigns add ``pool`` (candidates, unmeasured).
    Spectrum campaigns with at least 3 conditions add ``recommended``
    (:func:`recommended_condition`).
    """
    config = campaign.config
    obj = config.objective
    x_obs, y_obs, batches = campaign.read_observations()
    cond = combine_replicates(x_obs, y_obs)
    out: dict = {
        "name": config.name,
        "objective": ({"name": obj.name, "direction": obj.direction} if not obj.is_pareto else
                      {"name": obj.name, "direction": obj.direction,
                       "objectives": [{"name": n, "direction": d} for n, d in obj.objectives]}),
        "n_observations": int(x_obs.shape[0]),
        "n_conditions": int(cond.x.shape[0]),
        "n_batches": int(batches.max()) if batches.size else 0,
        "n_suggestions": len(campaign.suggestion_files()),
        "best": None,
        "model": None,
    }
    ids = None
    if config.is_pool:
        measured = campaign.measured_mask()
        out["pool"] = {"candidates": len(campaign.pool.ids), "unmeasured": int(np.sum(~measured))}
        # The id of each condition: that of its first row (candidates with equal features share a condition).
        row_ids = campaign.read_ids()
        first = {}
        for r, c in enumerate(cond.index.tolist()):
            first.setdefault(c, row_ids[r])
        ids = [first[c] for c in range(cond.x.shape[0])]

    def describe(i):
        row = {"id": ids[i]} if ids is not None else {n: float(v) for n, v in zip(config.input_names, cond.x[i])}
        return row

    if obj.is_pareto:
        out["pareto"] = pareto_summary(campaign, cond, batches, x_obs, y_obs, describe) if cond.x.shape[0] else None
    elif cond.x.shape[0]:
        i = int(np.argmax(cond.y) if obj.maximize else np.argmin(cond.y))
        best = describe(i)
        best["value"] = float(cond.y[i])
        best["replicates"] = int(cond.counts[i])
        out["best"] = best
    if with_model and cond.x.shape[0] >= 3:
        space = campaign.space
        key = jax.random.key(key_seed)
        if obj.is_pareto:
            models = fit_objectives(cond.x, cond.y, key=key, low=space.low, high=space.high,
                                    program_cache=program_cache)
            out["model"] = {n: _quality(config, m, cond.y[:, j]) for j, (n, m) in
                            enumerate(zip(obj.measured_names, models))}
        else:
            model = fit_gp(cond.x, cond.y, key=key, low=space.low, high=space.high, program_cache=program_cache)
            out["model"] = _quality(config, model, cond.y)
    ready = None
    if with_model and obj.is_spectrum:
        from jaxopt_mat.two_step import network_readiness

        # Measured in the network step too: the stop rules read the same numbers.
        ready = (network_readiness(campaign, seed=config.seed, cache=ensemble_cache, assess=True)
                 if cond.x.shape[0] else None)
        out["step"] = ready.as_dict() if ready is not None else None
    if with_model and cond.x.shape[0] >= 3:
        from jaxopt_mat.stopping import evaluate

        out.update(evaluate(campaign, config.stopping, program_cache=program_cache, ensemble_cache=ensemble_cache,
                            readiness=ready))
    if with_model and obj.is_spectrum and cond.x.shape[0] >= 3:
        out["recommended"] = recommended_condition(campaign, cond, describe, key=jax.random.key(key_seed),
                                                   program_cache=program_cache)
    return out


def recommended_condition(campaign: Campaign, cond, describe, *, key, program_cache=None) -> dict:
    """The measured condition with the lowest posterior expected loss (spectrum campaigns).

    The lowest measured loss is a noisy choice: a single reading whose peak
    noise lands inside the intensity window makes a recipe at the window's
    edge look best. The composite spectrum GP (:func:`spectrum_gp_view`)
    weighs each measurement against all the others (``bench_closed_loop.py``
    compares the two rules: README, benchmarks/RESULTS.md). The expected loss
    is averaged over :data:`RECOMMENDATION_DRAWS` draws: near-equal conditions
    are told apart by the model, not by the Monte Carlo error.

    Returns:
        the condition's inputs, ``expected_loss``,
        ``measured`` (median of its replicates' losses) and ``replicates``.
    """
    _, med, expected = spectrum_gp_view(campaign, key=key, draws=RECOMMENDATION_DRAWS, program_cache=program_cache)
    if med.x.shape != cond.x.shape or not np.array_equal(med.x, cond.x):
        raise AssertionError("internal error: spectra and losses grouped into different conditions")
    i = int(np.argmin(expected))
    row = describe(i)
    row.update(expected_loss=float(expected[i]), measured=float(cond.y[i]), replicates=int(cond.counts[i]))
    return row


def _quality(config: Config, model, y) -> dict:
    quality = fit_quality(model, y)
    quality["lengthscales"] = dict(zip(config.input_names, quality["lengthscales"]))
    return quality


def hypervolume_history(values_max: np.ndarray, batches: np.ndarray, ref: np.ndarray) -> list[float]:
    """Hypervolume of the medians of all conditions measured up to each batch (maximisation form)."""
    from jaxopt_mat.pareto import hypervolume

    out = []
    for b in sorted(set(batches.tolist())):
        keep = batches <= b
        out.append(float(hypervolume(jax.numpy.asarray(values_max[keep]), jax.numpy.asarray(ref))))
    return out


def pareto_summary(campaign: Campaign, cond, batches, x_obs, y_obs, describe) -> dict:
    """Reference point, hypervolume (now and per batch) and the Pareto set, in the objectives' own units."""
    from jaxopt_mat.pareto import non_dominated_mask

    obj = campaign.config.objective
    signs = obj.signs
    front = cond.y * signs
    ref = campaign.reference_point(front)
    # Per-batch history over replicate medians of the data known at that point.
    per_row = combine_replicates(x_obs, y_obs)
    medians = per_row.y[per_row.index] * signs
    history = hypervolume_history(medians, batches, ref)
    mask = np.asarray(non_dominated_mask(front))
    rows = []
    for i in sorted(np.flatnonzero(mask), key=lambda i: -front[i, 0]):
        row = describe(int(i))
        row.update({n: float(v) for n, v in zip(obj.measured_names, cond.y[i])})
        row["replicates"] = int(cond.counts[i])
        rows.append(row)
    return {
        "reference": [float(v) for v in ref * signs],
        "reference_source": "campaign.toml" if obj.reference is not None else "derived from the data",
        "hypervolume": history[-1],
        "hypervolume_by_batch": history,
        "front": rows,
    }
