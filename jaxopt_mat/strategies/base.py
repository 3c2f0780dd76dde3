"""What every strategy shares: the request it answers, the context it runs in, the batch it returns.

A strategy is a function ``(snapshot, request, context) -> Suggestion``. It
reads the snapshot, calls the functional core and returns the batch, the state
it wants remembered (``Suggestion.state``, merged into ``state.json`` by the
shell that writes it) and its diagnostics (the models it fitted, for the stop
rules). It writes no file.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from jaxopt_mat.acquisition.batch import MAX_BATCH
from jaxopt_mat.campaign import Snapshot
from jaxopt_mat.ensemble_cache import EnsembleMemo
from jaxopt_mat.errors import DataError, InfeasibleError
from jaxopt_mat.input_kinds import lattice_size
from jaxopt_mat.chunked import map_rows
from jaxopt_mat.surrogates.feasibility import fit_feasibility, log_weight_of_rows
from jaxopt_mat.surrogates.gp import MAX_ITER
from jaxopt_mat.surrogates.outcome_constraints import fit_outcome_constraints
from jaxopt_mat.surrogates.output_warp import OutputWarp, fit_output_warp
from jaxopt_mat.strategies.fits import data_digest, fit_start


@dataclasses.dataclass
class Context:
    """What many calls need and no result depends on: caches of compiled programs and trained networks, progress.

    ``ensemble_cache`` is wrapped in an :class:`~jaxopt_mat.ensemble_cache.EnsembleMemo`
    so that one command trains each spectrum ensemble at most once, with or
    without an on-disk cache behind it.
    """

    program_cache: object = None
    ensemble_cache: object = None
    progress: Callable[[str], None] = lambda message: None

    def __post_init__(self):
        if not isinstance(self.ensemble_cache, EnsembleMemo):
            self.ensemble_cache = EnsembleMemo(self.ensemble_cache)


@dataclasses.dataclass(frozen=True)
class Request:
    """One ``suggest`` call: the batch size, the seeds and the options a strategy may read.

    ``seed`` is the campaign's seed or a command's override; ``rng_seed`` the
    stream of this very call (:func:`next_suggestion_seed`).
    """

    batch: int
    method: str
    seed: int
    rng_seed: int
    kappa: float = 0.0
    # A GP's hyper-parameters are optimized again once this many conditions were added since their last
    # optimization (1: at every suggest); in between, the GP keeps them and conditions on all the data.
    refit_after: int = 1


@dataclasses.dataclass
class Suggestion:
    """What a strategy returns: points plus the model's view of them.

    Attributes:
        x: points, physical units (pool campaigns: the candidates' features), shape ``(q, d)``.
        method: what produced them (e.g. ``lhs``, ``gp``, ``auto:cgp``).
        extra: extra columns by name (e.g. ``predicted_mean``), each shape ``(q,)``.
        notes: messages for the user (initial design, bound pressure, the stop rules).
        ids: pool campaigns: the candidate id of each row.
        state: entries of ``state.json`` to replace once the batch is kept.
        diagnostics: what the stop rules may reuse (``objective_models``: GPs of the
            recorded objective on every condition; ``readiness``: the network's judged readiness).
    """

    x: np.ndarray
    method: str
    extra: dict[str, np.ndarray]
    notes: list[str]
    ids: list[str] | None = None
    state: dict = dataclasses.field(default_factory=dict)
    diagnostics: dict = dataclasses.field(default_factory=dict)

    @property
    def acquisition_max(self) -> float | None:
        """The largest expected improvement (or EHVI) of this batch, in the objective's units, if it has one."""
        for column, log in (("log_ei", True), ("log_ehvi", True), ("ehvi", False)):
            if column in self.extra:
                vals = np.asarray(self.extra[column], dtype=np.float64)
                vals = vals[np.isfinite(vals)]
                if not vals.size:
                    return None
                return float(np.exp(vals.max())) if log else float(vals.max())
        return None


def check_batch_size(batch: int) -> None:
    """A :class:`DataError` unless ``1 <= batch <= MAX_BATCH`` (what ``suggest`` can return in one call)."""
    if not 1 <= batch <= MAX_BATCH:
        raise DataError(f"--batch must be between 1 and {MAX_BATCH}, got {batch}")


def base_seed(snap: Snapshot, seed: int | None) -> int:
    """``seed`` if given (a command's override), else the campaign's own."""
    return snap.config.seed if seed is None else seed


def next_suggestion_seed(snap: Snapshot, seed: int | None = None) -> int:
    """The random seed of the campaign's next ``suggest`` (``seed`` overrides the campaign's own).

    It depends on the seed and on the number of batches suggested so far, so
    the same state gives the same batch and successive batches differ.
    """
    return int(np.random.SeedSequence([base_seed(snap, seed), snap.n_suggested]).generate_state(1)[0])


def check_feasible(space, x) -> np.ndarray:
    """``x`` as an array, after checking every point satisfies the bounds and constraints exactly."""
    x = np.asarray(x)
    ok = np.asarray(space.is_feasible(x, atol=0.0)) & space.satisfies_kinds(x)
    if not np.all(ok):
        if space.is_mixed:  # rounding integer or discrete inputs can leave a thin region without a feasible point
            raise InfeasibleError("no point found whose integer and discrete inputs take allowed values inside the "
                                  "linear constraints; check the constraints and the values fixed with --fix")
        raise AssertionError("internal error: an infeasible suggestion escaped the projection")  # the repair prevents it
    return x


def measured_x(snap: Snapshot, batch: int) -> np.ndarray | None:
    """Where every input has finitely many values: the conditions already run (results and failures), which a
    batch does not suggest again (a replicate is asked for by hand); ``None`` elsewhere.

    Raises:
        DataError: when fewer than ``batch`` combinations are left unmeasured and not pending.
    """
    size = lattice_size(snap.space.choices) if snap.space.is_mixed else None
    if size is None:
        return None
    runs = np.concatenate([snap.x, snap.failed_x.reshape(-1, snap.space.dim)])
    taken = np.concatenate([runs, pending_x(snap).reshape(-1, snap.space.dim)]) if snap.n_pending else runs
    free = size - len(np.unique(np.round(np.asarray(snap.space.to_unit(taken)), 9), axis=0)) if len(taken) else size
    if free < batch:
        raise DataError(f"only {free} of the {size} combinations of the inputs are neither measured nor pending; "
                        f"ask for at most {free}")
    return runs


def n_lengthscales(snap: Snapshot) -> int:
    """How many length-scales the campaign's GPs have: one per input, or per descriptor of a categorical input."""
    features = snap.space.features
    return snap.space.dim if features is None else features.n_groups


def feasibility(snap: Snapshot, *, low, high, ctx: Context):
    """The success classifier of the recorded runs, or ``None`` when no run has failed.

    With failures recorded, the GP batches add its log weight (``log
    P(success)``, steep below 1/2: ``FeasibilityModel.log_weight``) to their
    acquisition, so they keep away from where runs failed; the regression
    models see only the runs that gave a result.
    """
    n_failed = snap.failed_x.shape[0]
    if n_failed == 0:
        return None
    ctx.progress(f"fitting the success model to {snap.n_rows + n_failed} runs ({n_failed} failed)")
    x = np.concatenate([snap.x, snap.failed_x])
    success = np.concatenate([np.ones(snap.n_rows, bool), np.zeros(n_failed, bool)])
    return fit_feasibility(x, success, low=low, high=high,
                           features=None if snap.config.is_pool else snap.space.features)


def failure_note(snap: Snapshot) -> list[str]:
    """The note a batch carries when it accounted for failed runs."""
    n = snap.failed_x.shape[0]
    return [f"{n} failed run{'s' if n != 1 else ''} recorded: the batch is weighted by the modelled probability "
            "that a run succeeds"] if n else []


def outcome_models(snap: Snapshot, *, key, low, high, ctx: Context, refit_after: int = 1, digests: dict | None = None):
    """GPs of the campaign's constrained outcomes on every condition, or ``None`` without outcome constraints.

    Returns ``(constraints, fits)``: the
    :class:`~jaxopt_mat.surrogates.outcome_constraints.OutcomeConstraints` the
    acquisitions add (``log P(every bound holds)``), and the GPs by column
    name (remembered as warm starts). Each GP is optimized or kept by the rules of
    :mod:`jaxopt_mat.strategies.fits`; ``digests`` gets each column's data digest.
    """
    config = snap.config
    if not config.outcome_constraints:
        return None, {}
    names = config.outcome_names
    cond = snap.conditions
    medians, noise = snap.outcome_medians, snap.outcome_noise
    columns = {n: data_digest(cond.x, medians[:, j], low, high, None if noise is None else noise[:, j])
               for j, n in enumerate(names)}
    if digests is not None:
        digests.update(columns)
    starts = [fit_start(snap.state, n, cond.x.shape[0], n_lengthscales(snap), columns[n], refit_after) for n in names]
    ctx.progress(f"fitting {len(names)} GP{'s' if len(names) > 1 else ''} to the constrained outcome"
                 f"{'s' if len(names) > 1 else ''} ({', '.join(names)})")
    models = fit_outcome_constraints(cond.x, medians, config.outcome_constraints, key=key, low=low,
                                     high=high, program_cache=ctx.program_cache, noise_variance=noise,
                                     inits=tuple(init for init, _ in starts), features=snap.space.features,
                                     max_iter=tuple(0 if keep else MAX_ITER for _, keep in starts))
    first = {c.name: m for c, m in zip(config.outcome_constraints, models.models)}
    return models, first


def row_log_weights(snap: Snapshot, pool, constraints, ctx: Context):
    """Per pool row: what the acquisition adds for failed runs and outcome constraints (``None`` if nothing)."""
    success = feasibility(snap, low=pool.low, high=pool.high, ctx=ctx)
    total = None
    if success is not None:
        total = map_rows(log_weight_of_rows, (success,), pool.features)
    if constraints is not None:
        logp = map_rows(_log_probability_of_rows, (constraints,), pool.features)
        total = logp if total is None else total + logp
    return total


def _log_probability_of_rows(rows, constraints):
    return constraints.log_probability(rows)


def objective_target(snap: Snapshot, y: np.ndarray) -> tuple[OutputWarp | None, np.ndarray, np.ndarray | None]:
    """What the GP of a scalar objective models: ``(warp, target, known noise variance)`` per condition.

    A long tail of bad values is compressed by :func:`fit_output_warp` (the GP
    fits ``warp.forward(y)``, the replicates' noise carried into its units);
    where the warp would be the identity, ``warp`` is None and the GP fits
    ``y`` itself, so its predictions are in the objective's units.
    """
    y = np.asarray(y, dtype=np.float64)
    warp = fit_output_warp(y, maximize=snap.config.objective.maximize)
    if warp.is_identity:
        return None, y, snap.replicate_noise
    return warp, warp.forward(y), warp.noise_variance(y, snap.replicate_noise)


def incumbent(snap: Snapshot, y: np.ndarray, maximize: bool) -> float:
    """The best of ``y`` (per condition) among the conditions that keep the outcome constraints.

    When none does yet, the worst value: every improvement then counts, and the
    probability of keeping the constraints decides where the batch goes.
    """
    ok = snap.satisfied
    pick = np.max if maximize else np.min
    if not ok.any():
        return float(np.min(y) if maximize else np.max(y))
    return float(pick(np.asarray(y)[ok]))


def outcome_note(snap: Snapshot) -> list[str]:
    """The note a batch carries on a campaign with outcome constraints."""
    if not snap.config.outcome_constraints:
        return []
    exprs = ", ".join(c.expr for c in snap.config.outcome_constraints)
    return [f"{int(snap.satisfied.sum())} of {snap.n_conditions} conditions keep the outcome constraints ({exprs}); "
            "the batch is weighted by the modelled probability that they hold"]


def pending_x(snap: Snapshot) -> np.ndarray | None:
    """The inputs of the pending rows (suggested, not yet observed), or ``None`` when there are none."""
    return snap.pending.x if snap.n_pending else None


def pending_rows(snap: Snapshot) -> np.ndarray | None:
    """Pool campaigns: the candidate rows of the pending suggestions, or ``None`` when there are none."""
    return np.array([snap.pool_index[i] for i in snap.pending.pool_ids], int) if snap.n_pending else None


def pending_note(snap: Snapshot) -> list[str]:
    """The note a batch carries when it kept away from pending rows."""
    n = snap.n_pending
    return [f"kept away from {n} pending row{'s' if n != 1 else ''} (suggested earlier, not yet observed; "
            "'cancel' drops them, --ignore-pending disregards them)"] if n else []
