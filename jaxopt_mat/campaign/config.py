"""The campaign's configuration: the schema of ``campaign.toml``, its validation and its TOML round trip."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import numpy as np

from jaxopt_mat.errors import ConfigError
from jaxopt_mat.space import SearchSpace, constraints_from_strings

CONFIG_FILE = "campaign.toml"
BATCH_COLUMN = "batch"
STATUS_COLUMN = "status"  # a run's outcome: "failed" (no result, measured cells may be empty), "ok" or empty
SUGGESTION_COLUMN = "suggestion"  # the id of the suggested row a measurement answers (b0004-07)
# Columns of observations.csv that no input or objective may be named after.
RESERVED_COLUMNS = (BATCH_COLUMN, "id", STATUS_COLUMN, SUGGESTION_COLUMN)

_TOP_KEYS = {"name", "seed", "inputs", "constraints", "objective", "initial_design", "stopping", "candidates",
             "features", "embedding"}
_EMBEDDING_KEYS = {"landmarks", "lengthscale", "source"}
_STOPPING_KEYS = {"threshold", "stability", "stability_rounds", "accuracy", "plateau_fraction", "plateau_rounds",
                  "min_improvement", "budget"}
_STOPPING_INTS = {"stability_rounds", "plateau_rounds", "budget"}
_INPUT_KEYS = {"name", "low", "high", "extendable", "extend_factor", "unit"}
_CONSTRAINT_KEYS = {"expr"}
_OBJECTIVE_KEYS = {"kind", "name", "direction"}
_SPECTRUM_KEYS = {"kind", "name", "target", "window", "smoothness"}
_PARETO_KEYS = {"kind", "objectives", "reference"}
_PARETO_OBJECTIVE_KEYS = {"name", "direction"}
DEFAULT_WINDOW = (0.7, 1.2)


@dataclasses.dataclass(frozen=True)
class Input:
    name: str
    low: float
    high: float
    extendable: bool = False
    extend_factor: float = 1.5
    unit: str = ""


@dataclasses.dataclass(frozen=True)
class Objective:
    """What is optimised.

    ``kind = "scalar"``: the measured column ``name`` in ``direction``.
    ``kind = "spectrum"``: measured spectra (one column per wavelength) scored
    by the study's loss against the ``target`` file with the intensity
    ``window``; the loss (column ``name``, default ``loss``) is minimised.
    ``kind = "pareto"``: several measured columns, ``objectives`` as
    ``(name, direction)`` pairs; the campaign grows the hypervolume above
    ``reference`` (in the objectives' own units; default: derived from the
    data, see :func:`jaxopt_mat.pareto.default_reference`).
    """

    kind: str
    name: str
    direction: str
    target: str = ""
    window: tuple[float, float] = DEFAULT_WINDOW
    smoothness: float = 0.02
    objectives: tuple[tuple[str, str], ...] = ()
    reference: tuple[float, ...] | None = None

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def is_spectrum(self) -> bool:
        return self.kind == "spectrum"

    @property
    def is_pareto(self) -> bool:
        return self.kind == "pareto"

    @property
    def measured_names(self) -> list[str]:
        """The measured columns of a scalar or Pareto objective (spectra: the wavelengths, not known here)."""
        return [n for n, _ in self.objectives] if self.is_pareto else [self.name]

    @property
    def signs(self) -> np.ndarray:
        """+1 for each maximised objective, -1 for each minimised one (Pareto objectives)."""
        return np.array([1.0 if d == "maximize" else -1.0 for _, d in self.objectives])


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    seed: int
    inputs: tuple[Input, ...]
    constraints: tuple[str, ...]
    objective: Objective
    initial_design: int
    stopping: dict = dataclasses.field(default_factory=dict)
    candidates: str = ""
    features: tuple[str, ...] = ()
    embedding: dict = dataclasses.field(default_factory=dict)

    @property
    def is_pool(self) -> bool:
        return bool(self.candidates)

    @property
    def input_names(self) -> list[str]:
        """The model's inputs: the inputs' names, or a pool's feature columns."""
        return list(self.features) if self.is_pool else [i.name for i in self.inputs]

    @property
    def key_columns(self) -> list[str]:
        """What identifies a measured condition in observations.csv: the inputs, or a pool's ``id``."""
        return ["id"] if self.is_pool else self.input_names

    def space(self) -> SearchSpace:
        if self.is_pool:
            raise ConfigError("a pool campaign's space comes from its candidate table (the snapshot of its folder has it)")
        names = self.input_names
        A, b = constraints_from_strings(self.constraints, names)
        return SearchSpace([i.low for i in self.inputs], [i.high for i in self.inputs], names=names, A=A, b=b)


