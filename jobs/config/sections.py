"""The job config's sections as frozen dataclasses, one per concept, and the names they allow."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

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


@dataclass(frozen=True)
class ModelConfig:
    uri: str
    tracking_uri: str | None = None
    features: tuple[str, ...] = ()  # empty: take them from the model signature


@dataclass(frozen=True)
class ContractConfig:
    """Declared input columns and their types (Spark type names), checked before anything runs."""

    columns: tuple[tuple[str, str], ...] = ()


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
