"""The campaign's configuration: the schema of ``campaign.toml``, its validation and its TOML round trip."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from jaxopt_mat.campaign.objective import (DEFAULT_WINDOW, Objective, OutcomeConstraint, outcome_constraints_toml,
                                           parse_objective, parse_outcome_constraints)
from jaxopt_mat.campaign.schema import (BATCH_COLUMN, CONFIG_FILE, RESERVED_COLUMNS, STATUS_COLUMN, SUGGESTION_COLUMN,
                                       check_keys, named_tables, number)
from jaxopt_mat.errors import ConfigError
from jaxopt_mat.input_kinds import KINDS, InputKind
from jaxopt_mat.constraint_text import constraints_from_strings
from jaxopt_mat.space import SearchSpace

__all__ = ["BATCH_COLUMN", "CONFIG_FILE", "DEFAULT_WINDOW", "RESERVED_COLUMNS", "STATUS_COLUMN", "SUGGESTION_COLUMN",
           "Config", "Input", "Objective", "OutcomeConstraint", "config_to_toml", "load_config", "parse_config", "widen_bound"]

_TOP_KEYS = {"name", "seed", "inputs", "constraints", "objective", "initial_design", "stopping", "candidates",
             "features", "embedding", "outcome_constraints"}
_EMBEDDING_KEYS = {"landmarks", "lengthscale", "source"}
_STOPPING_KEYS = {"threshold", "stability", "stability_rounds", "accuracy", "plateau_fraction", "plateau_rounds",
                  "min_improvement", "budget"}
_STOPPING_INTS = {"stability_rounds", "plateau_rounds", "budget"}
_INPUT_KEYS = {"name", "low", "high", "extendable", "extend_factor", "unit", "kind", "values", "encoding",
               "descriptors", "smiles"}
_ENCODINGS = ("onehot", "descriptors", "rdkit")
_CONSTRAINT_KEYS = {"expr"}


@dataclasses.dataclass(frozen=True)
class Input:
    """One ``[[inputs]]`` table.

    ``kind`` is ``continuous`` (``low``..``high``), ``integer`` (whole numbers
    ``low``..``high``), ``discrete`` (``values``: the allowed levels) or
    ``categorical`` (``values``: the labels; ``low``/``high`` are then 0 and
    k - 1, the label indices). A categorical input is encoded for the model
    one-hot, or by a row of numbers per label (``encoding = "descriptors"``:
    ``descriptor_rows``, read from the ``descriptors`` file; ``"rdkit"``: from
    the labels as SMILES).
    """

    name: str
    low: float
    high: float
    extendable: bool = False
    extend_factor: float = 1.5
    unit: str = ""
    kind: str = "continuous"
    values: tuple = ()
    encoding: str = "onehot"
    descriptors: str = ""
    descriptor_rows: tuple = dataclasses.field(default=(), compare=False, repr=False)
    smiles: tuple = ()  # rdkit encoding: (label, SMILES) pairs when the labels are names, not SMILES

    def input_kind(self, fixed: float | None = None) -> InputKind:
        if self.kind == "categorical":
            return InputKind("categorical", labels=tuple(self.values), descriptors=self.descriptor_rows, fixed=fixed)
        if self.kind == "discrete":
            return InputKind("discrete", levels=tuple(float(v) for v in self.values), fixed=fixed)
        return InputKind(self.kind, fixed=fixed)


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
    outcome_constraints: tuple[OutcomeConstraint, ...] = ()

    @property
    def is_pool(self) -> bool:
        return bool(self.candidates)

    @property
    def input_names(self) -> list[str]:
        """The model's inputs: the inputs' names, or a pool's feature columns."""
        return list(self.features) if self.is_pool else [i.name for i in self.inputs]

    @property
    def outcome_names(self) -> list[str]:
        """The measured columns that outcome constraints name (each once, in order of first mention)."""
        return list(dict.fromkeys(c.name for c in self.outcome_constraints))

    @property
    def key_columns(self) -> list[str]:
        """What identifies a measured condition in observations.csv: the inputs, or a pool's ``id``."""
        return ["id"] if self.is_pool else self.input_names

    def space(self, fixed: dict | None = None, *, center=None) -> SearchSpace:
        """The search space; ``fixed`` maps input names to the value (a label's index) every point takes.

        ``center``: its Chebyshev centre as found before (:class:`~jaxopt_mat.space.SearchSpace`'s).
        """
        if self.is_pool:
            raise ConfigError("a pool campaign's space comes from its candidate table (the snapshot of its folder has it)")
        names = self.input_names
        fixed = fixed or {}
        A, b = constraints_from_strings(self.constraints, names)
        kinds = [i.input_kind(fixed.get(i.name)) for i in self.inputs]
        return SearchSpace([i.low for i in self.inputs], [i.high for i in self.inputs], names=names, A=A, b=b,
                           kinds=kinds, center=center)


