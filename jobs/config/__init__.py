"""Typed job configuration: YAML in, frozen dataclasses out, validated before Spark starts.

Every error names the file and the key path (``conf/jobs/churn.yaml: output.scored: ...``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from jobs.config.fields import ALL_COLUMNS, ConfigError
from jobs.config.parse import parse_config
from jobs.config.sections import (
    CONTRACT_TYPES,
    ENGINES,
    GATE_MODES,
    ContractConfig,
    DriftConfig,
    GateConfig,
    InputConfig,
    JobConfig,
    ModelConfig,
    OutputConfig,
    ScoringConfig,
    SparkConfig,
    StatsConfig,
)
from jobs.config.specs import steps_from_spec
from transforms.specs import RuleConfig, StepConfig, diff_steps, pipeline_spec

__all__ = [
    "ALL_COLUMNS",
    "CONTRACT_TYPES",
    "ENGINES",
    "GATE_MODES",
    "ConfigError",
    "ContractConfig",
    "DriftConfig",
    "GateConfig",
    "InputConfig",
    "JobConfig",
    "ModelConfig",
    "OutputConfig",
    "RuleConfig",
    "ScoringConfig",
    "SparkConfig",
    "StatsConfig",
    "StepConfig",
    "diff_steps",
    "load_config",
    "parse_config",
    "pipeline_spec",
    "steps_from_spec",
]


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
