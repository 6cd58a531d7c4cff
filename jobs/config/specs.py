"""Validation rules and preprocessing steps parsed from YAML (or a model's pipeline.json) into
``transforms.specs``.

The Spark SQL of ``derive`` steps and ``expression`` rules is kept as text here: parsing it needs
Spark's own parser, so ``transforms.sql_guard.check_config_sql`` refuses what it does not allow
once the session exists, before any row is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jobs.config.fields import Where, boolean, distinct_columns, identifier, mapping_of, number, required, scalar, string
from transforms.specs import CAST_TYPES, REFERENCE_STATISTICS, RULE_KINDS, STEP_KINDS, RuleConfig, StepConfig


def parse_rule(raw: Any, where: Where) -> RuleConfig:
    kind = string(mapping_of(raw, where, {"type", "name", *set().union(*RULE_KINDS.values())}).get("type"), where / "type")
    if kind not in RULE_KINDS:
        raise (where / "type").error(f"unknown rule type {kind!r} (known: {', '.join(RULE_KINDS)})")
    raw = mapping_of(raw, where, {"type", "name"} | RULE_KINDS[kind])
    column = identifier(required(raw, "column", where), where / "column") if "column" in RULE_KINDS[kind] else None
    if kind == "unique":
        columns = distinct_columns(raw, where)
        name = identifier(raw.get("name") or "unique_" + "_".join(columns), where / "name")
        return RuleConfig(kind, name, columns=columns)
    name = identifier(raw.get("name") or f"{kind}_{column}", where / "name")
    if kind == "range":
        lo = number(raw["min"], where / "min") if raw.get("min") is not None else None
        hi = number(raw["max"], where / "max") if raw.get("max") is not None else None
        if lo is None and hi is None:
            raise where.error("a range rule needs min, max or both")
        if lo is not None and hi is not None and lo > hi:
            raise (where / "min").error(f"min {lo} is greater than max {hi}")
        allow_nan = boolean(raw.get("allow_nan", False), where / "allow_nan")
        return RuleConfig(kind, name, column, min=lo, max=hi, allow_nan=allow_nan)
    if kind == "allowed_values":
        values = required(raw, "values", where)
        if not isinstance(values, list) or not values:
            raise (where / "values").error("expected a non-empty list")
        return RuleConfig(kind, name, column, values=tuple(values))
    if kind == "regex":
        pattern = string(required(raw, "pattern", where), where / "pattern")
        try:  # Spark uses Java regexes; Python's parser catches the errors both share before Spark starts
            re.compile(pattern)
        except re.error as exc:
            raise (where / "pattern").error(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return RuleConfig(kind, name, column, pattern=pattern)
    if kind == "expression":
        return RuleConfig(kind, name, expr=string(required(raw, "expr", where), where / "expr"))
    return RuleConfig(kind, name, column)


def _cast(raw: Mapping[str, Any], where: Where) -> dict[str, Any]:
    to = string(required(raw, "to", where), where / "to")
    if to not in CAST_TYPES:
        raise (where / "to").error(f"unknown type {to!r} (known: {', '.join(CAST_TYPES)})")
    return {"to": to}


def _fill_null(raw: Mapping[str, Any], where: Where) -> dict[str, Any]:
    value = required(raw, "value", where)
    if not isinstance(value, Mapping):
        return {"value": scalar(value, where / "value")}
    ref = mapping_of(value, where / "value", {"reference"})
    statistic = string(required(ref, "reference", where / "value"), where / "value" / "reference")
    if statistic not in REFERENCE_STATISTICS:
        raise (where / "value" / "reference").error(f"unknown statistic {statistic!r} (known: {', '.join(REFERENCE_STATISTICS)})")
    return {"reference": statistic}


def _clip(raw: Mapping[str, Any], where: Where) -> dict[str, Any]:
    lo = number(required(raw, "lower", where), where / "lower")
    hi = number(required(raw, "upper", where), where / "upper")
    if lo > hi:
        raise (where / "lower").error(f"lower {lo} is greater than upper {hi}")
    return {"lower": lo, "upper": hi}


def _bucketize(raw: Mapping[str, Any], where: Where) -> dict[str, Any]:
    given = required(raw, "splits", where)
    if not isinstance(given, list) or len(given) < 2:
        raise (where / "splits").error(f"expected a list of at least two numbers, got {given!r}")
    splits = [number(v, where / "splits" / i) for i, v in enumerate(given)]
    for i in range(1, len(splits)):
        if not splits[i] > splits[i - 1]:  # also refuses NaN
            raise (where / "splits" / i).error(f"splits must increase strictly: {splits[i]} after {splits[i - 1]}")
    return {"splits": tuple(splits)}


def _map_categories(raw: Mapping[str, Any], where: Where) -> dict[str, Any]:
    mapping = required(raw, "mapping", where)
    if not isinstance(mapping, Mapping) or not mapping:
        raise (where / "mapping").error(f"expected a non-empty mapping of value: category, got {mapping!r}")
    pairs = [(str(scalar(k, where / "mapping")), str(scalar(v, where / "mapping" / str(k)))) for k, v in mapping.items()]
    return {"mapping": tuple(sorted(pairs)), "other": str(scalar(raw.get("other", "other"), where / "other"))}


def _derive(raw: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"expr": string(required(raw, "expr", where), where / "expr")}


def _select(raw: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"columns": distinct_columns(raw, where)}


def _rename(raw: Mapping[str, Any], where: Where) -> dict[str, Any]:
    mapping = required(raw, "columns", where)
    if not isinstance(mapping, Mapping) or not mapping:
        raise (where / "columns").error(f"expected a non-empty mapping of old: new column names, got {mapping!r}")
    pairs = [(identifier(k, where / "columns"), identifier(v, where / "columns" / str(k))) for k, v in mapping.items()]
    targets = [new for _, new in pairs]
    if len(set(targets)) != len(targets):
        raise (where / "columns").error(f"two columns renamed to the same name: {targets}")
    return {"columns": tuple(pairs)}  # in the order written


# each step's own keys, checked: its params as StepConfig holds them
_STEP_PARAMS: dict[str, Callable[[Mapping[str, Any], Where], dict[str, Any]]] = {
    "cast": _cast,
    "fill_null": _fill_null,
    "clip": _clip,
    "log1p": lambda raw, where: {},
    "bucketize": _bucketize,
    "map_categories": _map_categories,
    "derive": _derive,
    "select": _select,
    "rename": _rename,
}


def parse_step(raw: Any, where: Where) -> StepConfig:
    kind = string(mapping_of(raw, where, {"step", *set().union(*STEP_KINDS.values())}).get("step"), where / "step")
    if kind not in STEP_KINDS:
        raise (where / "step").error(f"unknown step {kind!r} (known: {', '.join(STEP_KINDS)})")
    raw = mapping_of(raw, where, {"step"} | STEP_KINDS[kind])
    column = identifier(required(raw, "column", where), where / "column") if "column" in STEP_KINDS[kind] else None
    params = _STEP_PARAMS[kind](raw, where)
    return StepConfig(kind, column, tuple(sorted(params.items())))


def parse_steps(raw: Any, where: Where) -> tuple[StepConfig, ...]:
    if not isinstance(raw, list):
        raise where.error("expected a list of steps")
    return tuple(parse_step(x, where / i) for i, x in enumerate(raw))


def steps_from_spec(spec: Any, source: str) -> tuple[StepConfig, ...]:
    """Parse a pipeline spec (``{"steps": [...]}``, as logged with a model); errors name ``source``."""
    root = Where(source)
    raw = mapping_of(spec, root, {"format", "steps"})
    return parse_steps(raw.get("steps") or [], root / "steps")
