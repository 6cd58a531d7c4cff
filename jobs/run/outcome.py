"""What a run and each of its partitions end with: row counts, the exit code, the ledger's error line."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.config import ConfigError
from jobs.model.resolve import ModelError
from jobs.quality.gate import Check
from jobs.run.ledger import RunRecord
from jobs.run.partition_spec import PartitionError
from jobs.tables import StorageCredentialsError, UnsupportedFeatureError
from transforms.contract import ContractError
from transforms.model_cache import MODEL_LOAD_MARKER, is_model_load_failure
from transforms.preprocess import PipelineError
from transforms.scoring import ModelInputError, scoring_error_line
from transforms.sql_guard import UnsafeExpressionError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_GATE = 0, 1, 2, 3
EXIT_DEGRADED = 4  # the evaluation job: the model degraded, retraining recommended (a signal was raised)
# errors that say the job was asked something it cannot do: exit 2, retrying will not help
USAGE_ERRORS = (
    ConfigError,
    ContractError,
    PartitionError,
    ModelError,
    PipelineError,
    UnsupportedFeatureError,
    StorageCredentialsError,
    ModelInputError,
    UnsafeExpressionError,
)
# the same, raised in a Python worker: Spark hands the driver its own error whose text holds the
# worker's traceback, ending in one of these
WORKER_USAGE_ERRORS = ("ModelInputError", "ModelLoadError")


def is_usage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is exit 2 (a person must change something), also when a worker raised it."""
    if isinstance(exc, USAGE_ERRORS):
        return True
    return worker_error_line(exc).startswith(WORKER_USAGE_ERRORS)


def worker_error_line(exc: BaseException) -> str:
    """The LakeScore error a Python worker raised, out of Spark's wrapping ("" when none)."""
    line = scoring_error_line(exc)
    if line is None and is_model_load_failure(exc):
        text = str(exc)
        line = text[text.rfind(MODEL_LOAD_MARKER) :].splitlines()[0].strip()
    return line or ""


@dataclass(frozen=True)
class PartitionResult:
    partition: str
    rows_in: int
    rows_scored: int
    rows_quarantined: int


@dataclass(frozen=True)
class PartitionOutcome:
    """What scoring one partition made: its counts and statistics rows, the scored table's version
    after its commit (None when not published), the seconds of each step, and the gate checks that
    failed (mode fail: then its scores were not published)."""

    result: PartitionResult
    stats_rows: tuple[dict[str, Any], ...]
    scored_version: int | None
    timings: dict[str, float]
    failed_checks: tuple[Check, ...] = ()

    @property
    def gate_failure(self) -> str | None:
        """The gate's verdict for the ledger and the log, or None when the scores were published."""
        if not self.failed_checks:
            return None
        return f"partition {self.result.partition}: quality gate failed: " + "; ".join(
            f"{c.name}({c.column}) {c.observed:.4g} > {c.limit:g}"
            if c.name != "min_rows"
            else f"min_rows {c.observed:.0f} < {c.limit:g}"
            for c in self.failed_checks
        )


@dataclass
class RunResult:
    record: RunRecord
    partitions: list[PartitionResult] = field(default_factory=list)
    stats_rows: list[dict[str, Any]] = field(default_factory=list)
    report: str | None = None  # the run report's path

    @property
    def exit_code(self) -> int:
        return self.record.exit_code


def partition_result(label: str, stats_rows: Sequence[dict[str, Any]]) -> PartitionResult:
    """A partition's counts, from its ``rows`` statistics (what the stats table says is what the run reports)."""
    counts = {r["metric"]: int(r["value"]) for r in stats_rows if r["scope"] == "rows" and r["column"] == "*"}
    return PartitionResult(label, counts.get("rows_in", 0), counts.get("rows_scored", 0), counts.get("rows_quarantined", 0))


def describe_error(exc: BaseException) -> str:
    """One line for the ledger: the error's first line, plus the innermost Python error when
    Spark wrapped a worker's traceback in its own message."""
    worker = worker_error_line(exc)
    if worker:  # the model's own complaint, with the columns it is about, not Spark's wrapping
        return worker[:2000]
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    inner = next((line for line in reversed(lines[1:]) if re.match(r"^[\w.]+(Error|Exception): ", line)), None)
    return (f"{text} ... {inner}" if inner else text)[:2000]
