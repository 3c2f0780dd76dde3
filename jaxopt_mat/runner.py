"""The closed loop on an executor: keep N evaluations running, observe each as it finishes, suggest the next.

:func:`run` drives a campaign folder: it suggests conditions (each is pending
in the campaign before it is submitted), hands each to ``evaluate`` on an
executor (anything with ``submit(fn, *args)`` returning futures with
``done()`` and ``result()``: ``concurrent.futures`` pools, a
``dask.distributed.Client``, a submitit executor), and observes each result
atomically as it arrives, with the suggestion id it answers. A raised
exception or a timeout is a failed run: recorded, modelled, never the end of
the loop. The next suggestion keeps away from the evaluations still running.

Durable: the campaign files are the loop's only state. Killed at any moment
and started again, a runner observes what was observed once, picks up result
files of evaluations that finished meanwhile (``DIR/runs/<suggestion>.json``,
which the command runner writes) and dispatches the other pending rows
again (rows suggested by hand and never observed are pending too: a runner
evaluates them first). One runner per campaign: a second is refused while the first holds
``DIR/.runner.lock``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import dataclasses
import fcntl
import io
import json
import math
import multiprocessing
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from jaxopt_mat.api import Campaign
from jaxopt_mat.campaign import SUGGESTION_COLUMN, STATUS_COLUMN
from jaxopt_mat.campaign.input_cells import input_values
from jaxopt_mat.errors import CampaignError, DataError

RUNS_DIR = "runs"
RUNNER_LOCK = ".runner.lock"
# How often the loop looks at its futures (seconds).
POLL = 0.05


@dataclasses.dataclass
class RunSummary:
    """What a :func:`run` did: evaluations observed (and how many failed), why it ended, the campaign's total."""

    observed: int = 0
    failed: int = 0
    redispatched: int = 0
    picked_up: int = 0
    total: int = 0
    reason: str = ""
    seconds_per_evaluation: list = dataclasses.field(default_factory=list)
    loop_seconds: float = 0.0  # the loop's own work: suggesting, observing, reading the campaign


@dataclasses.dataclass
class Event:
    """A progress event: ``kind`` is ``submitted``, ``observed`` or ``failed``; counts after it."""

    kind: str
    suggestion: str
    running: int
    done: int
    failed: int
    best: float | None
    seconds: float | None = None


def result_path(directory: Path, suggestion: str) -> Path:
    """Where an evaluation of ``suggestion`` may leave its result for a later runner to pick up."""
    return Path(directory) / RUNS_DIR / f"{suggestion}.json"


@contextlib.contextmanager
def runner_lock(directory: Path):
    """Hold ``DIR/.runner.lock`` for one runner; a second gets a :class:`CampaignError`."""
    path = Path(directory) / RUNNER_LOCK
    f = open(path, "a+")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise CampaignError(f"{directory} is being run by {holder}; one runner per campaign") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()


def _row(sid: str, condition: dict, result) -> dict:
    """The measurement row of one evaluation: its suggestion id, inputs, measured columns and status."""
    row = {SUGGESTION_COLUMN: sid, **condition}
    failed = not isinstance(result, dict) or str(result.get(STATUS_COLUMN, "ok")).lower() == "failed"
    if not failed:
        row.update({str(k): v for k, v in result.items() if k != STATUS_COLUMN})
    row[STATUS_COLUMN] = "failed" if failed else "ok"
    return row


def _measured_columns(snap) -> list[str] | None:
    """The measured columns a row must carry (a failed run leaves them empty); ``None`` before a spectrum's grid."""
    config = snap.config
    if config.objective.is_spectrum:
        return list(snap.columns) + config.outcome_names if snap.columns else None
    return config.objective.measured_names + config.outcome_names


# How observe's messages name a result the runner records.
RESULT = "the evaluation's result"


def _cell(v) -> str:
    """A measurement file's cell: numbers exactly (``repr``), empty for ``None`` or NaN, other values as text."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    return str(v)


def _csv_text(rows: list[dict]) -> str:
    """Rows (dicts) as a measurement file's text: every key of any row a column, in order of first appearance.

    Written directly (not through a DataFrame: a spectrum's row has hundreds of columns, and the runner
    observes each evaluation)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
    return out.getvalue()


def _failure(row: dict, columns: list[str], config) -> dict:
    """The measurement row of a failed run: its suggestion id and inputs, every measured cell empty."""
    keep = {k: v for k, v in row.items() if k in (SUGGESTION_COLUMN, "id", *config.input_names)}
    return {**keep, **{c: None for c in columns}, STATUS_COLUMN: "failed"}


def _observe(camp: Campaign, row: dict) -> bool | None:
    """Record one evaluation; a result the campaign refuses is recorded as a failed run instead.

    Returns whether the run failed, or ``None`` when a failure cannot be recorded yet (a spectrum
    campaign before its first spectrum fixes the wavelength grid).
    """
    if row[STATUS_COLUMN] != "failed":
        try:
            camp.observe_text(_csv_text([row]), RESULT, again=True)
            return False
        except DataError as e:  # e.g. a missing or non-numeric measured column: the run gave no usable result
            log = result_path(camp.directory, row[SUGGESTION_COLUMN]).with_suffix(".log")
            log.parent.mkdir(exist_ok=True)
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"result refused, recorded as a failed run: {e}\n")
    columns = _measured_columns(camp.snapshot())
    if columns is None:
        return None
    camp.observe_text(_csv_text([_failure(row, columns, camp.config)]), RESULT, again=True)
    return True


