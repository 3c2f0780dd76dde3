"""A campaign read once: the immutable value every command above the folder works from.

``read_snapshot(folder)`` parses ``observations.csv`` once, loads the pool and
the target, reads the state and what the loop needs of earlier suggestions.
Strategies, stop rules, status reports and plots read the snapshot; none of
them opens a campaign file again. Derived values (losses, replicate medians,
the pool's measured mask) are computed on first use and kept.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np

from jaxopt_mat.campaign.config import Config
from jaxopt_mat.campaign.folder import CANCELLED, SUGGESTED_LOG, SUGGESTIONS_DIR, CampaignFolder
from jaxopt_mat.campaign.pending import SuggestedRows, read_suggested, resolve_pending
from jaxopt_mat.campaign.tables import read_suggestion, target_on_grid
from jaxopt_mat.data import Conditions, combine_replicates, replicate_noise_columns
from jaxopt_mat.errors import CampaignError
from jaxopt_mat.objectives import spectrum_loss_rows
from jaxopt_mat.pareto import default_reference
from jaxopt_mat.pool import Pool
from jaxopt_mat.space import SearchSpace

# Columns of a suggestion file that hold an acquisition value: (name, stored as its log).
ACQUISITION_COLUMNS = (("log_ei", True), ("log_ehvi", True), ("ehvi", False))


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.flags.writeable = False
    return a


@dataclasses.dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything a command knows of a campaign, read at one moment.

    Attributes:
        directory: the campaign folder.
        config: its validated configuration.
        space: the search space (a pool's: the box its features span).
        columns: the measured columns of ``observations.csv`` (objective names, or wavelengths as written).
        x: ``(n, d)`` inputs of every recorded row (pool campaigns: the candidates' features).
        measured: ``(n, k)`` the measured columns of every row.
        batches: ``(n,)`` the ``observe`` call that recorded each row.
        ids: pool campaigns: each row's candidate id; otherwise ``None``.
            (``x``, ``measured``, ``batches`` and ``ids`` hold the runs that gave a result.)
        failed_x, failed_batches, failed_ids: the runs recorded as failed (``status`` = ``failed``):
            their inputs, batches and (pool campaigns) ids. Kept apart: no regression model sees them;
            the feasibility model does.
        state: the loop's remembered decisions (``state.json``), read-only.
        n_suggested: how many batches ``suggest`` has returned so far.
        previous_batch: inputs of the newest suggested batch (``None`` if none, or not needed).
        last_acquisition: the largest expected improvement (or EHVI) of the newest batch that recorded one.
        pool: a pool campaign's candidate table.
        pool_index: a pool campaign's row of each candidate id.
        target_spectrum: a spectrum campaign's target as read, ``(wavelengths, absorbance)``.
        pending: the suggested rows not yet resolved by an observation nor cancelled (runs
            still in the lab; :mod:`~jaxopt_mat.campaign.pending`). Strategies keep new
            batches away from them.
        suggested: every row ``suggest`` has returned, pending or not.
        outcomes: ``(n, c)`` the columns named by outcome constraints
            (``config.outcome_names``), per row that gave a result.
    """

    directory: Path
    config: Config
    space: SearchSpace
    columns: tuple[str, ...]
    x: np.ndarray
    measured: np.ndarray
    batches: np.ndarray
    ids: tuple[str, ...] | None
    state: Mapping
    n_suggested: int
    previous_batch: np.ndarray | None
    last_acquisition: float | None
    failed_x: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))
    failed_batches: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, int))
    failed_ids: tuple[str, ...] | None = None
    pool: Pool | None = None
    pool_index: Mapping[str, int] | None = None
    target_spectrum: tuple[np.ndarray, np.ndarray] | None = None
    pending: SuggestedRows | None = None
    suggested: SuggestedRows | None = None
    outcomes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def last_batch(self) -> int:
        """The newest recorded batch number (0 before any ``observe``)."""
        return int(self.batches.max()) if self.batches.size else 0

    @functools.cached_property
    def wavelengths(self) -> np.ndarray:
        """A spectrum campaign's wavelength grid (empty before the first ``observe``, and for other kinds)."""
        if not self.config.objective.is_spectrum:
            return np.zeros(0)
        return _frozen(np.array([float(c) for c in self.columns]))

    def target_on(self, wavelengths) -> np.ndarray:
        """The target spectrum interpolated onto ``wavelengths`` (which it must cover)."""
        return target_on_grid(*self.target_spectrum, wavelengths, source=self.config.objective.target)

    @functools.cached_property
    def target(self) -> np.ndarray:
        """The target spectrum on the campaign's wavelength grid."""
        return _frozen(self.target_on(self.wavelengths))

    @functools.cached_property
    def y(self) -> np.ndarray:
        """The objective of every row: ``(n,)`` values, the exact spectrum loss, or ``(n, m)`` Pareto objectives."""
        obj = self.config.objective
        if obj.is_pareto:
            return self.measured
        if not obj.is_spectrum:
            return _frozen(self.measured[:, 0])
        if self.n_rows == 0:
            return _frozen(np.zeros(0))
        return _frozen(spectrum_loss_rows(self.measured, self.target, window=obj.window))

    @functools.cached_property
    def conditions(self) -> Conditions:
        """The measured conditions with the median of their replicates' objective."""
        return combine_replicates(self.x, self.y)

    @functools.cached_property
    def replicate_noise(self) -> np.ndarray:
        """Noise variance of each condition's median objective, from its replicates (``data.replicate_noise_variance``).

        ``(n_conditions,)``, or ``(n_conditions, m)`` for Pareto objectives; zeros for
        spectrum campaigns (their GPs model transforms of the loss) and without replicates.
        """
        if self.config.objective.is_spectrum:
            return _frozen(np.zeros(self.n_conditions))
        return _frozen(replicate_noise_columns(self.conditions, self.y))

    @functools.cached_property
    def outcome_noise(self) -> np.ndarray:
        """``(n_conditions, c)`` the same for the constrained outcomes' medians."""
        return _frozen(replicate_noise_columns(self.conditions, self.outcomes).reshape(self.n_conditions, -1))

    @functools.cached_property
    def outcome_medians(self) -> np.ndarray:
        """``(n_conditions, c)`` the median of each condition's replicates of every constrained column."""
        if self.outcomes.shape[1] == 0:
            return _frozen(np.zeros((self.n_conditions, 0)))
        return _frozen(np.asarray(combine_replicates(self.x, self.outcomes).y).reshape(self.n_conditions, -1))

    @functools.cached_property
    def satisfied(self) -> np.ndarray:
        """``(n_conditions,)`` True for conditions whose replicate medians keep every outcome constraint."""
        ok = np.ones(self.n_conditions, bool)
        names = self.config.outcome_names
        for c in self.config.outcome_constraints:
            ok &= c.holds(self.outcome_medians[:, names.index(c.name)])
        return _frozen(ok)

    @property
    def n_conditions(self) -> int:
        return int(self.conditions.x.shape[0])

    @property
    def n_pending(self) -> int:
        return 0 if self.pending is None else len(self.pending)

    def without_pending(self) -> "Snapshot":
        """The same campaign with no suggested row pending (``suggest --ignore-pending``)."""
        return dataclasses.replace(self, pending=SuggestedRows.empty(self.space.dim, self.config.is_pool))

    @functools.cached_property
    def unavailable_mask(self) -> np.ndarray:
        """Pool campaigns: ``(N,)`` True for candidates measured (or failed) or pending: never suggested again."""
        mask = np.array(self.measured_mask)
        if self.n_pending:
            mask[[self.pool_index[i] for i in self.pending.pool_ids]] = True
        return _frozen(mask)

    @functools.cached_property
    def measured_mask(self) -> np.ndarray:
        """Pool campaigns: ``(N,)`` True for candidates run at least once (a failed run counts: never suggested again)."""
        mask = np.zeros(len(self.pool.ids), bool)
        mask[[self.pool_index[i] for i in self.ids + (self.failed_ids or ()) if i in self.pool_index]] = True
        return _frozen(mask)

    def reference_point(self, values_max: np.ndarray) -> np.ndarray:
        """The hypervolume reference in maximisation form: the configured one, or one derived from ``values_max``."""
        obj = self.config.objective
        if obj.reference is not None:
            return np.asarray(obj.reference) * obj.signs
        return default_reference(values_max)

    def in_rounds(self, size: int) -> "Snapshot":
        """The same records with their batches regrouped into rounds of ``size`` runs in the order recorded
        (failed runs count): how the stop rules see a loop that records one evaluation at a time."""
        b = np.concatenate([self.batches, self.failed_batches])
        rounds = np.empty(b.size, int)
        rounds[np.argsort(b, kind="stable")] = np.arange(b.size) // size + 1
        n = self.batches.size
        return dataclasses.replace(self, batches=_frozen(rounds[:n]), failed_batches=_frozen(rounds[n:]))

    def with_fixed(self, fixed: Mapping[str, float]) -> "Snapshot":
        """The same campaign with some inputs fixed to one value (a label's index) for the next batch (``--fix``)."""
        if not fixed:
            return self
        if self.config.is_pool:
            raise CampaignError("--fix applies to a campaign's inputs; a pool campaign picks whole candidates")
        return dataclasses.replace(self, space=self.config.space(dict(fixed)))

    def with_config(self, config: Config) -> "Snapshot":
        """The same records under another config of the same inputs (e.g. a widened bound)."""
        space = config.space() if not config.is_pool else self.space
        return dataclasses.replace(self, config=config, space=space)


