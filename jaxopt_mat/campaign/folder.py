"""The lab notebook on disk: a campaign folder, and the only code that writes it.

    DIR/campaign.toml      the space and the objective (validated copy of the user's config)
    DIR/observations.csv   every measurement, one row each, append-only
    DIR/suggestions/       every batch ``suggest`` returned, numbered
    DIR/state.json         decisions the loop remembers (warm starts, the network step, when each batch
                           was suggested, cancelled suggestions)
    DIR/.lock              serialises writers
    DIR/.candidates.npz    a pool campaign's parsed candidate table (a cache, rebuilt when the table changes)
    DIR/.space.json        the search space's Chebyshev centre (a cache, found again when the config changes)

Writes are atomic (a temporary file in the same folder, flushed and fsynced,
then ``os.replace``), and every writer holds an exclusive lock while it reads,
appends and replaces, so two concurrent ``observe`` calls cannot lose a row.
Readers take a :class:`~jaxopt_mat.campaign.snapshot.Snapshot` instead of
reading the files themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from jaxopt_mat.campaign.config import (BATCH_COLUMN, CONFIG_FILE, STATUS_COLUMN, SUGGESTION_COLUMN, Config, config_to_toml,
                                        load_config)
from jaxopt_mat.campaign.input_cells import input_text
from jaxopt_mat.campaign.pending import file_number
from jaxopt_mat.campaign.recorded import (OBSERVATIONS_FILE, Recorded, Records, parse_records, recorded_arrays,
                                          repeated_batch, split_reserved)
from jaxopt_mat.campaign.tables import Measurements, csv_cell, read_target
from jaxopt_mat.errors import CampaignError, ConfigError, RepeatedBatchError, read_data_file
from jaxopt_mat.pool import Pool, load_pool_cache, parse_pool, read_pool, store_pool_cache

SUGGESTIONS_DIR = "suggestions"
POOL_CACHE_FILE = ".candidates.npz"
SPACE_CACHE_FILE = ".space.json"
STATE_FILE = "state.json"
# Entries of state.json kept by the folder itself: each suggestion file's log, the cancelled suggestion ids.
SUGGESTED_LOG = "suggested"
CANCELLED = "cancelled"


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` so that readers see the old or the new file, never a torn one."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # name the file the caller asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _prepare_pool(config: Config, source_dir: Path):
    """Validate a pool campaign's candidate table (embedding a long table first) and fix its feature list.

    Returns the config as it is saved (explicit ``features``), the files to copy
    into the folder and the parsed :class:`~jaxopt_mat.pool.Pool`.
    """
    src = source_dir / config.candidates
    text = read_data_file(src, "candidate table")
    files = {src.name: text.encode()}
    if config.embedding and "source" not in config.embedding:
        from jaxopt_mat.embedding import embed_long_table  # only long tables need it

        embedded = embed_long_table(text, src.name, features=list(config.features) or None,
                                    n_landmarks=config.embedding.get("landmarks", 16),
                                    lengthscale=config.embedding.get("lengthscale"), seed=config.seed)
        name = src.stem + "_embedded.csv"
        files[name] = embedded.encode()
        pool = parse_pool(embedded, name)
        embedding = {**config.embedding, "source": src.name}
        config = dataclasses.replace(config, candidates=name, features=tuple(pool.names), embedding=embedding)
        return config, files, pool
    measured = config.objective.measured_names + config.outcome_names
    pool = parse_pool(text, src.name, list(config.features) or None, exclude=measured)
    clash = [n for n in measured if n in pool.names]
    if clash:
        raise ConfigError(f"measured column {clash[0]!r} is also a feature column of {src.name}; leave it out of "
                          "features")
    return dataclasses.replace(config, candidates=src.name, features=tuple(pool.names)), files, pool


class CampaignFolder:
    """A campaign folder: its config, and the reads and atomic writes of its files.

    ``observations.csv`` holds the input columns (pool campaigns: ``id``), then
    the objective column(s) (or one column per wavelength of a spectrum
    campaign; the first ``observe`` fixes the grid), then ``batch``.

    Example:
        >>> folder = CampaignFolder.create("runs/agnp", config)
        >>> snap = read_snapshot(folder)
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory).absolute()  # a notebook's later chdir must not move the campaign
        cfg = self.dir / CONFIG_FILE
        if not cfg.is_file():
            raise CampaignError(f"{self.dir} is not a campaign folder (no {CONFIG_FILE}); run 'jaxopt-mat init' first")
        self.config = load_config(cfg, check_space=False)  # checked by the first space()
        self._pool = None
        self._pool_index = None
        self._space = None  # (config, its search space)
        self._target = None  # ((size, mtime), the target spectrum)
        self._records = None  # (config, observations.csv as last parsed)
        self._recorded = None  # (config, the Records it came from, Recorded)

    @classmethod
    def create(cls, directory: Path, config: Config, *, source_dir: Path | None = None) -> "CampaignFolder":
        """Create the folder; files the config names are read relative to ``source_dir`` and copied in."""
        directory = Path(directory).absolute()
        if (directory / CONFIG_FILE).exists():
            raise CampaignError(f"{directory} already holds a campaign; choose another folder")
        if directory.exists() and not directory.is_dir():
            raise CampaignError(f"{directory} exists and is not a folder")
        copies, pool = {}, None
        if config.objective.is_spectrum:
            src = Path(source_dir or ".") / config.objective.target
            read_target(src)  # validate before creating anything
            copies[src.name] = src.read_bytes()
            config = dataclasses.replace(config, objective=dataclasses.replace(config.objective, target=src.name))
        if config.is_pool:
            config, pool_files, pool = _prepare_pool(config, Path(source_dir or "."))
            copies.update(pool_files)
        inputs = []
        for inp in config.inputs:  # descriptor tables travel with the campaign (read again from its copy)
            if inp.descriptors:
                src = Path(source_dir or ".") / inp.descriptors
                try:
                    copies[src.name] = src.read_bytes()
                except OSError as e:
                    raise ConfigError(f"input {inp.name}: cannot read its descriptor file {src}: {e.strerror}") from None
                inp = dataclasses.replace(inp, descriptors=src.name)
            inputs.append(inp)
        config = dataclasses.replace(config, inputs=tuple(inputs))
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SUGGESTIONS_DIR).mkdir(exist_ok=True)
        for name, content in copies.items():
            (directory / name).write_bytes(content)
        if pool is not None:  # parsed once here; the first command loads it instead of parsing the copy again
            store_pool_cache(directory / POOL_CACHE_FILE, directory / config.candidates, list(config.features), pool)
        measured = [] if config.objective.is_spectrum else config.objective.measured_names + config.outcome_names
        header = config.key_columns + measured + [BATCH_COLUMN]
        atomic_write_text(directory / OBSERVATIONS_FILE, ",".join(header) + "\n")
        atomic_write_text(directory / CONFIG_FILE, config_to_toml(config))
        folder = cls(directory)
        folder._pool = pool
        return folder

    @contextlib.contextmanager
    def lock(self):
        """Exclusive lock over the campaign's files for the duration of a write."""
        with open(self.dir / ".lock", "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # -- reads (a snapshot calls these once per command) --------------------
    def pool(self) -> Pool:
        """The candidate table of a pool campaign, from its parsed cache when the table is unchanged."""
        if not self.config.is_pool:
            raise CampaignError(f"{self.dir} is not a pool campaign (no candidates in {CONFIG_FILE})")
        if self._pool is None:
            source, features = self.dir / self.config.candidates, list(self.config.features)
            self._pool = load_pool_cache(self.dir / POOL_CACHE_FILE, source, features)
            if self._pool is None:
                self._pool = read_pool(source, features)
                store_pool_cache(self.dir / POOL_CACHE_FILE, source, features, self._pool)
        return self._pool

    def pool_index(self) -> Mapping[str, int]:
        """A pool campaign's row of each candidate id (built once per command)."""
        if self._pool_index is None:
            self._pool_index = self.pool().index_of()
        return self._pool_index

    def space(self):
        """The configured search space, built once per configuration.

        Its Chebyshev centre solves a linear program (and imports scipy.optimize, 0.4 s);
        the centre is kept in ``.space.json`` with the configuration it belongs to, so a
        later command of an unchanged campaign only checks it.
        """
        if self._space is None or self._space[0] is not self.config:
            path, text = self.dir / SPACE_CACHE_FILE, config_to_toml(self.config)
            try:
                kept = json.loads(path.read_text(encoding="utf-8"))
                center = kept["center"] if kept.get("config") == text else None
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                center = None
            space = self.config.space(center=center)
            if space.n_constraints and (center is None or not np.array_equal(space.center, center)):
                try:  # a cache: a folder that cannot be written still works
                    atomic_write_text(path, json.dumps({"config": text, "center": space.center.tolist()}) + "\n")
                except OSError:
                    pass
            self._space = (self.config, space)
        return self._space[1]

    def read_target(self):
        """A spectrum campaign's target ``(wavelengths, absorbance)``, read again only when its file changed."""
        path = self.dir / self.config.objective.target
        try:
            stat = path.stat()
            stamp = (str(path), stat.st_size, stat.st_mtime_ns)
        except OSError:
            stamp = None
        if stamp is None or self._target is None or self._target[0] != stamp:
            target = read_target(path)
            for a in target:
                a.setflags(write=False)  # shared by every snapshot read from this folder
            self._target = (stamp, target)
        return self._target[1]

    def read_records(self) -> Records:
        """``observations.csv`` parsed into header and rows (the one place that parses it).

        Rows appended since this folder's last read are the only ones parsed again.
        """
        path = self.dir / OBSERVATIONS_FILE
        if not path.is_file():
            raise CampaignError(f"{path} is missing; the campaign folder is incomplete")
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
        earlier = self._records[1] if self._records is not None and self._records[0] is self.config else None
        records = parse_records(text, self.config, path, after=earlier)
        self._records = (self.config, records)
        return records

    def recorded(self) -> Recorded:
        """``observations.csv``'s rows as arrays (read-only), converting only the rows appended since the last read."""
        records = self.read_records()
        pool = self.pool() if self.config.is_pool else None
        index = self.pool_index() if pool is not None else None
        source = self.dir / OBSERVATIONS_FILE
        earlier = self._recorded[1:] if self._recorded is not None and self._recorded[0] is self.config else None
        result = recorded_arrays(records, self.config, source, pool=pool, pool_index=index, earlier=earlier)
        self._recorded = (self.config, records, result)
        return result

    def suggestion_files(self) -> list[Path]:
        """The saved batches, ``suggestions/batch_0001.csv`` onwards, in order."""
        folder = self.dir / SUGGESTIONS_DIR
        files = [p for p in folder.glob("batch_*.csv") if p.stem[6:].isdigit()] if folder.is_dir() else []
        return sorted(files, key=file_number)

    def read_state(self) -> dict:
        """Small decisions the loop must remember (e.g. the round the network step began)."""
        path = self.dir / STATE_FILE
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise CampaignError(f"{path} is not valid JSON; restore it or delete it to reset the loop's state") from None

    # -- writes --------------------------------------------------------------
    def append_observations(self, measurements: Measurements, *, refuse_repeat: bool = False) -> tuple[int, int]:
        """Append validated rows atomically under the lock; return the batch number given to them and the row total.

        A spectrum campaign's first rows fix its wavelength grid (the header of
        ``observations.csv``). With ``refuse_repeat``, rows that repeat an
        earlier batch exactly (the same rows, in any order, every value equal)
        raise :class:`~jaxopt_mat.errors.RepeatedBatchError` and nothing is
        written: the same file observed twice would otherwise count each
        measurement as its own replicate.
        """
        path = self.dir / OBSERVATIONS_FILE
        rows, ids = np.asarray(measurements.values), measurements.ids
        if self.config.is_pool:
            index = self.pool_index()
            if ids is None or len(ids) != rows.shape[0]:
                raise CampaignError("rows of a pool campaign need their candidate ids")
            unknown = [i for i in ids if i not in index]
            if unknown:
                raise CampaignError(f"id {unknown[0]!r} is not in the candidate table {self.config.candidates}")
        failed = measurements.failed if measurements.failed is not None else np.zeros(len(rows), bool)
        sids = measurements.suggestions if measurements.suggestions is not None else [""] * len(rows)
        n_keys = len(self.config.key_columns)
        with self.lock():
            records = self.read_records()
            recorded = self.recorded()
            header, old = records.header, records.text
            first_spectra = self.config.objective.is_spectrum and len(header) == n_keys + 1
            if first_spectra:  # no data yet: the grid comes with these rows
                header = self.config.input_names + list(measurements.columns) + [BATCH_COLUMN]
                old = ",".join(header) + "\n" + old.split("\n", 1)[1]
            has_status = STATUS_COLUMN in header[n_keys:]
            has_suggestion = SUGGESTION_COLUMN in header[n_keys:]
            measured = [h for h in header[n_keys:-1] if h not in (STATUS_COLUMN, SUGGESTION_COLUMN)]
            expected = len(measured) + (0 if ids is not None else n_keys)
            if rows.shape[1] != expected:
                raise CampaignError(f"rows have {rows.shape[1]} values, the campaign expects {expected}")
            if refuse_repeat:
                earlier = repeated_batch(records, recorded, rows, ids, self.config)
                if earlier is not None:
                    raise RepeatedBatchError(f"its {rows.shape[0]} rows repeat batch {earlier} exactly "
                                             "(observed twice?); nothing recorded")
            # The first failure (or suggestion id) adds its column; earlier rows were results (answering no id).
            widen = (measurements.any_failed and not has_status) or (any(sids) and not has_suggestion)
            has_status = has_status or measurements.any_failed
            has_suggestion = has_suggestion or any(sids)
            new_header = (header[:n_keys] + measured + [SUGGESTION_COLUMN] * has_suggestion
                          + [STATUS_COLUMN] * has_status + [BATCH_COLUMN])

            def line(cells, sid, fail, batch):
                return ",".join([*cells, *[csv_cell(sid) if sid else ""] * has_suggestion,
                                 *["failed" if fail else "ok"] * has_status, str(batch)])

            if widen:
                body, old_failed, old_sids = split_reserved(records.body, header, n_keys)
                old = "".join(f"{r}\n" for r in [",".join(map(csv_cell, new_header))] +
                              [line(map(csv_cell, r[:-1]), sid, f, r[-1]) for r, sid, f in zip(body, old_sids, old_failed)])
            batch = (int(recorded.batches.max()) if recorded.batches.size else 0) + 1
            d = 0 if ids is not None else n_keys
            lines = [line([csv_cell(input_text(inp, v)) for inp, v in zip(self.config.inputs, r[:d])]
                          + ["" if np.isnan(v) else repr(float(v)) for v in r[d:]], sid, f, batch)
                     for r, sid, f in zip(rows, sids, failed)]
            if ids is not None:
                lines = [f"{csv_cell(i)},{text}" for i, text in zip(ids, lines)]
            if old and not old.endswith("\n"):
                old += "\n"
            atomic_write_text(path, old + "\n".join(lines) + "\n")
        return batch, len(records.body) + len(lines)

    def save_suggestion(self, make_text: Callable[[int], str], *, after_batch: int) -> tuple[Path, str]:
        """Save the next suggestion file: ``make_text(its number)`` (the number is part of each row's id).

        The file's number, the newest observed batch (``after_batch``) and the
        time are logged in ``state.json`` (``suggested``) under the same lock,
        so an observation can tell whether it came after the suggestion.
        Returns the file and its text.
        """
        folder = self.dir / SUGGESTIONS_DIR
        folder.mkdir(exist_ok=True)
        with self.lock():
            files = self.suggestion_files()
            n = (file_number(files[-1]) if files else 0) + 1
            text = make_text(n)
            path = folder / f"batch_{n:04d}.csv"
            atomic_write_text(path, text)
            state = self.read_state()
            log = state.get(SUGGESTED_LOG) if isinstance(state.get(SUGGESTED_LOG), dict) else {}
            state[SUGGESTED_LOG] = {**log, str(n): {"after_batch": int(after_batch), "at": round(time.time(), 3)}}
            self._write_state(state)
        return path, text

    def cancel(self, suggestion_ids) -> None:
        """Record suggested rows as cancelled (never to be measured): they stop being pending."""
        with self.lock():
            state = self.read_state()
            old = state.get(CANCELLED) if isinstance(state.get(CANCELLED), list) else []
            state[CANCELLED] = sorted(set(old) | set(suggestion_ids))
            self._write_state(state)

    def _write_state(self, state: dict) -> None:
        atomic_write_text(self.dir / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def update_state(self, **changes) -> None:
        with self.lock():
            state = self.read_state()
            state.update(changes)
            self._write_state(state)

    def save_config(self, config: Config) -> None:
        with self.lock():
            atomic_write_text(self.dir / CONFIG_FILE, config_to_toml(config))
        self.config = config