def _observe_all(camp: Campaign, rows: list[dict], snap) -> list[bool | None]:
    """Record evaluations that finished together in one observation (one read and write of the campaign);
    when the campaign refuses any of them, each on its own (:func:`_observe`). Whether each failed."""
    columns = _measured_columns(snap) if len(rows) > 1 else None
    if columns is not None:
        table = [row if row[STATUS_COLUMN] != "failed" else _failure(row, columns, camp.config) for row in rows]
        try:
            camp.observe_text(_csv_text(table), RESULT, again=True)
            return [row[STATUS_COLUMN] == "failed" for row in rows]
        except DataError:
            pass  # one of them is refused: each on its own, the refused one as a failed run with its reason
    return [_observe(camp, row) for row in rows]


def _conditions(camp: Campaign, x: np.ndarray, ids) -> list[dict]:
    """Each suggested row as the dict ``evaluate`` receives: inputs by name as a user reads them (labels,
    whole numbers; pool campaigns: ``id`` too)."""
    names = camp.config.input_names
    config = camp.config
    out = []
    for k, row in enumerate(np.asarray(x)):
        if config.is_pool:
            cond = {n: float(v) for n, v in zip(names, row)}
        else:
            cond = {n: column[0] for n, column in input_values(config.inputs, row[None]).items()}
        if ids is not None:
            cond = {"id": ids[k], **cond}
        out.append(cond)
    return out


def _evaluate_with_id(evaluate, condition, sid):
    """What runs on the executor: ``evaluate(condition)``, told its suggestion id when it takes one."""
    if getattr(evaluate, "takes_suggestion_id", False):
        return evaluate(condition, suggestion=sid)
    return evaluate(condition)


def run(campaign, evaluate: Callable[[dict], dict], *, executor=None, parallel: int = 4, budget: int | None = None,
        stop_when_done: bool = True, timeout: float | None = None, method: str | None = None,
        on_event: Callable[[Event], None] = lambda e: None) -> RunSummary:
    """Keep ``parallel`` evaluations running until the budget is spent, the stop rules say stop, or an interrupt.

    Args:
        campaign: a :class:`~jaxopt_mat.Campaign` or its folder.
        evaluate: ``evaluate(condition) -> dict`` of measured columns (a spectrum
            campaign's: absorbance by wavelength); ``{"status": "failed"}``, an
            exception or a result the campaign refuses make a failed run.
        executor: where evaluations run (default: a pool of ``parallel`` spawned
            processes; ``evaluate`` must then be importable, e.g. a function defined
            at the top of a module, not in a notebook cell: there, pass a
            ``concurrent.futures.ThreadPoolExecutor``).
        parallel: evaluations in flight at once.
        budget: stop once the campaign holds this many measurements (failed runs
            included), so the same call resumes towards the same end.
        stop_when_done: stop submitting once the stop rules are met (judged once per `parallel` new runs,
            over rounds of `parallel` runs in the order recorded).
        timeout: seconds an evaluation may take before it counts as failed (its late result is ignored).
        method: ``suggest``'s method (default: the campaign's).
        on_event: called after each submission and each observation (progress display).

    Returns:
        A :class:`RunSummary`; the reason it ended is in ``reason``.
    """
    camp = campaign if isinstance(campaign, Campaign) else Campaign.open(campaign)
    if parallel < 1:
        raise DataError(f"--parallel must be at least 1, got {parallel}")
    if budget is not None and budget < 1:
        raise DataError(f"--budget must be at least 1, got {budget}")
    own = executor is None
    with runner_lock(camp.directory):
        if own:  # spawned, not forked: a fork of a process running JAX's threads can deadlock
            executor = concurrent.futures.ProcessPoolExecutor(max_workers=parallel,
                                                              mp_context=multiprocessing.get_context("spawn"))
        try:
            return _loop(camp, evaluate, executor, parallel, budget, stop_when_done, timeout, method, on_event)
        finally:
            if own:
                executor.shutdown(wait=False, cancel_futures=True)


