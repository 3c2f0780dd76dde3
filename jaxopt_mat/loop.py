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
SPECTRUM_METHODS = ("auto", "gp", "dnn", "mixed", "random", "lhs")
# A suggestion within this fraction of an input's range from a bound "touches" it.
_BOUND_TOL = 0.01
# Share of a batch touching the same bound, in this batch and the previous one,
# that counts as "pressing" against it.
_PRESSURE_SHARE = 0.3


@dataclasses.dataclass
class Suggestion:
    """What ``suggest`` returns: points plus the model's view of them.

    Attributes:
        x: points, physical units, shape ``(q, d)``.
        method: what produced them (``lhs``, ``random`` or ``gp``).
        extra: extra columns by name (e.g. ``predicted_mean``), each shape ``(q,)``.
        notes: messages for the user (initial design, bound pressure, widened bounds).
    """

    x: np.ndarray
    method: str
    extra: dict[str, np.ndarray]
    notes: list[str]


def suggestion_csv(config: Config, sug: Suggestion) -> str:
    """The batch as CSV: input columns by name, then the extra columns."""
    lines = [",".join(config.input_names + list(sug.extra))]
    for i, row in enumerate(sug.x):
        cells = [repr(float(v)) for v in row] + [repr(float(col[i])) for col in sug.extra.values()]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _derive_seed(seed: int, counter: int) -> int:
    return int(np.random.SeedSequence([seed, counter]).generate_state(1)[0])


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
) -> Suggestion:
    """The next ``batch`` conditions for a campaign.

    The random stream depends on the seed (default: the campaign's) and on the
    number of batches suggested so far, so a repeated call on the same state
    gives the same batch, and successive batches differ. ``program_cache``
    (a :class:`~jaxopt_mat.program_cache.ProgramCache`) keeps compiled programs
    between processes.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise DataError(f"--batch must be between 1 and {MAX_BATCH}, got {batch}")
    config = campaign.config
    spectrum = config.objective.is_spectrum
    allowed = SPECTRUM_METHODS if spectrum else METHODS
    method = method or ("auto" if spectrum else "gp")
    if method not in allowed:
        raise DataError(f"unknown method {method!r} for a {config.objective.kind} campaign (choose from {', '.join(allowed)})")
    space = campaign.space
    base = config.seed if seed is None else seed
    rng_seed = _derive_seed(base, len(campaign.suggestion_files()))
    notes: list[str] = []
    x_obs, y_obs, _ = campaign.read_observations()
    cond = combine_replicates(x_obs, y_obs)

    model_based = method in ("gp", "dnn", "mixed", "auto")
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
    else:
        result = _suggest_spectrum(campaign, cond, batch, method, rng_seed, kappa, progress, notes, program_cache)

    if cond.x.shape[0] >= 3 and method not in ("lhs", "random"):
        from jaxopt_mat.stopping import evaluate

        verdict = evaluate(campaign, config.stopping, lazy=True, program_cache=program_cache)
        if verdict["should_stop"]:
            met = [name for name, r in verdict["stop_rules"].items() if r["met"]]
            result.notes.append(f"the campaign should stop: stop rules met: {', '.join(met)} (see status)")
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
                        progress=progress, program_cache=program_cache)
        again.notes = result.notes + [n for n in again.notes if n not in result.notes]
        return again
    return result


def _suggest_gp(campaign, cond, batch, rng_seed, progress, notes, program_cache) -> Suggestion:
    config = campaign.config
    space = campaign.space
    maximize = config.objective.maximize
    key = jax.random.key(rng_seed)
    k_fit, k_acq = jax.random.split(key)
    progress(f"fitting GP to {cond.x.shape[0]} conditions")
    model = fit_gp(cond.x, cond.y, key=k_fit, low=space.low, high=space.high, program_cache=program_cache)
    best = float(np.max(cond.y) if maximize else np.min(cond.y))
    order = np.argsort(-cond.y if maximize else cond.y)
    top = cond.x[order[:5]]
    rng = np.random.default_rng(rng_seed)
    jitter = rng.normal(scale=0.05, size=(2,) + top.shape) * (space.high - space.low)
    init = np.concatenate([top, (top[None] + jitter).reshape(-1, space.dim)])
    init = np.clip(init, space.low, space.high)
    progress(f"optimizing log-EI for a batch of {batch}")
    result = local_penalization_batch(
        model, space, batch, key=k_acq, best=best, maximize=maximize, init=init, program_cache=program_cache
    )
    x = np.asarray(result.x)
    if not np.all(np.asarray(space.is_feasible(x, atol=0.0))):  # the repair guarantees this
        raise AssertionError("internal error: an infeasible suggestion escaped the projection")
    extra = {
        "predicted_mean": np.asarray(result.mean),
        "predicted_std": np.asarray(result.std),
        "log_ei": np.asarray(result.log_acquisition),
    }
    return Suggestion(x, "gp", extra, notes)


def _suggest_spectrum(campaign, cond, batch, method, rng_seed, kappa, progress, notes, program_cache) -> Suggestion:
    """``dnn``, ``mixed`` and ``auto`` for spectrum campaigns."""
    from jaxopt_mat.acquisition.spectrum import spectrum_batch
    from jaxopt_mat.two_step import network_readiness, train_on

    objective = campaign.config.objective
    ensemble = None
    if method == "auto":
        progress("training the spectrum network to judge its accuracy and stability")
        ready = network_readiness(campaign, seed=rng_seed % 2**31, record=True)
        notes.append(f"auto: {ready.step} step ({ready.reason})")
        if ready.step == "gp":
            result = _suggest_gp(campaign, cond, batch, rng_seed, progress, notes, program_cache)
            result.method = "auto:gp"
            return result
        ensemble, method = ready.ensemble, "dnn"
    n_dnn = batch if method == "dnn" else (batch + 1) // 2
    parts = []
    if n_dnn < batch:
        gp = _suggest_gp(campaign, cond, batch - n_dnn, rng_seed, progress, notes, program_cache)
        parts.append((gp.x, gp.extra["predicted_mean"], gp.extra["predicted_std"], "gp"))
        notes.append(f"mixed: {n_dnn} recipes from the spectrum network, then {batch - n_dnn} from the GP")
    if ensemble is None:
        progress("training the spectrum network")
        ensemble = train_on(campaign, None, seed=rng_seed % 2**31)
    progress(f"minimising the predicted loss for {n_dnn} recipes")
    target = campaign.target(campaign.wavelengths())
    sb = spectrum_batch(ensemble, campaign.space, target, n_dnn, key=jax.random.key(rng_seed), window=objective.window,
                        smoothness=objective.smoothness, kappa=kappa)
    parts.insert(0, (np.asarray(sb.x), np.asarray(sb.loss_mean), np.asarray(sb.loss_std), "dnn"))
    x = np.concatenate([p[0] for p in parts])
    extra = {
        "predicted_loss": np.concatenate([p[1] for p in parts]),
        "predicted_loss_std": np.concatenate([p[2] for p in parts]),
    }
    return Suggestion(x, method, extra, notes)


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


def status(campaign: Campaign, *, with_model: bool = True, key_seed: int = 0, program_cache=None) -> dict:
    """Campaign summary: counts, best condition (median of replicates), model fit quality.

    For spectrum campaigns with ``with_model``, also the two-step state (``step``):
    which surrogate ``suggest --method auto`` would use, and why.
    """
    config = campaign.config
    x_obs, y_obs, batches = campaign.read_observations()
    cond = combine_replicates(x_obs, y_obs)
    out: dict = {
        "name": config.name,
        "objective": {"name": config.objective.name, "direction": config.objective.direction},
        "n_observations": int(x_obs.shape[0]),
        "n_conditions": int(cond.x.shape[0]),
        "n_batches": int(batches.max()) if batches.size else 0,
        "n_suggestions": len(campaign.suggestion_files()),
        "best": None,
        "model": None,
    }
    if cond.x.shape[0]:
        i = int(np.argmax(cond.y) if config.objective.maximize else np.argmin(cond.y))
        best = {n: float(v) for n, v in zip(config.input_names, cond.x[i])}
        best["value"] = float(cond.y[i])
        best["replicates"] = int(cond.counts[i])
        out["best"] = best
    if with_model and cond.x.shape[0] >= 3:
        space = campaign.space
        model = fit_gp(cond.x, cond.y, key=jax.random.key(key_seed), low=space.low, high=space.high,
                       program_cache=program_cache)
        quality = fit_quality(model, cond.y)
        quality["lengthscales"] = dict(zip(config.input_names, quality["lengthscales"]))
        out["model"] = quality
    if with_model and cond.x.shape[0] >= 3:
        from jaxopt_mat.stopping import evaluate

        out.update(evaluate(campaign, config.stopping, program_cache=program_cache))
    if with_model and config.objective.is_spectrum:
        from jaxopt_mat.two_step import network_readiness

        out["step"] = network_readiness(campaign, seed=key_seed).as_dict() if cond.x.shape[0] else None
    return out
