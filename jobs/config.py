"""Typed job configuration: YAML in, frozen dataclasses out, validated before Spark starts.

Every error names the file and the key path (``conf/jobs/churn.yaml: output.scored: ...``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENGINES = ("auto", "embedded", "native")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODEL_URI = re.compile(r"^(models:/[^/@]+(@[\w-]+|/\d+)|runs:/[0-9a-zA-Z]+/.+|file:/.+|/.+)$")


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the key path."""


class _Where:
    """Tracks the file and key path so every error can say where it is."""

    def __init__(self, source: str, path: str = "") -> None:
        self.source, self.path = source, path

    def __truediv__(self, key: str | int) -> _Where:
        if isinstance(key, int):
            return _Where(self.source, f"{self.path}[{key}]")
        return _Where(self.source, f"{self.path}.{key}" if self.path else key)

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.path or '<root>'}: {message}")


def _mapping(raw: Any, where: _Where, allowed: set[str]) -> Mapping[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise where.error(f"expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise (where / unknown[0]).error(f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return raw


def _req(raw: Mapping[str, Any], key: str, where: _Where) -> Any:
    if raw.get(key) in (None, ""):
        raise (where / key).error("is required")
    return raw[key]


def _str(value: Any, where: _Where) -> str:
    if not isinstance(value, str) or not value:
        raise where.error(f"expected a non-empty string, got {value!r}")
    return value


def _ident(value: Any, where: _Where) -> str:
    value = _str(value, where)
    if not _IDENT.match(value):
        raise where.error(f"{value!r} is not a valid column name")
    return value


def _idents(value: Any, where: _Where) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise where.error(f"expected a list of column names, got {value!r}")
    return tuple(_ident(v, where / i) for i, v in enumerate(value))


def _number(value: Any, where: _Where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(f"expected a number, got {value!r}")
    return float(value)


def _positive_int(value: Any, where: _Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise where.error(f"expected a positive integer, got {value!r}")
    return value


def _table_path(value: Any, where: _Where) -> str:
    """Local relative paths are made absolute against the working directory; URIs pass through."""
    value = _str(value, where)
    if "://" in value:
        return value.rstrip("/")
    return str(Path(value).expanduser().resolve())


@dataclass(frozen=True)
class InputConfig:
    path: str
    partition_by: tuple[str, ...]


@dataclass(frozen=True)
class OutputConfig:
    scored: str
    quarantine: str
    stats: str
    runs: str
    passthrough: tuple[str, ...] = ()
    reports: str | None = None  # the run reports' folder; parse_config fills in reports/ beside the stats table


@dataclass(frozen=True)
class ModelConfig:
    uri: str
    tracking_uri: str | None = None
    features: tuple[str, ...] = ()  # empty: take them from the model signature


@dataclass(frozen=True)
class RuleConfig:
    """One row rule. ``kind`` is not_null | range | allowed_values | regex | unique | expression."""

    kind: str
    name: str
    column: str | None = None
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] = ()
    expr: str | None = None
    pattern: str | None = None
    columns: tuple[str, ...] = ()  # unique: the key columns
    allow_nan: bool = False  # range: NaN and +/-inf pass instead of breaking the rule

    @property
    def read_columns(self) -> tuple[str, ...]:
        """The input columns the rule reads (an expression's are known only to Spark)."""
        return self.columns or ((self.column,) if self.column else ())


@dataclass(frozen=True)
class StepConfig:
    """One preprocessing step: ``kind`` (the YAML ``step``), its column, and its other keys.

    ``params`` holds the other keys as sorted (key, value) pairs with lists as tuples and
    mappings as tuples of pairs, so the step is immutable and compares by value.
    """

    kind: str
    column: str | None
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)

    def to_spec(self) -> dict[str, Any]:
        """The step as it is written in YAML (and in a model's ``lakescore/pipeline.json``)."""
        spec: dict[str, Any] = {"step": self.kind}
        if self.column is not None:
            spec["column"] = self.column
        for key, value in self.params:
            if key == "mapping" or (self.kind == "rename" and key == "columns"):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            spec[key] = value
        if "reference" in spec:  # fill_null from a training statistic is written value: {reference: ...}
            spec["value"] = {"reference": spec.pop("reference")}
        return spec


@dataclass(frozen=True)
class ContractConfig:
    """Declared input columns and their types (Spark type names), checked before anything runs."""

    columns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ScoringConfig:
    batch_size: int = 100_000


GATE_MODES = ("fail", "warn")
ALL_COLUMNS = "*"  # in a per-column threshold mapping: every column not named


@dataclass(frozen=True)
class GateConfig:
    """Quality gate thresholds, checked per partition before its scores are published.

    ``max_null_rate`` and ``max_psi`` are (column, limit) pairs; column ``*`` stands for every
    column not named (features; for ``max_psi`` also the model's outputs).
    """

    mode: str = "fail"
    min_rows: int | None = None
    max_quarantine_rate: float | None = None
    max_null_rate: tuple[tuple[str, float], ...] = ()
    max_psi: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in GATE_MODES:
            raise ValueError(f"gate mode must be one of {GATE_MODES}, got {self.mode!r}")

    @property
    def enabled(self) -> bool:
        return self.min_rows is not None or self.max_quarantine_rate is not None or bool(self.max_null_rate or self.max_psi)


@dataclass(frozen=True)
class StatsConfig:
    top_k: int = 10  # categories counted one by one; the rest are other_count


@dataclass(frozen=True)
class DriftConfig:
    """What baseline drift compares with when the model logged no training reference."""

    reference_partition: str | None = None  # e.g. "ds=2024-06-01" of the input table


@dataclass(frozen=True)
class SparkConfig:
    master: str | None = None
    app_name: str = "lakescore"
    conf: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class JobConfig:
    name: str
    source: str
    engine: str
    keys: tuple[str, ...]
    input: InputConfig
    output: OutputConfig
    model: ModelConfig
    rules: tuple[RuleConfig, ...] = ()
    preprocessing: tuple[StepConfig, ...] | None = None  # None: not declared, the model's pipeline is used
    preprocessing_override: bool = False
    contract: ContractConfig = field(default_factory=ContractConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)

    @property
    def config_hash(self) -> str:
        """A stable hash of everything that changes what a run computes (not where it runs)."""
        payload = asdict(self)
        payload.pop("source")
        payload.pop("spark")
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


RULE_KINDS = {
    "not_null": {"column"},
    "range": {"column", "min", "max", "allow_nan"},
    "allowed_values": {"column", "values"},
    "regex": {"column", "pattern"},
    "unique": {"columns"},
    "expression": {"expr"},
}
# the keys of each step besides ``step``; ``column`` is required where listed
STEP_KINDS = {
    "cast": {"column", "to"},
    "fill_null": {"column", "value"},
    "clip": {"column", "lower", "upper"},
    "log1p": {"column"},
    "bucketize": {"column", "splits"},
    "map_categories": {"column", "mapping", "other"},
    "derive": {"column", "expr"},
    "select": {"columns"},
    "rename": {"columns"},
}
CAST_TYPES = ("double", "float", "long", "int", "string", "boolean", "date", "timestamp")
REFERENCE_STATISTICS = ("median", "mean", "min", "max", "mode")
# type names a contract may declare -> Spark's simpleString for them
CONTRACT_TYPES = {
    "boolean": "boolean",
    "byte": "tinyint", "tinyint": "tinyint",
    "short": "smallint", "smallint": "smallint",
    "int": "int", "integer": "int",
    "long": "bigint", "bigint": "bigint",
    "float": "float",
    "double": "double",
    "string": "string",
    "binary": "binary",
    "date": "date",
    "timestamp": "timestamp",
}


def _bool(value: Any, where: _Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"expected true or false, got {value!r}")
    return value


def _distinct_columns(raw: Mapping[str, Any], where: _Where) -> tuple[str, ...]:
    """``columns``: a non-empty list of column names, none twice."""
    columns = _idents(_req(raw, "columns", where), where / "columns")
    if not columns:
        raise (where / "columns").error("expected at least one column")
    if len(set(columns)) != len(columns):
        raise (where / "columns").error(f"columns repeat: {list(columns)}")
    return columns


def _rule(raw: Any, where: _Where) -> RuleConfig:
    kind = _str(_mapping(raw, where, {"type", "name", *set().union(*RULE_KINDS.values())}).get("type"), where / "type")
    if kind not in RULE_KINDS:
        raise (where / "type").error(f"unknown rule type {kind!r} (known: {', '.join(RULE_KINDS)})")
    raw = _mapping(raw, where, {"type", "name"} | RULE_KINDS[kind])
    column = _ident(_req(raw, "column", where), where / "column") if "column" in RULE_KINDS[kind] else None
    if kind == "unique":
        columns = _distinct_columns(raw, where)
        name = _ident(raw.get("name") or "unique_" + "_".join(columns), where / "name")
        return RuleConfig(kind, name, columns=columns)
    name = _ident(raw.get("name") or f"{kind}_{column}", where / "name")
    if kind == "range":
        lo = _number(raw["min"], where / "min") if raw.get("min") is not None else None
        hi = _number(raw["max"], where / "max") if raw.get("max") is not None else None
        if lo is None and hi is None:
            raise where.error("a range rule needs min, max or both")
        if lo is not None and hi is not None and lo > hi:
            raise (where / "min").error(f"min {lo} is greater than max {hi}")
        allow_nan = _bool(raw.get("allow_nan", False), where / "allow_nan")
        return RuleConfig(kind, name, column, min=lo, max=hi, allow_nan=allow_nan)
    if kind == "allowed_values":
        values = _req(raw, "values", where)
        if not isinstance(values, list) or not values:
            raise (where / "values").error("expected a non-empty list")
        return RuleConfig(kind, name, column, values=tuple(values))
    if kind == "regex":
        pattern = _str(_req(raw, "pattern", where), where / "pattern")
        try:  # Spark uses Java regexes; Python's parser catches the errors both share before Spark starts
            re.compile(pattern)
        except re.error as exc:
            raise (where / "pattern").error(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return RuleConfig(kind, name, column, pattern=pattern)
    if kind == "expression":
        return RuleConfig(kind, name, expr=_str(_req(raw, "expr", where), where / "expr"))
    return RuleConfig(kind, name, column)


def _scalar(value: Any, where: _Where) -> Any:
    if not isinstance(value, (int, float, str, bool)):
        raise where.error(f"expected a scalar, got {value!r}")
    return value


def _step(raw: Any, where: _Where) -> StepConfig:
    kind = _str(_mapping(raw, where, {"step", *set().union(*STEP_KINDS.values())}).get("step"), where / "step")
    if kind not in STEP_KINDS:
        raise (where / "step").error(f"unknown step {kind!r} (known: {', '.join(STEP_KINDS)})")
    raw = _mapping(raw, where, {"step"} | STEP_KINDS[kind])
    column = _ident(_req(raw, "column", where), where / "column") if "column" in STEP_KINDS[kind] else None
    params: dict[str, Any] = {}
    if kind == "cast":
        to = _str(_req(raw, "to", where), where / "to")
        if to not in CAST_TYPES:
            raise (where / "to").error(f"unknown type {to!r} (known: {', '.join(CAST_TYPES)})")
        params["to"] = to
    elif kind == "fill_null":
        value = _req(raw, "value", where)
        if isinstance(value, Mapping):
            ref = _mapping(value, where / "value", {"reference"})
            statistic = _str(_req(ref, "reference", where / "value"), where / "value" / "reference")
            if statistic not in REFERENCE_STATISTICS:
                raise (where / "value" / "reference").error(
                    f"unknown statistic {statistic!r} (known: {', '.join(REFERENCE_STATISTICS)})"
                )
            params["reference"] = statistic
        else:
            params["value"] = _scalar(value, where / "value")
    elif kind == "clip":
        lo = _number(_req(raw, "lower", where), where / "lower")
        hi = _number(_req(raw, "upper", where), where / "upper")
        if lo > hi:
            raise (where / "lower").error(f"lower {lo} is greater than upper {hi}")
        params.update(lower=lo, upper=hi)
    elif kind == "bucketize":
        splits = _req(raw, "splits", where)
        if not isinstance(splits, list) or len(splits) < 2:
            raise (where / "splits").error(f"expected a list of at least two numbers, got {splits!r}")
        splits = [_number(v, where / "splits" / i) for i, v in enumerate(splits)]
        for i in range(1, len(splits)):
            if not splits[i] > splits[i - 1]:  # also refuses NaN
                raise (where / "splits" / i).error(f"splits must increase strictly: {splits[i]} after {splits[i - 1]}")
        params["splits"] = tuple(splits)
    elif kind == "map_categories":
        mapping = _req(raw, "mapping", where)
        if not isinstance(mapping, Mapping) or not mapping:
            raise (where / "mapping").error(f"expected a non-empty mapping of value: category, got {mapping!r}")
        pairs = []
        for k, v in mapping.items():
            pairs.append((str(_scalar(k, where / "mapping")), str(_scalar(v, where / "mapping" / str(k)))))
        params["mapping"] = tuple(sorted(pairs))
        params["other"] = str(_scalar(raw.get("other", "other"), where / "other"))
    elif kind == "derive":
        params["expr"] = _str(_req(raw, "expr", where), where / "expr")
    elif kind == "select":
        columns = _distinct_columns(raw, where)
        params["columns"] = columns
    elif kind == "rename":
        mapping = _req(raw, "columns", where)
        if not isinstance(mapping, Mapping) or not mapping:
            raise (where / "columns").error(f"expected a non-empty mapping of old: new column names, got {mapping!r}")
        pairs = [(_ident(k, where / "columns"), _ident(v, where / "columns" / str(k))) for k, v in mapping.items()]
        targets = [new for _, new in pairs]
        if len(set(targets)) != len(targets):
            raise (where / "columns").error(f"two columns renamed to the same name: {targets}")
        params["columns"] = tuple(pairs)  # in the order written
    return StepConfig(kind, column, tuple(sorted(params.items())))


def parse_steps(raw: Any, where: _Where) -> tuple[StepConfig, ...]:
    if not isinstance(raw, list):
        raise where.error("expected a list of steps")
    return tuple(_step(x, where / i) for i, x in enumerate(raw))


def steps_from_spec(spec: Any, source: str) -> tuple[StepConfig, ...]:
    """Parse a pipeline spec (``{"steps": [...]}``, as logged with a model); errors name ``source``."""
    root = _Where(source)
    raw = _mapping(spec, root, {"format", "steps"})
    return parse_steps(raw.get("steps") or [], root / "steps")


def pipeline_spec(steps: tuple[StepConfig, ...]) -> dict[str, Any]:
    """The spec a trainer logs with its model as ``lakescore/pipeline.json``."""
    return {"format": 1, "steps": [s.to_spec() for s in steps]}


def diff_steps(ours: tuple[StepConfig, ...], theirs: tuple[StepConfig, ...], ours_name: str, theirs_name: str) -> list[str]:
    """Every difference between two pipelines as ``preprocessing[i].field: A has x, B has y``."""
    diffs = []
    for i in range(max(len(ours), len(theirs))):
        a = ours[i].to_spec() if i < len(ours) else None
        b = theirs[i].to_spec() if i < len(theirs) else None
        if a is None or b is None:
            present, name = (b, theirs_name) if a is None else (a, ours_name)
            missing = ours_name if a is None else theirs_name
            diffs.append(f"preprocessing[{i}]: {name} has {json.dumps(present)}, {missing} has no step {i}")
            continue
        for key in sorted(set(a) | set(b), key=lambda k: (k != "step", k != "column", k)):
            if a.get(key) != b.get(key):
                diffs.append(f"preprocessing[{i}].{key}: {ours_name} has {a.get(key)!r}, {theirs_name} has {b.get(key)!r}")
    return diffs


def _rate(value: Any, where: _Where) -> float:
    rate = _number(value, where)
    if not 0 <= rate <= 1:
        raise where.error(f"expected a rate between 0 and 1, got {value!r}")
    return rate


def _limits(raw: Any, where: _Where, limit) -> tuple[tuple[str, float], ...]:
    """A threshold for every column (a number) or per column (a mapping; ``*`` for the rest)."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        return ((ALL_COLUMNS, limit(raw, where)),)
    if not raw:
        raise where.error("expected a number or a non-empty mapping of column: number")
    out = []
    for col, value in raw.items():
        if col != ALL_COLUMNS:
            _ident(col, where)
        out.append((col, limit(value, where / str(col))))
    return tuple(sorted(out))


def _gate(raw: Any, where: _Where) -> GateConfig:
    g = _mapping(raw, where, {"mode", "min_rows", "max_quarantine_rate", "max_null_rate", "max_psi"})
    mode = g.get("mode", "fail")
    if mode not in GATE_MODES:
        raise (where / "mode").error(f"expected one of {', '.join(GATE_MODES)}, got {mode!r}")
    min_rows = g.get("min_rows")
    if min_rows is not None and (isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 0):
        raise (where / "min_rows").error(f"expected a non-negative integer, got {min_rows!r}")

    def psi_limit(value: Any, w: _Where) -> float:
        x = _number(value, w)
        if x < 0:
            raise w.error(f"expected a non-negative number, got {value!r}")
        return x

    return GateConfig(
        mode=mode,
        min_rows=min_rows,
        max_quarantine_rate=_rate(g["max_quarantine_rate"], where / "max_quarantine_rate") if g.get("max_quarantine_rate") is not None else None,
        max_null_rate=_limits(g.get("max_null_rate"), where / "max_null_rate", _rate),
        max_psi=_limits(g.get("max_psi"), where / "max_psi", psi_limit),
    )


def _drift(raw: Any, where: _Where) -> DriftConfig:
    d = _mapping(raw, where, {"reference"})
    if d.get("reference") is None:
        return DriftConfig()
    ref = _mapping(d["reference"], where / "reference", {"partition"})
    partition = _str(_req(ref, "partition", where / "reference"), where / "reference" / "partition")
    if not re.match(r"^\w+=[^,]+(,\w+=[^,]+)*$", partition):
        raise (where / "reference" / "partition").error(f"expected COL=VALUE[,COL=VALUE], got {partition!r}")
    return DriftConfig(partition)


def parse_config(raw: Any, source: str) -> JobConfig:
    """Turn a parsed YAML document into a validated :class:`JobConfig`."""
    root = _Where(source)
    raw = _mapping(
        raw,
        root,
        {
            "name", "engine", "keys", "input", "output", "model", "validation", "preprocessing",
            "preprocessing_override", "contract", "scoring", "spark", "gate", "stats", "drift",
        },
    )
    engine = raw.get("engine", "auto")
    if engine not in ENGINES:
        raise (root / "engine").error(f"expected one of {', '.join(ENGINES)}, got {engine!r}")

    w = root / "input"
    r = _mapping(_req(raw, "input", root), w, {"path", "partition_by"})
    inp = InputConfig(_table_path(_req(r, "path", w), w / "path"), _idents(r.get("partition_by"), w / "partition_by"))
    if not inp.partition_by:
        raise (w / "partition_by").error("the input must be partitioned (e.g. [ds]); LakeScore scores partitions")

    w = root / "output"
    r = _mapping(_req(raw, "output", root), w, {"scored", "quarantine", "stats", "runs", "passthrough", "reports"})
    stats_path = _table_path(_req(r, "stats", w), w / "stats")
    out = OutputConfig(
        *(_table_path(_req(r, k, w), w / k) for k in ("scored", "quarantine", "stats", "runs")),
        passthrough=_idents(r.get("passthrough"), w / "passthrough"),
        # beside the tables by default: <folder of the stats table>/reports
        reports=_table_path(r["reports"], w / "reports") if r.get("reports") is not None else f"{stats_path.rsplit('/', 1)[0]}/reports",
    )
    paths = [inp.path, out.scored, out.quarantine, out.stats, out.runs]
    if len(set(paths)) != len(paths):
        raise w.error("the input and the four output tables must all be different paths")

    w = root / "model"
    r = _mapping(_req(raw, "model", root), w, {"uri", "tracking_uri", "features"})
    uri = _str(_req(r, "uri", w), w / "uri")
    if not _MODEL_URI.match(uri):
        raise (w / "uri").error(f"{uri!r} is not models:/name@alias, models:/name/version, runs:/id/path or a path")
    tracking = r.get("tracking_uri")
    model = ModelConfig(uri, _str(tracking, w / "tracking_uri") if tracking else None, _idents(r.get("features"), w / "features"))

    w = root / "validation"
    v = _mapping(raw.get("validation"), w, {"rules"})
    rules_raw = v.get("rules") or []
    if not isinstance(rules_raw, list):
        raise (w / "rules").error("expected a list of rules")
    rules = tuple(_rule(x, w / "rules" / i) for i, x in enumerate(rules_raw))
    names = [x.name for x in rules]
    if len(set(names)) != len(names):
        raise (w / "rules").error(f"rule names must be unique: {names}")

    # absent means "use the model's pipeline"; an empty list declares that there are no steps
    steps = parse_steps(raw["preprocessing"], root / "preprocessing") if raw.get("preprocessing") is not None else None
    override = _bool(raw.get("preprocessing_override", False), root / "preprocessing_override")

    w = root / "contract"
    c = _mapping(raw.get("contract"), w, {"columns"})
    declared = _mapping(c.get("columns"), w / "columns", set(c.get("columns") or {}))
    contract_columns = []
    for col, typ in declared.items():
        _ident(col, w / "columns")
        if not isinstance(typ, str) or typ.lower() not in CONTRACT_TYPES:
            raise (w / "columns" / col).error(f"unknown type {typ!r} (known: {', '.join(CONTRACT_TYPES)})")
        contract_columns.append((col, CONTRACT_TYPES[typ.lower()]))
    contract = ContractConfig(tuple(contract_columns))

    w = root / "scoring"
    s = _mapping(raw.get("scoring"), w, {"batch_size"})
    scoring = ScoringConfig(_positive_int(s.get("batch_size", 100_000), w / "batch_size"))

    w = root / "spark"
    s = _mapping(raw.get("spark"), w, {"master", "app_name", "conf"})
    conf = _mapping(s.get("conf"), w / "conf", set(s.get("conf") or {}))
    spark = SparkConfig(
        s.get("master"),
        s.get("app_name") or f"lakescore-{raw.get('name', 'job')}",
        tuple(sorted((str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in conf.items())),
    )

    keys = _idents(_req(raw, "keys", root), root / "keys")
    if not keys:
        raise (root / "keys").error("at least one key column is required")
    return JobConfig(
        name=_ident(_req(raw, "name", root), root / "name"),
        source=source,
        engine=engine,
        keys=keys,
        input=inp,
        output=out,
        model=model,
        rules=rules,
        preprocessing=steps,
        preprocessing_override=override,
        contract=contract,
        scoring=scoring,
        spark=spark,
        gate=_gate(raw.get("gate"), root / "gate"),
        stats=StatsConfig(_positive_int(_mapping(raw.get("stats"), root / "stats", {"top_k"}).get("top_k", 10), root / "stats" / "top_k")),
        drift=_drift(raw.get("drift"), root / "drift"),
    )


def _apply_override(raw: dict[str, Any], assignment: str, source: str) -> None:
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected key.path=value")
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: {key}: --set cannot descend into a non-mapping")
    node[parts[-1]] = yaml.safe_load(value) if value else ""


def load_config(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> JobConfig:
    """Read ``path`` (YAML), apply ``key.path=value`` overrides, and validate.

    Raises:
        ConfigError: naming the file and key path of the first problem.
    """
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: <root>: expected a mapping")
    for assignment in overrides:
        _apply_override(raw, assignment, source)
    return parse_config(raw, source)