def _loop(camp, evaluate, executor, parallel, budget, stop_when_done, timeout, method, on_event) -> RunSummary:
    summary = RunSummary()
    in_flight: dict[str, tuple] = {}  # suggestion id -> (future, condition, start time)
    latest = [camp.snapshot()]  # the campaign as of the last observation (read again only after one)
    current = [True]  # whether latest[0] is the campaign as it is now (an ask adds suggestions)
    stop = ""
    judged_at = -math.inf  # measurements when the stop rules were last judged

    def refresh():
        latest[0], current[0] = camp.snapshot(), True
        return latest[0]

    def measurements(s) -> int:
        return s.n_rows + int(s.failed_x.shape[0])

    def best(s):
        if s.config.objective.is_pareto or not s.satisfied.any():
            return None
        y = np.where(s.satisfied, s.conditions.y, np.nan)
        return float(np.nanmax(y) if s.config.objective.maximize else np.nanmin(y))

    def submit(sid, condition):
        in_flight[sid] = (executor.submit(_evaluate_with_id, evaluate, condition, sid), condition, time.monotonic())
        on_event(Event("submitted", sid, len(in_flight), summary.observed, summary.failed, None))

    deferred = []  # failures a spectrum campaign cannot record before its first spectrum

    def record(finished):
        """Observe evaluations ``(sid, condition, result, seconds)`` that finished since the last look."""
        outcomes = _observe_all(camp, [_row(*item[:3]) for item in finished], latest[0])
        done = [(item, failed) for item, failed in zip(finished, outcomes) if failed is not None]
        deferred.extend(item for item, failed in zip(finished, outcomes) if failed is None)
        if deferred and any(failed is False for failed in outcomes):  # the first spectrum fixed the grid
            retry = [deferred.pop() for _ in range(len(deferred))][::-1]
            done += zip(retry, _observe_all(camp, [_row(*item[:3]) for item in retry], camp.snapshot()))
        if not done:
            return
        s = refresh()
        for (sid, _, _, seconds), failed in done:
            summary.observed += 1
            summary.failed += failed
            if seconds is not None:
                summary.seconds_per_evaluation.append(seconds)
            on_event(Event("failed" if failed else "observed", sid, len(in_flight), summary.observed,
                           summary.failed, best(s), seconds))

    # Rows still pending from an earlier runner: a result file left behind is observed, the rest run again
    # (as many as the budget has room for; the others stay pending).
    pending = latest[0].pending
    room = math.inf if budget is None else budget - measurements(latest[0])
    for k, sid in enumerate(pending.ids):
        condition = _conditions(camp, pending.x[k:k + 1], None if pending.pool_ids is None else [pending.pool_ids[k]])[0]
        path = result_path(camp.directory, sid)
        if path.is_file():
            try:
                result = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                result = {STATUS_COLUMN: "failed"}
            record([(sid, condition, result, None)])
            summary.picked_up += 1
        elif summary.redispatched + summary.picked_up < room:
            summary.redispatched += 1
            submit(sid, condition)
    try:
        while True:
            snap = latest[0]
            total = measurements(snap)
            free = parallel - len(in_flight)
            left = math.inf if budget is None else budget - total - len(in_flight)
            if not stop and budget is not None and left <= 0 and total >= budget:
                stop = f"the campaign holds {total} measurements (budget {budget})"
            # Every free slot in one batch (the others in flight pending): one model fit however many
            # evaluations ended since the last look, so the loop keeps up when they end faster than it fits.
            asks = int(min(free, left)) if not stop else 0
            if asks > 0:
                # The stop rules judge rounds of `parallel` runs, once per round (they fit models of their own).
                judge = stop_when_done and total - judged_at >= parallel
                judged_at = total if judge else judged_at
                start = time.perf_counter()
                # Hyper-parameters optimized once per `parallel` new runs, as a synchronous loop's batches would
                # be; between, the GPs condition on every new result.
                kept = camp.ask(asks, method=method, judge=judge, round_size=parallel, refit_after=parallel,
                                snapshot=snap if current[0] else None)
                current[0] = False
                summary.loop_seconds += time.perf_counter() - start
                if stop_when_done and any(n.startswith("the campaign should stop") for n in kept.notes):
                    stop = "the stop rules are met"
                    camp.cancel(kept.suggestion_ids)  # suggested but never to be run
                else:
                    ids = kept.suggestion_ids
                    for sid, cond in zip(ids, _conditions(camp, kept.suggestion.x, kept.suggestion.ids)):
                        submit(sid, cond)
            if not in_flight:
                summary.reason = stop or ("the budget is spent" if budget is not None else "nothing left to run")
                break
            start = time.perf_counter()
            collected = _collect(in_flight, timeout, record)
            summary.loop_seconds += time.perf_counter() - start
            if collected == 0:
                time.sleep(POLL)
    except KeyboardInterrupt:
        summary.reason = f"interrupted; {len(in_flight)} evaluations left pending (run again to resume)"
    summary.total = measurements(refresh())
    return summary


def _collect(in_flight: dict, timeout, record) -> int:
    """Observe every finished (or timed-out) evaluation, together; how many there were."""
    finished = []
    now = time.monotonic()
    for sid in list(in_flight):
        future, condition, start = in_flight[sid]
        late = timeout is not None and now - start > timeout
        if not future.done() and not late:
            continue
        del in_flight[sid]
        if late and not future.done():
            future.cancel()
            result = {STATUS_COLUMN: "failed"}
        else:
            try:
                result = future.result()
            except Exception:  # the evaluation raised: a failed run, not the end of the loop
                result = {STATUS_COLUMN: "failed"}
        finished.append((sid, condition, result, now - start))
    if finished:
        record(finished)
    return len(finished)