def _last_acquisition(files: list[Path]) -> float | None:
    """Largest acquisition value of the newest suggestion file that recorded one (``None`` if none)."""
    for path in reversed(files):
        with open(path, newline="", encoding="utf-8") as f:
            header = f.readline().strip().split(",")
        for column, log in ACQUISITION_COLUMNS:
            if column in header:
                _, extra = read_suggestion(path, [])
                # Rows without an acquisition value (a mixed batch's network recipes) hold nan.
                vals = extra[column][np.isfinite(extra[column])]
                if not vals.size:
                    return None
                return float(np.exp(vals.max())) if log else float(vals.max())
    return None


def read_snapshot(folder: CampaignFolder) -> Snapshot:
    """Read a campaign folder once into a :class:`Snapshot`."""
    config = folder.config
    rec = folder.recorded()
    pool = folder.pool() if config.is_pool else None
    columns = tuple(rec.header[len(config.key_columns):-1])
    space = SearchSpace(pool.low, pool.high, names=pool.names) if config.is_pool else folder.space()
    failed, all_x, all_ids, all_batches, arr = rec.failed, rec.x, rec.ids, rec.batches, rec.numbers
    sids = list(rec.suggestions)
    files = folder.suggestion_files()
    state = folder.read_state()
    suggested, pending = _pending(folder, files, state, sids, all_x, all_ids, all_batches, pool, space)
    previous = None
    if files and any(i.extendable for i in config.inputs):
        previous = _frozen(read_suggestion(files[-1], config.input_names, inputs=config.inputs)[0])
    target = folder.read_target() if config.objective.is_spectrum else None
    ids = None if all_ids is None else tuple(i for i, f in zip(all_ids, failed) if not f)
    n_out = len(config.outcome_names)  # the outcome constraints' columns come last (once there are any columns)
    if len(columns) >= n_out + 1 or not config.objective.is_spectrum:
        measured, outcomes = arr[:, :-1 - n_out], arr[:, arr.shape[1] - 1 - n_out:-1]
        columns = columns[:len(columns) - n_out]
    else:  # a spectrum campaign before its first observe: no columns yet
        measured, outcomes = arr[:, :-1], np.zeros((arr.shape[0], n_out))
    return Snapshot(
        directory=folder.dir, config=config, space=space, columns=columns, x=_frozen(all_x[~failed]),
        measured=_frozen(measured), outcomes=_frozen(outcomes), batches=_frozen(arr[:, -1].astype(int)), ids=ids,
        failed_x=_frozen(all_x[failed]), failed_batches=_frozen(all_batches[failed]),
        failed_ids=None if all_ids is None else tuple(i for i, f in zip(all_ids, failed) if f),
        state=MappingProxyType(state), n_suggested=len(files), previous_batch=previous,
        last_acquisition=_last_acquisition(files), pool=pool,
        pool_index=MappingProxyType(folder.pool_index()) if pool is not None else None, target_spectrum=target,
        pending=pending, suggested=suggested,
    )


def _pending(folder: CampaignFolder, files, state, sids, x, pool_ids, batches, pool, space):
    """Every suggested row, and those that no recorded row (result or failure) resolves and ``cancel`` did not drop."""
    log = state.get(SUGGESTED_LOG)
    try:
        suggested = read_suggested(files, folder.config.input_names, inputs=folder.config.inputs,
                                   log=log if isinstance(log, dict) else None,
                                   pool_features=None if pool is None else pool.features,
                                   pool_index=None if pool is None else folder.pool_index())
    except (KeyError, ValueError, IndexError, CampaignError) as e:
        raise CampaignError(f"{folder.dir / SUGGESTIONS_DIR}: a suggestion file was edited by hand and cannot be "
                            f"read ({type(e).__name__}: {e}); restore it or delete it") from None
    cancelled = state.get(CANCELLED)
    mask = resolve_pending(suggested, observed_ids=sids, observed_x=x, observed_pool_ids=pool_ids,
                           observed_batches=batches, cancelled=cancelled if isinstance(cancelled, list) else (),
                           scale=np.asarray(space.high) - np.asarray(space.low))
    return suggested, suggested.subset(mask)