def _check_keys(table: dict, allowed: set, where: str):
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _named_tables(items: list, label: str, allowed: set, required: tuple):
    """Yield ``(where, table)`` for each entry of an array of tables, checking keys and the ``name``."""
    for k, item in enumerate(items, 1):
        where = f"{label} #{k}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a table")
        _check_keys(item, allowed, where)
        for key in required:
            if key not in item:
                raise ConfigError(f"{where}: missing '{key}'")
        nm = item["name"]
        if not isinstance(nm, str) or not nm.isidentifier():
            raise ConfigError(f"{where}: name must be an identifier (letters, digits, _), got {nm!r}")
        yield where, item


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def parse_config(data: dict, *, source: str = CONFIG_FILE) -> Config:
    """Validate a config table (as read from TOML) and return a :class:`Config`.

    Raises:
        ConfigError: naming the offending key or value.
        InfeasibleError: if the constraints leave no feasible point.
    """
    _check_keys(data, _TOP_KEYS, source)
    name = data.get("name", "campaign")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name must be a non-empty string")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{source}: seed must be a non-negative integer, got {seed!r}")
    candidates = data.get("candidates", "")
    if not isinstance(candidates, str):
        raise ConfigError(f"{source}: candidates must be a file name, e.g. \"candidates.csv\"")
    raw_inputs = data.get("inputs", [] if candidates else None)
    if candidates and raw_inputs:
        raise ConfigError(f"{source}: a pool campaign (candidates = ...) takes its inputs from the candidate table; "
                          "remove the [[inputs]] tables")
    if not candidates and (not isinstance(raw_inputs, list) or not raw_inputs):
        raise ConfigError(f"{source}: at least one [[inputs]] table is required (or candidates = \"file.csv\")")
    inputs = []
    for where, item in _named_tables(raw_inputs, f"{source}: inputs", _INPUT_KEYS, ("name", "low", "high")):
        nm = item["name"]
        where = f"{source}: input {nm}"
        if nm in RESERVED_COLUMNS:
            raise ConfigError(f"{where}: the name {nm!r} is reserved for a column of observations.csv")
        low = _number(item["low"], f"{where}: low")
        high = _number(item["high"], f"{where}: high")
        if not low < high:
            raise ConfigError(f"{where}: low = {low:g} must be below high = {high:g}")
        extendable = item.get("extendable", False)
        if not isinstance(extendable, bool):
            raise ConfigError(f"{where}: extendable must be true or false")
        factor = _number(item.get("extend_factor", 1.5), f"{where}: extend_factor")
        if factor <= 1.0:
            raise ConfigError(f"{where}: extend_factor must be above 1, got {factor:g}")
        unit = item.get("unit", "")
        if not isinstance(unit, str):
            raise ConfigError(f"{where}: unit must be a string")
        inputs.append(Input(nm, low, high, extendable, factor, unit))
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: input names must be unique, got {names}")
    raw_cons = data.get("constraints", [])
    if candidates and raw_cons:
        raise ConfigError(f"{source}: constraints apply to continuous inputs, not to a pool of candidates")
    if not isinstance(raw_cons, list):
        raise ConfigError(f"{source}: constraints must be a list of [[constraints]] tables")
    constraints = []
    for k, item in enumerate(raw_cons, 1):
        if not isinstance(item, dict) or "expr" not in item or not isinstance(item["expr"], str):
            raise ConfigError(f"{source}: constraints #{k} needs expr = \"... <= number\"")
        _check_keys(item, _CONSTRAINT_KEYS, f"{source}: constraints #{k}")
        constraints.append(item["expr"])
    raw_obj = data.get("objective")
    if not isinstance(raw_obj, dict):
        raise ConfigError(f"{source}: an [objective] table is required")
    features = data.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) and f for f in features):
        raise ConfigError(f"{source}: features must be a list of column names")
    if features and not candidates:
        raise ConfigError(f"{source}: features name columns of a candidate table; set candidates = \"file.csv\"")
    if len(set(features)) != len(features):
        raise ConfigError(f"{source}: features must be unique, got {features}")
    if "id" in features:
        raise ConfigError(f"{source}: 'id' names the candidates and cannot be a feature")
    embedding = data.get("embedding", {})
    if not isinstance(embedding, dict):
        raise ConfigError(f"{source}: [embedding] must be a table")
    _check_keys(embedding, _EMBEDDING_KEYS, f"{source}: embedding")
    if embedding and not candidates:
        raise ConfigError(f"{source}: [embedding] turns a long candidate table into features; set candidates too")
    if "landmarks" in embedding:
        lm = embedding["landmarks"]
        if isinstance(lm, bool) or not isinstance(lm, int) or lm < 1:
            raise ConfigError(f"{source}: embedding.landmarks must be a positive integer, got {lm!r}")
    if "lengthscale" in embedding and _number(embedding["lengthscale"], f"{source}: embedding.lengthscale") <= 0:
        raise ConfigError(f"{source}: embedding.lengthscale must be positive")
    objective = _parse_objective(raw_obj, names + list(features), source)
    if candidates and objective.is_spectrum:
        raise ConfigError(f"{source}: spectrum objectives need continuous [[inputs]], not a candidate pool")
    initial = data.get("initial_design", max(5, 2 * max(len(inputs), 1)) if not candidates else 10)
    if isinstance(initial, bool) or not isinstance(initial, int) or initial < 2:
        raise ConfigError(f"{source}: initial_design must be an integer of at least 2, got {initial!r}")
    stopping = _parse_stopping(data.get("stopping", {}), source)
    config = Config(name, seed, tuple(inputs), tuple(constraints), objective, initial, stopping, candidates,
                    tuple(features), dict(embedding))
    if not candidates:
        config.space()  # parses constraints and checks feasibility
    return config