def parse_config(data: dict, *, source: str = CONFIG_FILE, base_dir: Path | None = None,
                 check_space: bool = True) -> Config:
    """Validate a config table (as read from TOML) and return a :class:`Config`.

    ``base_dir`` is where files the config names (a descriptor table) are read from.

    Raises:
        ConfigError: naming the offending key or value.
        InfeasibleError: if the constraints leave no feasible point.
    """
    check_keys(data, _TOP_KEYS, source)
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
    inputs = [_parse_input(item, source, base_dir) for _, item in
              named_tables(raw_inputs, f"{source}: inputs", _INPUT_KEYS, ("name",))]
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
        check_keys(item, _CONSTRAINT_KEYS, f"{source}: constraints #{k}")
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
    check_keys(embedding, _EMBEDDING_KEYS, f"{source}: embedding")
    if embedding and not candidates:
        raise ConfigError(f"{source}: [embedding] turns a long candidate table into features; set candidates too")
    if "landmarks" in embedding:
        lm = embedding["landmarks"]
        if isinstance(lm, bool) or not isinstance(lm, int) or lm < 1:
            raise ConfigError(f"{source}: embedding.landmarks must be a positive integer, got {lm!r}")
    if "lengthscale" in embedding and number(embedding["lengthscale"], f"{source}: embedding.lengthscale") <= 0:
        raise ConfigError(f"{source}: embedding.lengthscale must be positive")
    objective = parse_objective(raw_obj, names + list(features), source)
    if candidates and objective.is_spectrum:
        raise ConfigError(f"{source}: spectrum objectives need continuous [[inputs]], not a candidate pool")
    initial = data.get("initial_design", max(5, 2 * max(len(inputs), 1)) if not candidates else 10)
    if isinstance(initial, bool) or not isinstance(initial, int) or initial < 2:
        raise ConfigError(f"{source}: initial_design must be an integer of at least 2, got {initial!r}")
    stopping = _parse_stopping(data.get("stopping", {}), source)
    outcomes = parse_outcome_constraints(data.get("outcome_constraints", []), objective, names + list(features),
                                         source)
    config = Config(name, seed, tuple(inputs), tuple(constraints), objective, initial, stopping, candidates,
                    tuple(features), dict(embedding), outcomes)
    if check_space and not candidates:
        config.space()  # parses constraints and checks feasibility
    return config


