"""Typed job configuration: YAML in, frozen dataclasses out, validated before Spark starts.

Every error names the file and the key path (``conf/jobs/churn.yaml: output.scored: ...``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from jobs.config.fields import ALL_COLUMNS, ConfigError
from jobs.config.parse import parse_config
from jobs.config.sections import (
    CONTRACT_TYPES,
    ENGINES,
    GATE_MODES,
    LOSS_METRICS,
    ContractConfig,
    DegradationConfig,
    DriftConfig,
    EvaluationConfig,
    GateConfig,
    InputConfig,
    JobConfig,
    ModelConfig,
    OutputConfig,
    PromotionConfig,
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
    "LOSS_METRICS",
    "ConfigError",
    "ContractConfig",
    "DegradationConfig",
    "DriftConfig",
    "EvaluationConfig",
    "GateConfig",
    "InputConfig",
    "JobConfig",
    "ModelConfig",
    "OutputConfig",
    "PromotionConfig",
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


# mappings whose keys are free-form dotted names (Spark's own settings): under them the rest of a
# --set key is one key, so spark.conf.spark.sql.shuffle.partitions=1 sets that Spark setting
WHOLE_KEYS_UNDER = (("spark", "conf"),)
_PART = re.compile(r"([^\[\]]*)((?:\[\d+\])*)")


def _override_path(key: str) -> list[str | int]:
    """``validation.rules[0].min`` (or ``validation.rules.0.min``) -> ``["validation", "rules", 0, "min"]``;
    ``spark.conf.spark.sql.shuffle.partitions`` -> ``["spark", "conf", "spark.sql.shuffle.partitions"]``."""
    parts = key.split(".")
    for prefix in WHOLE_KEYS_UNDER:
        if tuple(parts[: len(prefix)]) == prefix and len(parts) > len(prefix):
            return [*prefix, ".".join(parts[len(prefix) :])]
    path: list[str | int] = []
    for part in parts:
        match = _PART.fullmatch(part)
        if match is None or not part:
            raise ConfigError(f"--set {key}: expected key.path=value (a list item as key[0])")
        name, indices = match.groups()
        if name:
            path.append(int(name) if name.isdigit() else name)
        path += [int(i) for i in re.findall(r"\d+", indices)]
    return path


def _where(path: list[str | int]) -> str:
    """A path as config errors spell it: ``validation.rules[0].min``."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def _holds(node: Any, step: str | int) -> bool:
    """Whether ``node[step]`` can be set: any key of a mapping, an existing item of a list."""
    return isinstance(node, dict) or (isinstance(node, list) and isinstance(step, int) and step < len(node))


def _refuse(node: Any, step: str | int, key: str) -> ConfigError:
    if isinstance(node, list):
        return ConfigError(f"--set {key}: {step!r}: expected an index below {len(node)} into a list")
    return ConfigError(f"--set {key}: cannot set {step!r} inside a {type(node).__name__}")


def _apply_override(raw: dict[str, Any], assignment: str) -> str:
    """Set one ``key.path=value`` (the value read as YAML) in the parsed document, making the
    mappings on the way; returns the key path as errors name it. An unknown key is set all the
    same, so that validation refuses it as it refuses one in the file."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected key.path=value")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML: {exc}") from None
    path = _override_path(key)
    node: Any = raw
    for step in path[:-1]:
        if not _holds(node, step):
            raise _refuse(node, step, key)
        if isinstance(node, dict) and node.get(step) is None:
            node[step] = {}
        node = node[step]
    if not _holds(node, path[-1]):
        raise _refuse(node, path[-1], key)
    node[path[-1]] = value
    return _where(path)


def _read_yaml(source: str) -> Any:
    """The file as YAML; every way it can be unreadable is a ConfigError naming it."""
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{source}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the config as UTF-8"
        ) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None


def load_config(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> JobConfig:
    """Read ``path`` (YAML, UTF-8), apply ``key.path=value`` overrides, and validate.

    Every override takes effect or is refused: an unknown key is refused by validation like one
    in the file, and the error then names the ``--set`` it came from.

    Raises:
        ConfigError: naming the file and key path of the first problem.
    """
    source = str(path)
    raw = _read_yaml(source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: <root>: expected a mapping")
    overridden = {_apply_override(raw, assignment): assignment for assignment in overrides}
    try:
        return parse_config(raw, source)
    except ConfigError as err:
        culprit = _culprit(str(err), source, overridden)
        if culprit is None:
            raise
        raise ConfigError(f"{err} (from --set {culprit})") from None


def _culprit(message: str, source: str, overridden: dict[str, str]) -> str | None:
    """The ``--set`` an error is about: one that set the key path the error names, or a key under
    it (``modle: unknown key`` is about ``--set modle.uri=...``)."""
    where = message[len(source) + 2 :].split(": ", 1)[0] if message.startswith(f"{source}: ") else None
    if where is None:
        return None
    return next((a for path, a in overridden.items() if path == where or path.startswith((f"{where}.", f"{where}["))), None)