def _parse_stopping(raw, source: str) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [stopping] must be a table")
    _check_keys(raw, _STOPPING_KEYS, f"{source}: stopping")
    out = {}
    for key, value in raw.items():
        if key in _STOPPING_INTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{source}: stopping.{key} must be a positive integer, got {value!r}")
            out[key] = value
        else:
            out[key] = _number(value, f"{source}: stopping.{key}")
    return out


def _parse_pareto(raw: dict, names: list[str], source: str) -> Objective:
    _check_keys(raw, _PARETO_KEYS, f"{source}: objective")
    items = raw.get("objectives")
    if not isinstance(items, list) or len(items) < 2:
        raise ConfigError(f"{source}: a pareto objective needs at least two [[objective.objectives]] tables")
    objectives = []
    for where, item in _named_tables(items, f"{source}: objective.objectives", _PARETO_OBJECTIVE_KEYS, ("name",)):
        nm = item["name"]
        if nm in names or nm in RESERVED_COLUMNS:
            raise ConfigError(f"{where}: name {nm!r} clashes with an input, a feature or a reserved column")
        direction = item.get("direction", "maximize")
        if direction not in ("maximize", "minimize"):
            raise ConfigError(f"{where}: direction must be 'maximize' or 'minimize', got {direction!r}")
        objectives.append((nm, direction))
    if len({n for n, _ in objectives}) != len(objectives):
        raise ConfigError(f"{source}: objective names must be unique")
    ref = raw.get("reference")
    if ref is not None:
        if not isinstance(ref, list) or len(ref) != len(objectives):
            raise ConfigError(f"{source}: objective reference must list one number per objective ({len(objectives)})")
        ref = tuple(_number(v, f"{source}: objective reference") for v in ref)
    return Objective("pareto", "hypervolume", "maximize", objectives=tuple(objectives), reference=ref)