def _parse_input(item: dict, source: str, base_dir: Path | None) -> Input:
    nm = item["name"]
    where = f"{source}: input {nm}"
    if nm in RESERVED_COLUMNS:
        raise ConfigError(f"{where}: the name {nm!r} is reserved for a column of observations.csv")
    kind = item.get("kind", "continuous")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    allowed = {"continuous": {"low", "high", "extendable", "extend_factor", "unit"}, "integer": {"low", "high", "unit"},
               "discrete": {"values", "unit"}, "categorical": {"values", "encoding", "descriptors", "smiles"}}[kind]
    extra = sorted(set(item) - allowed - {"name", "kind"})
    if extra:
        raise ConfigError(f"{where}: {', '.join(extra)} do(es) not apply to a {kind} input "
                          f"(it takes {', '.join(sorted(allowed))})")
    unit = item.get("unit", "")
    if not isinstance(unit, str):
        raise ConfigError(f"{where}: unit must be a string")
    if kind in ("continuous", "integer"):
        for key in ("low", "high"):
            if key not in item:
                raise ConfigError(f"{where}: missing '{key}'")
        low = number(item["low"], f"{where}: low")
        high = number(item["high"], f"{where}: high")
        if kind == "integer" and (low != round(low) or high != round(high)):
            raise ConfigError(f"{where}: an integer input's low and high must be whole numbers")
        if not low < high:
            raise ConfigError(f"{where}: low = {low:g} must be below high = {high:g}")
        extendable = item.get("extendable", False)
        if not isinstance(extendable, bool):
            raise ConfigError(f"{where}: extendable must be true or false")
        factor = number(item.get("extend_factor", 1.5), f"{where}: extend_factor")
        if factor <= 1.0:
            raise ConfigError(f"{where}: extend_factor must be above 1, got {factor:g}")
        return Input(nm, low, high, extendable, factor, unit, kind)
    values = item.get("values")
    if not isinstance(values, list) or len(values) < 2:
        raise ConfigError(f"{where}: a {kind} input needs values = [...] with at least two entries")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}: values must be distinct, got {values}")
    if kind == "discrete":
        levels = sorted(number(v, f"{where}: a value") for v in values)
        return Input(nm, levels[0], levels[-1], unit=unit, kind=kind, values=tuple(levels))
    if not all(isinstance(v, str) and v != "" for v in values):
        raise ConfigError(f"{where}: a categorical input's values are its labels (non-empty strings), got {values}")
    encoding = item.get("encoding", "onehot")
    if encoding not in _ENCODINGS:
        raise ConfigError(f"{where}: encoding must be one of {', '.join(_ENCODINGS)}, got {encoding!r}")
    descriptors = item.get("descriptors", "")
    if (encoding == "descriptors") != bool(descriptors):
        raise ConfigError(f"{where}: encoding = \"descriptors\" goes with descriptors = \"file.csv\" (a column "
                          f"{nm} of labels and numeric descriptor columns)")
    if not isinstance(descriptors, str):
        raise ConfigError(f"{where}: descriptors must be a file name")
    rows: tuple = ()
    if encoding == "descriptors":
        from jaxopt_mat.campaign.descriptors import read_descriptors

        rows = read_descriptors((base_dir or Path(".")) / descriptors, nm, tuple(values))
    smiles = item.get("smiles", {})
    if smiles and encoding != "rdkit":
        raise ConfigError(f"{where}: a [inputs.smiles] table goes with encoding = \"rdkit\"")
    if not isinstance(smiles, dict) or not all(isinstance(v, str) and v for v in smiles.values()):
        raise ConfigError(f"{where}: smiles must be a table of label = \"SMILES\"")
    if smiles and sorted(smiles) != sorted(values):
        missing = [v for v in values if v not in smiles] or sorted(set(smiles) - set(values))
        raise ConfigError(f"{where}: the smiles table must give every label once; check {', '.join(missing)}")
    if encoding == "rdkit":
        from jaxopt_mat.campaign.descriptors import rdkit_descriptors

        rows = rdkit_descriptors(tuple(smiles.get(v, v) for v in values), where)
    return Input(nm, 0.0, float(len(values) - 1), kind=kind, values=tuple(values), encoding=encoding,
                 descriptors=descriptors, descriptor_rows=rows, smiles=tuple((v, smiles[v]) for v in values if smiles))


def _parse_stopping(raw, source: str) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [stopping] must be a table")
    check_keys(raw, _STOPPING_KEYS, f"{source}: stopping")
    out = {}
    for key, value in raw.items():
        if key in _STOPPING_INTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{source}: stopping.{key} must be a positive integer, got {value!r}")
            out[key] = value
        else:
            out[key] = number(value, f"{source}: stopping.{key}")
    return out


def load_config(path: Path, *, check_space: bool = True) -> Config:
    """Read and validate a config file; without ``check_space`` the constraints' feasibility (a linear
    program) is left to the first ``config.space()``."""
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
    return parse_config(data, source=path.name, base_dir=path.parent, check_space=check_space)


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
        out += ["[[inputs]]", f"name = {_toml_value(i.name)}"]
        if i.kind != "continuous":
            out.append(f"kind = {_toml_value(i.kind)}")
        if i.kind in ("continuous", "integer"):
            lo, hi = (int(i.low), int(i.high)) if i.kind == "integer" else (i.low, i.high)
            out += [f"low = {_toml_value(lo)}", f"high = {_toml_value(hi)}"]
        else:
            out.append("values = [" + ", ".join(_toml_value(v) for v in i.values) + "]")
        if i.kind == "categorical" and i.encoding != "onehot":
            out.append(f"encoding = {_toml_value(i.encoding)}")
        if i.descriptors:
            out.append(f"descriptors = {_toml_value(i.descriptors)}")
        if i.smiles:
            out.append("smiles = {" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in i.smiles) + "}")
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
    out += outcome_constraints_toml(config.outcome_constraints)
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
