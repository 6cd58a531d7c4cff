"""The specs the transforms run from: validation rules and preprocessing steps, frozen and comparable.

The job's config parses them from YAML (``jobs.config``); a model carries its steps as
``lakescore/pipeline.json``. They live here so the pure layer depends on nothing in ``jobs``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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
    def target(self) -> str:
        """The one column the rule checks (every kind but ``unique`` and ``expression`` has one)."""
        if self.column is None:
            raise ValueError(f"rule {self.name} ({self.kind}) checks no single column")
        return self.column

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

    @property
    def target(self) -> str:
        """The step's one column (every kind but ``select`` and ``rename`` has one)."""
        if self.column is None:
            raise ValueError(f"step {self.kind} has no column")
        return self.column

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
