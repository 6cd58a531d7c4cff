"""The job config's sections as frozen dataclasses, one per concept, and the names they allow."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from jobs.config.fields import canonical_uri
from transforms.specs import RuleConfig, StepConfig

ENGINES = ("auto", "embedded", "native")
GATE_MODES = ("fail", "warn")
# type names a contract may declare -> Spark's simpleString for them
CONTRACT_TYPES = {
    "boolean": "boolean",
    "byte": "tinyint",
    "tinyint": "tinyint",
    "short": "smallint",
    "smallint": "smallint",
    "int": "int",
    "integer": "int",
    "long": "bigint",
    "bigint": "bigint",
    "float": "float",
    "double": "double",
    "string": "string",
    "binary": "binary",
    "date": "date",
    "timestamp": "timestamp",
}


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
    # a gate-failed partition's quarantined rows, kept for the operator off the published table;
    # parse_config fills in <quarantine>_held
    held: str | None = None
    # the challengers' scores, replaced per partition like the scored table; parse_config fills in <scored>_shadow
    shadow: str | None = None
    # every move of the champion alias (lakescore-promote); parse_config fills in <runs>_model_events
    model_events: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    uri: str
    tracking_uri: str | None = None
    features: tuple[str, ...] = ()  # empty: take them from the model signature
    # a local directory's model runs its code in every worker: only when the config says so
    allow_local: bool = False
    registry_timeout_seconds: float = 30.0  # per registry request; retries fit in it too (jobs.model.resolve)
    # references scored beside the champion on the same rows, into output.shadow (jobs.run.challengers)
    challengers: tuple[str, ...] = ()

    @property
    def local(self) -> bool:
        """Whether ``uri`` is a local directory (``/path`` or ``file:/path``), not a registry or run reference."""
        return self.uri.startswith(("/", "file:"))


@dataclass(frozen=True)
class ContractConfig:
    """Declared input columns and their types (Spark type names), checked before anything runs."""

    columns: tuple[tuple[str, str], ...] = ()


# rows per Arrow batch handed to the model: Spark's arrow.maxRecordsPerBatch is an int32, and a
# batch holds the features as Arrow and again as pandas in one Python worker: a million rows of a
# few dozen features is already hundreds of MB there
MAX_BATCH_SIZE = 1_000_000


@dataclass(frozen=True)
class ScoringConfig:
    batch_size: int = 100_000


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


MAX_TOP_K = 1_000  # stats rows per categorical feature and partition; the reference keeps 100


@dataclass(frozen=True)
class StatsConfig:
    top_k: int = 10  # categories counted one by one; the rest are other_count


@dataclass(frozen=True)
class DriftConfig:
    """What baseline drift compares with when the model logged no training reference."""

    reference_partition: str | None = None  # e.g. "ds=2024-06-01" of the input table


@dataclass(frozen=True)
class PromotionConfig:
    """What ``lakescore-promote`` asks of a challenger before it moves the champion alias to it."""

    min_partitions: int = 3  # partitions the challenger was shadow-scored on (``--force`` skips the check)


# metrics where lower is better: degraded when the interval's lower end is above the baseline by more than δ
LOSS_METRICS = frozenset({"log_loss", "brier", "ece", "mae", "rmse", "mape"})
DEGRADATION_METRICS = frozenset(
    {"accuracy", "precision", "recall", "specificity", "f1", "roc_auc", "average_precision", "r2", *LOSS_METRICS}
)


@dataclass(frozen=True)
class DegradationConfig:
    """When the evaluation job raises a retraining signal (exit 4). A metric is degraded on a final
    partition when the best end of its 95% interval (the upper end; the lower for a loss) is worse
    than the version's validation value (logged by the trainer as ``validation.<metric>``) by more
    than ``max_drop[metric]``; the signal needs that on at least ``k`` of the version's last ``n``
    final partitions. ``drift_psi``: a feature whose PSI against the training reference exceeds it
    on ``k`` of the last ``n`` scored partitions is a drift signal (None: no drift signal)."""

    max_drop: tuple[tuple[str, float], ...] = ()
    k: int = 2
    n: int = 3
    drift_psi: float | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.max_drop) or self.drift_psi is not None


@dataclass(frozen=True)
class EvaluationConfig:
    """The labels the evaluation job (``jobs/evaluate.py``) joins to the scores, and how it judges
    a partition's labels complete. ``labels`` None: the job config has no ``evaluation`` section
    (the evaluation job refuses to run); parse_config fills in the defaults from the job's own
    keys, partition columns and stats table."""

    labels: str | None = None  # the labels Delta table
    label: str | None = None  # its label column
    keys: tuple[str, ...] = ()  # joined on with the partition columns; default: the job's keys
    partition_by: tuple[str, ...] = ()  # the columns naming a partition; default: input.partition_by
    horizon_days: int = 30  # days until a partition's labels are complete
    min_labelled: float = 0.9  # share of the scored rows labelled for a partition to be final
    output: str | None = None  # the evaluation table; default <stats>_evaluation
    task: str = "binary"  # binary (a probability and a 0/1 decision) or regression (a number)
    output_column: str = "probability"  # the model output that is the score (regression: the prediction)
    decision_column: str = "label"  # the model output that is the decision (binary only)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    signals: str | None = None  # the retraining signals table; default <stats>_signals

    @property
    def enabled(self) -> bool:
        return self.labels is not None

    @property
    def windows(self) -> str | None:
        """The window roll-ups' table (``--window 7d``), beside ``output``."""
        return None if self.output is None else f"{self.output.rstrip('/')}_windows"

    @property
    def history(self) -> str | None:
        """The append-only table of every evaluation computed, beside ``output``."""
        return None if self.output is None else f"{self.output.rstrip('/')}_history"


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
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    @property
    def config_hash(self) -> str:
        """A stable hash of what decides a published partition: which rows it has, their scores,
        its statistics, and whether it is published at all. Resume skips a partition published
        with the same hash, and replay refuses another, so the hash must change exactly when a
        rerun could publish something else.

        Hashed, one section each (``config_hashes``):

        * ``input``: the input table (its path, in one spelling: ``canonical_uri``) and its
          partition columns: they decide a partition's rows;
        * ``columns``: ``keys`` and ``output.passthrough``, the scored table's own columns;
        * ``contract``, ``rules``, ``preprocessing`` (with ``preprocessing_override``): which rows
          are scored and what the model sees;
        * ``model``: ``model.uri``, ``model.tracking_uri`` (the registry the reference resolves in;
          a trailing slash, the case of the scheme or host, or the credentials in it do not make
          another registry) and ``model.features``;
        * ``stats``: ``stats.top_k`` and ``drift.reference_partition``: they change statistics;
        * ``gate``: every gate setting, ``mode`` too: they decide publication.

        Not hashed, since they say where results go or how the run goes, not what it computes:
        ``name``, the config file, ``engine`` (both engines give the same rows), every
        ``output`` path and the report folder (moving an output does not change a score),
        ``scoring.batch_size`` (rows per Arrow batch), ``spark`` (session settings),
        ``model.allow_local`` and ``model.registry_timeout_seconds`` (how the model is reached,
        not which one), ``model.challengers`` and ``promotion`` (the challengers are shadow-scored
        beside the champion: they change neither the published partition nor whether it is
        published, so adding one does not make a resumable run rescore what it has done),
        ``evaluation`` (read by the evaluation job after the scores are published: it changes
        nothing the scoring job publishes). An unset ``tracking_uri`` hashes as unset: the environment's
        ``MLFLOW_TRACKING_URI`` is not seen. tests/test_config.py fails on a config field
        classified neither way.
        """
        return _short_hash(self.config_hashes, 16)

    @property
    def config_hashes(self) -> dict[str, str]:
        """One short hash per hashed section (see ``config_hash``), in a fixed order, so a planner
        can say which part of the config changed (``changed_sections``)."""
        return {name: _short_hash(payload, 12) for name, payload in self._hashed_sections().items()}

    def _hashed_sections(self) -> dict[str, Any]:
        tracking = self.model.tracking_uri
        return {
            "input": {"path": canonical_uri(self.input.path), "partition_by": self.input.partition_by},
            "columns": {"keys": self.keys, "passthrough": self.output.passthrough},
            "contract": asdict(self.contract),
            "rules": [asdict(rule) for rule in self.rules],
            "preprocessing": {
                "steps": None if self.preprocessing is None else [asdict(step) for step in self.preprocessing],
                "override": self.preprocessing_override,
            },
            "model": {
                "uri": canonical_uri(self.model.uri),
                "tracking_uri": canonical_uri(tracking) if tracking else None,
                "features": self.model.features,
            },
            "stats": {"top_k": self.stats.top_k, "drift_reference": self.drift.reference_partition},
            "gate": asdict(self.gate),
        }


def _short_hash(payload: Any, length: int) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def changed_sections(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """The sections whose hashes differ between two ``JobConfig.config_hashes`` (a section in one
    only counts as changed), in ``new``'s order, then ``old``'s: ``["rules", "preprocessing"]``."""
    names = [*new, *(name for name in old if name not in new)]
    return [name for name in names if old.get(name) != new.get(name)]
