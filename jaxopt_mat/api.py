"""The Python ``Campaign``: ask and tell from a notebook, pandas in and pandas out.

It is the same campaign the command line drives (the CLI is a thin layer over
this class): the same folder, the same validation, the same atomic writes and,
for the same state and seed, the same batch.

Example:
    >>> import jaxopt_mat as jm
    >>> camp = jm.Campaign.create("runs/agnp", config="campaign.toml")   # or jm.Campaign.open("runs/agnp")
    >>> batch = camp.suggest(15)              # a DataFrame: inputs by name, then predictions
    >>> batch["yield"] = measure(batch)       # the lab's part
    >>> camp.observe(batch)                   # validated, atomic, append-only
    >>> camp.status().best
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from jaxopt_mat import report, strategies
from jaxopt_mat.campaign import (SUGGESTION_COLUMN, CampaignFolder, Config, Measurements, Snapshot, file_number,
                                 load_config, parse_config, read_snapshot, suggestion_csv, suggestion_ids,
                                 validate_measurements, widen_bound)
from jaxopt_mat.campaign.input_cells import fixed_values, input_values
from jaxopt_mat.campaign.pending import resolve_pending
from jaxopt_mat.errors import ConfigError, DataError, RepeatedBatchError, read_data_file
from jaxopt_mat.stopping import evaluate
from jaxopt_mat.strategies import Context, Suggestion

if TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True)
class SuggestedBatch:
    """A suggested batch as it was kept: the strategy's result, its CSV text and the file it was saved to."""

    suggestion: Suggestion
    csv: str
    path: Path
    input_names: tuple[str, ...]
    inputs: tuple = ()  # the config's inputs (labels, integers); empty for a pool

    @property
    def notes(self) -> list[str]:
        return self.suggestion.notes

    @property
    def method(self) -> str:
        return self.suggestion.method

    @property
    def suggestion_ids(self) -> list[str]:
        """Each row's suggestion id (``b0004-07``), which a measurement may carry back in a ``suggestion`` column."""
        return suggestion_ids(file_number(self.path), len(self.suggestion.x))

    def table(self) -> "pd.DataFrame":
        """The batch as a DataFrame: ``suggestion``, (pool campaigns: ``id``,) the inputs by name, then the extras."""
        import pandas as pd

        sug = self.suggestion
        columns = {SUGGESTION_COLUMN: self.suggestion_ids}
        if sug.ids is not None:
            columns["id"] = list(sug.ids)
        if self.inputs:
            columns.update(input_values(self.inputs, sug.x))
        else:
            columns.update({n: np.asarray(sug.x)[:, j] for j, n in enumerate(self.input_names)})
        columns.update({k: np.asarray(v) for k, v in sug.extra.items()})
        frame = pd.DataFrame(columns)
        frame.attrs.update(method=sug.method, notes=list(sug.notes), file=str(self.path))
        return frame


@dataclasses.dataclass(frozen=True)
class Observed:
    """What ``observe`` recorded: the batch number given to the rows, how many, the campaign's total, and how many
    pending suggested rows the rows resolved and how many are still pending."""

    batch: int
    n_rows: int
    total: int
    resolved: int = 0
    still_pending: int = 0


@dataclasses.dataclass(frozen=True)
class Status:
    """A campaign's state as ``status`` reports it; :meth:`to_dict` is ``status --json``."""

    name: str
    n_observations: int
    n_conditions: int
    n_batches: int
    n_suggestions: int
    best: dict | None
    model: dict | None
    should_stop: bool | None
    stop_rules: dict | None
    step: dict | None
    recommended: dict | None
    pareto: dict | None
    pool: dict | None
    failures: dict | None
    pending: dict | None
    outcome_constraints: dict | None
    raw: dict = dataclasses.field(repr=False)

    @classmethod
    def from_dict(cls, info: dict) -> "Status":
        fields = {f.name for f in dataclasses.fields(cls)} - {"raw"}
        return cls(**{k: info.get(k) for k in fields}, raw=info)

    def to_dict(self) -> dict:
        return dict(self.raw)