def _parse_objective(raw: dict, names: list[str], source: str) -> Objective:
    kind = raw.get("kind", "scalar")
    if kind not in ("scalar", "spectrum", "pareto"):
        raise ConfigError(f"{source}: objective kind {kind!r} is not supported (supported: 'scalar', 'spectrum', "
                          "'pareto')")
    if kind == "pareto":
        return _parse_pareto(raw, names, source)
    _check_keys(raw, _OBJECTIVE_KEYS if kind == "scalar" else _SPECTRUM_KEYS, f"{source}: objective")
    obj_name = raw.get("name", "loss" if kind == "spectrum" else None)
    if not isinstance(obj_name, str) or not obj_name.isidentifier():
        raise ConfigError(f"{source}: objective name must be an identifier, got {obj_name!r}")
    if obj_name in names or obj_name in RESERVED_COLUMNS:
        raise ConfigError(f"{source}: objective name {obj_name!r} clashes with an input or reserved column")
    if kind == "scalar":
        direction = raw.get("direction", "maximize")
        if direction not in ("maximize", "minimize"):
            raise ConfigError(f"{source}: objective direction must be 'maximize' or 'minimize', got {direction!r}")
        return Objective(kind, obj_name, direction)
    target = raw.get("target")
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{source}: a spectrum objective needs target = \"file.csv\" (wavelength, absorbance)")
    window = raw.get("window", list(DEFAULT_WINDOW))
    if (not isinstance(window, list) or len(window) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in window)
            or not 0 < window[0] < window[1]):
        raise ConfigError(f"{source}: objective window must be [low, high] with 0 < low < high, got {window!r}")
    smooth = _number(raw.get("smoothness", 0.02), f"{source}: objective smoothness")
    if smooth <= 0:
        raise ConfigError(f"{source}: objective smoothness must be positive")
    return Objective(kind, obj_name, "minimize", target, (float(window[0]), float(window[1])), smooth)


def load_config(path: Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name}: not valid TOML ({e})") from None
    return parse_config(data, source=path.name)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_to_toml(config: Config) -> str:
    """Render a config as TOML that :func:`parse_config` reads back to an equal config."""
    out = [f"name = {_toml_value(config.name)}", f"seed = {config.seed}",
           f"initial_design = {config.initial_design}"]
    if config.is_pool:
        out.append(f"candidates = {_toml_value(config.candidates)}")
        out.append("features = [" + ", ".join(_toml_value(f) for f in config.features) + "]")
    out.append("")
    for i in config.inputs:
        out += ["[[inputs]]", f"name = {_toml_value(i.name)}", f"low = {_toml_value(i.low)}",
                f"high = {_toml_value(i.high)}"]
        if i.extendable:
            out += ["extendable = true", f"extend_factor = {_toml_value(i.extend_factor)}"]
        if i.unit:
            out.append(f"unit = {_toml_value(i.unit)}")
        out.append("")
    for c in config.constraints:
        out += ["[[constraints]]", f"expr = {_toml_value(c)}", ""]
    o = config.objective
    out += ["[objective]", f"kind = {_toml_value(o.kind)}", f"name = {_toml_value(o.name)}"]
    if o.is_pareto:
        out = out[:-1]
        if o.reference is not None:
            out.append("reference = [" + ", ".join(repr(v) for v in o.reference) + "]")
        out.append("")
        for nm, direction in o.objectives:
            out += ["[[objective.objectives]]", f"name = {_toml_value(nm)}", f"direction = {_toml_value(direction)}", ""]
    elif o.is_spectrum:
        out += [f"target = {_toml_value(o.target)}", f"window = [{o.window[0]!r}, {o.window[1]!r}]",
                f"smoothness = {o.smoothness!r}", ""]
    else:
        out += [f"direction = {_toml_value(o.direction)}", ""]
    if config.embedding:
        out.append("[embedding]")
        out += [f"{k} = {_toml_value(v)}" for k, v in sorted(config.embedding.items())]
        out.append("")
    if config.stopping:
        out.append("[stopping]")
        out += [f"{k} = {_toml_value(v)}" for k, v in sorted(config.stopping.items())]
        out.append("")
    return "\n".join(out)


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