def _ranges(ids) -> str:
    """Suggestion ids for a message: the first few, and how many more."""
    ids = list(ids)
    return ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")


def _config_of(config, source_dir=None) -> tuple[Config, Path]:
    """A :class:`Config` and the folder its file names are relative to, from a path, a table or a Config."""
    if isinstance(config, Config):
        return config, Path(source_dir or ".")
    if isinstance(config, dict):
        return parse_config(config, source="config", base_dir=Path(source_dir or ".")), Path(source_dir or ".")
    if isinstance(config, (str, Path)):
        return load_config(Path(config)), Path(config).parent
    raise ConfigError(f"config must be a campaign.toml path, a table (dict) or a Config, got {type(config).__name__}")


class Campaign:
    """A campaign folder driven from Python: :meth:`suggest`, :meth:`observe`, :meth:`status`.

    ``context`` (a :class:`~jaxopt_mat.strategies.Context`) carries caches of
    compiled programs and trained networks and a progress callback; results
    do not depend on it.
    """

    def __init__(self, folder: CampaignFolder, *, context: Context | None = None):
        self.folder = folder
        self.context = context or Context()

    @classmethod
    def create(cls, directory, config, *, source_dir=None, context: Context | None = None) -> "Campaign":
        """Validate ``config`` (a ``campaign.toml`` path, a table or a :class:`Config`) and create the folder.

        Files the config names (a target spectrum, a candidate table, a descriptor table) are read
        relative to ``source_dir`` (default: the config file's folder, or the
        working folder) and copied in.
        """
        cfg, source = _config_of(config, source_dir)
        folder = CampaignFolder.create(Path(directory), cfg, source_dir=Path(source_dir) if source_dir else source)
        return cls(folder, context=context)

    @classmethod
    def open(cls, directory, *, context: Context | None = None) -> "Campaign":
        """An existing campaign folder."""
        return cls(CampaignFolder(Path(directory)), context=context)

    @property
    def directory(self) -> Path:
        return self.folder.dir

    @property
    def config(self) -> Config:
        return self.folder.config

    @property
    def space(self):
        """The search space (a pool campaign's: the box its candidates' features span)."""
        return self.folder.space() if not self.config.is_pool else self.snapshot().space

    def snapshot(self) -> Snapshot:
        """The campaign as it is on disk now, read once (see :class:`~jaxopt_mat.campaign.Snapshot`)."""
        return read_snapshot(self.folder)

    # -- ask -------------------------------------------------------------------
    def ask(self, batch: int, *, method: str | None = None, seed: int | None = None, kappa: float = 0.0,
            extend_bounds: bool = False, ignore_pending: bool = False, fix: Mapping[str, object] | None = None,
            snapshot: Snapshot | None = None, judge: bool = True, round_size: int | None = None,
            refit_after: int = 1) -> SuggestedBatch:
        """Suggest the next ``batch`` conditions, keep them in ``suggestions/`` and remember the strategy's state.

        ``method`` (default: the campaign's first, e.g. ``gp`` or ``auto``) is
        one of :func:`~jaxopt_mat.strategies.methods`; ``seed`` overrides the
        campaign's; ``kappa`` weighs the spectrum network's disagreement. With
        ``extend_bounds``, extendable bounds the batches keep pressing against
        are widened (``campaign.toml`` is rewritten) and the batch is suggested
        again in the wider space. Rows suggested earlier and not yet observed
        are pending: the batch keeps away from them unless ``ignore_pending``.
        Each row gets a suggestion id (``b0004-07``) that a measurement file
        may carry back in a ``suggestion`` column. ``fix`` maps input names to the
        value every row of this batch takes (a label, a level, a number), e.g.
        ``{"ligand": "L2", "temperature": 60}``. With ``judge`` (default) the stop rules are evaluated
        (a note says when they are met), over the recorded batches or, with ``round_size``, over rounds of
        that many runs in the order recorded (what :func:`~jaxopt_mat.run` uses: it records one at a time).
        ``refit_after``: GP hyper-parameters are optimized again once that many conditions were added since
        their last optimization (default 1: every call); in between the GPs keep them and condition on all data.
        ``snapshot``: the campaign as read by the caller, current (default: read now).
        """
        snap = snapshot or self.snapshot()
        snap = snap.with_fixed(fixed_values(snap.config, fix or {}))
        options = dict(method=method, seed=seed, kappa=kappa, ignore_pending=ignore_pending, judge=judge,
                       round_size=round_size, refit_after=refit_after)
        sug = self._suggest(snap, batch, **options)
        pressing = strategies.bound_pressure(snap, sug.x)
        bound_notes = []
        config = snap.config
        for name, side, share_now, share_before in pressing:
            inp = next(i for i in config.inputs if i.name == name)
            bound = inp.low if side == "low" else inp.high
            new_input = next(i for i in widen_bound(config, name, side).inputs if i.name == name)
            new_value = new_input.low if side == "low" else new_input.high
            what = (f"{name}: suggestions keep pressing against its {'lower' if side == 'low' else 'upper'} "
                    f"bound {bound:g} ({share_now:.0%} of this batch, {share_before:.0%} of the previous one)")
            if extend_bounds:
                config = widen_bound(config, name, side)
                bound_notes.append(f"{what}; widened it by x{inp.extend_factor:g} to {new_value:g}")
            else:
                bound_notes.append(f"{what}; rerun with --extend-bounds to widen it by x{inp.extend_factor:g} to "
                                   f"{new_value:g}")
        notes = sug.notes + bound_notes
        if extend_bounds and pressing:  # suggest again in the widened space (without widening twice)
            self.folder.save_config(config)
            sug = self._suggest(snap.with_config(config), batch, **options)
            notes += [n for n in sug.notes if n not in notes]
        sug.notes = notes
        newest = max(snap.last_batch, int(snap.failed_batches.max()) if snap.failed_batches.size else 0)
        path, text = self.folder.save_suggestion(
            lambda n: suggestion_csv(config.input_names, sug.x, sug.extra, sug.ids, suggestion_ids(n, len(sug.x)),
                                     inputs=None if config.is_pool else config.inputs),
            after_batch=newest)
        if sug.state:
            self.folder.update_state(**sug.state)
        return SuggestedBatch(sug, text, path, tuple(config.input_names), () if config.is_pool else config.inputs)

    def _suggest(self, snap: Snapshot, batch, *, judge: bool, round_size: int | None, **options) -> Suggestion:
        """The strategy's batch, with a note when the stop rules say the campaign should stop."""
        sug = strategies.suggest(snap, batch, context=self.context, **options)
        model_based = sug.method not in ("lhs", "random", "spread")
        if judge and model_based and snap.n_conditions >= 3:
            judged = snap.in_rounds(round_size) if round_size else snap
            verdict = evaluate(judged, judged.config.stopping, lazy=True, context=self.context,
                               diagnostics=sug.diagnostics, acquisition=sug.acquisition_max,
                               seed=strategies.base.base_seed(snap, options["seed"]))
            if verdict.get("state"):  # the stop rules' fits, kept for the next suggest
                sug.state = {**(sug.state or {}), **verdict["state"]}
            if verdict["should_stop"]:
                met = [name for name, r in verdict["stop_rules"].items() if r["met"]]
                sug.notes.append(f"the campaign should stop: stop rules met: {', '.join(met)} (see status)")
        return sug

    def suggest(self, batch: int, **options) -> "pd.DataFrame":
        """:meth:`ask`, as a DataFrame (``.attrs`` holds ``method``, ``notes`` and the saved ``file``)."""
        return self.ask(batch, **options).table()

    # -- tell ------------------------------------------------------------------
    def observe(self, data, *, again: bool = False) -> Observed:
        """Validate measurements (a DataFrame or a CSV path) and append them to ``observations.csv``.

        Columns not needed are ignored, so a suggested batch with a measured
        column added goes straight back. Nothing is written unless every row
        is valid; rows that repeat an earlier batch exactly are refused unless ``again``.

        Raises:
            DataError: naming the row (counted as in a CSV file, header = row 1) and the reason.
        """
        if isinstance(data, (str, Path)):
            source = Path(data).name
            text = read_data_file(Path(data), "measurement file")
        elif hasattr(data, "to_csv"):
            source = "the table"
            text = data.to_csv(index=False)
        else:
            raise DataError(f"observe takes a DataFrame or a CSV path, got {type(data).__name__}")
        return self.observe_text(text, source, again=again)

    def observe_text(self, text: str, source: str, *, again: bool = False) -> Observed:
        """:meth:`observe` for a measurement file's text; ``source`` names it in messages."""
        snap = self.snapshot()
        measurements = self.validate_text(text, source, snapshot=snap)
        try:
            batch, total = self.folder.append_observations(measurements, refuse_repeat=not again)
        except RepeatedBatchError as e:
            raise RepeatedBatchError(f"{source}: {e}; pass --again to record them anyway") from None
        n = int(measurements.values.shape[0])
        still = resolve_pending(
            snap.pending, observed_ids=measurements.suggestions or [""] * n,
            observed_x=np.asarray(measurements.values)[:, :snap.space.dim] if not snap.config.is_pool else None,
            observed_pool_ids=measurements.ids, observed_batches=np.full(n, batch), cancelled=(),
            scale=np.asarray(snap.space.high) - np.asarray(snap.space.low))
        return Observed(batch, n, total, resolved=int(np.sum(~still)), still_pending=int(np.sum(still)))

    def validate_text(self, text: str, source: str, *, snapshot: Snapshot | None = None) -> Measurements:
        """Check a measurement file's text as :meth:`observe` does, without recording it."""
        snap = snapshot or self.snapshot()
        return validate_measurements(
            text, source, config=snap.config, space=None if snap.config.is_pool else snap.space,
            wavelengths=snap.wavelengths, target_on=snap.target_on if snap.target_spectrum is not None else None,
            pool_index=snap.pool_index if snap.config.is_pool else None, suggested_ids=frozenset(snap.suggested.ids))

    def cancel(self, suggestion_ids=(), *, everything: bool = False) -> list[str]:
        """Drop pending suggested rows (a batch that will never be run); return the ids dropped.

        ``suggestion_ids`` name rows (``b0004-07``) or whole batches (``b0004``);
        ``everything`` drops every pending row. Nothing is dropped unless every
        id names a pending row.

        Raises:
            DataError: an id that is not pending, or neither ids nor ``everything``.
        """
        pending = self.snapshot().pending.ids
        if everything:
            chosen = list(pending)
        else:
            if not suggestion_ids:
                raise DataError("name the suggestion ids to cancel (e.g. b0004-07, or b0004 for a whole batch), "
                                "or pass --all")
            chosen = []
            for sid in suggestion_ids:
                match = [p for p in pending if p == sid or p.startswith(f"{sid}-")]
                if not match:
                    raise DataError(f"{sid} is not pending" + (f" (pending: {_ranges(pending)})" if pending
                                                                else " (nothing is pending)"))
                chosen += [m for m in match if m not in chosen]
        if chosen:
            self.folder.cancel(chosen)
        return chosen

    # -- look ------------------------------------------------------------------
    def status(self, *, with_model: bool = True) -> Status:
        """Counts, the best condition, the models' fit, the step of a spectrum campaign and the stop rules."""
        return Status.from_dict(report.status(self.snapshot(), with_model=with_model, context=self.context))

    def observations(self) -> "pd.DataFrame":
        """Every measurement that gave a result: (pool campaigns: ``id``,) the inputs, the measured columns
        (the objective(s) or the spectrum, then the constrained outcomes), ``batch``."""
        import pandas as pd

        snap = self.snapshot()
        columns = {"id": list(snap.ids)} if snap.ids is not None else {}
        if not snap.config.is_pool:
            columns.update(input_values(snap.config.inputs, snap.x))
        columns.update({c: snap.measured[:, j] for j, c in enumerate(snap.columns)})
        columns.update({c: snap.outcomes[:, j] for j, c in enumerate(snap.config.outcome_names)})
        columns["batch"] = snap.batches
        return pd.DataFrame(columns)

    def __repr__(self) -> str:
        return f"Campaign({str(self.directory)!r})"

