"""The model-events table: one row per move of a model alias (a promotion or a rollback), with who
moved it, why and the evidence; appended by ``lakescore-promote``, read back to roll a move back.
The evidence's label-based part is read here from the evaluation table (``lakescore-evaluate``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from jobs.config import JobConfig
from jobs.redact import redact
from jobs.run.partition_spec import partition_sort_key
from jobs.tables import WriteResult, table_exists, write_table

ACTIONS = ("promote", "rollback")
USER_VAR = "LAKESCORE_USER"  # who moved the alias, when the login name is not the person (a shared service account)
PAIRED, EVALUATION = "paired", "evaluation"  # the evaluation table's scopes (jobs.quality.evaluation)
PAIRED_METRICS = ("mcnemar_p_value", "delta_roc_auc")  # champion against the challenger, on the same labelled rows
VERSION_METRICS = ("roc_auc", "accuracy")  # each version's own, beside them

EVENTS_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType(), False),
        T.StructField("at", T.TimestampType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("model_name", T.StringType(), False),
        T.StructField("alias", T.StringType(), False),
        T.StructField("action", T.StringType(), False),
        T.StructField("from_version", T.StringType(), True),  # null: the alias pointed nowhere before
        T.StructField("to_version", T.StringType(), False),
        T.StructField("reason", T.StringType(), True),
        T.StructField("user", T.StringType(), False),
        T.StructField("forced", T.BooleanType(), False),  # --force overrode a guard that refused the move
        T.StructField("evidence", T.StringType(), False),  # JSON (jobs.model.promote.evidence)
    ]
)


def current_user() -> str:
    """``LAKESCORE_USER`` when set, else the login name."""
    return os.environ.get(USER_VAR) or getpass.getuser()


@dataclass(frozen=True)
class ModelEvent:
    """One alias move, as the table holds it (``EVENTS_SCHEMA``, field for field)."""

    event_id: str
    at: dt.datetime
    job: str
    model_name: str
    alias: str
    action: str
    from_version: str | None
    to_version: str
    reason: str | None
    user: str
    forced: bool
    evidence: str

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"model event action must be one of {ACTIONS}, got {self.action!r}")

    @classmethod
    def new(cls, **values: Any) -> ModelEvent:
        """An event happening now, by ``current_user()``, with a fresh id; ``values``: the other fields."""
        return cls(event_id=uuid.uuid4().hex, at=dt.datetime.now(dt.UTC), user=current_user(), **values)

    def row(self) -> tuple:
        """The table row; no credential any of its strings carries reaches it."""
        return tuple(redact(v) if isinstance(v, str) else v for v in astuple(self))


def append_event(spark: SparkSession, path: str, engine: str, event: ModelEvent) -> WriteResult:
    """Append ``event`` to the model-events table at ``path`` (created by the first move), in one commit."""
    df = spark.createDataFrame([event.row()], EVENTS_SCHEMA)
    return write_table(df, path, engine, mode="append", commit_metadata={"lakescore.model_event": event.event_id})


def read_events(path: str, job: str, model_name: str, alias: str) -> list[ModelEvent]:
    """The moves of ``model_name``'s ``alias`` by ``job``, oldest first, read with delta-rs (no Spark:
    the table is a few rows per move). An absent table has none."""
    import pyarrow.dataset as ds

    from jobs.tables.embedded.snapshot import open_table

    if not table_exists(path):
        return []
    wanted = (ds.field("job") == job) & (ds.field("model_name") == model_name) & (ds.field("alias") == alias)
    names = [f.name for f in fields(ModelEvent)]
    rows = open_table(path).to_pyarrow_dataset().to_table(columns=names, filter=wanted).to_pylist()
    return sorted((ModelEvent(**row) for row in rows), key=lambda e: e.at)


def json_number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: an undefined metric is null."""
    return None if value is None or not math.isfinite(value) else value


def label_evidence(cfg: JobConfig, version: str, other: str | None) -> dict[str, Any] | None:
    """The label-based comparison of ``version`` with the champion it was scored beside, from the
    evaluation table: ``{"table", "version", "final_partitions", "partitions": {partition:
    {"maturity", "label_coverage", "run_id", "computed_at", "mcnemar_p_value": cell,
    "delta_roc_auc": cell, "versions": {v: {"role", "roc_auc": cell, "accuracy": cell}}}}}``, the
    partitions oldest first; a cell is ``{"value"}`` plus ``lower``, ``upper``, ``error_bound``
    and ``reason`` when the table has them. ``versions``: ``version``'s and ``other``'s own metrics.

    None when the job config has no evaluation section; no partitions when the table does not
    exist yet or holds no paired rows of ``version``."""
    e = cfg.evaluation
    if not e.enabled or not e.output:
        return None
    rows = _evaluation_rows(e.output, cfg.name, e.output_column, e.partition_by, version, other)
    order = {r["partition"]: partition_sort_key({c: r.get(c) for c in e.partition_by}) for r in rows}
    partitions: dict[str, dict[str, Any]] = {}
    for r in sorted((r for r in rows if r["scope"] == PAIRED), key=lambda r: order[r["partition"]]):
        if r["partition"] not in partitions:
            partitions[r["partition"]] = {
                "maturity": r["maturity"],
                "label_coverage": json_number(r["label_coverage"]),
                "run_id": r["run_id"],
                "computed_at": r["computed_at"].isoformat(),
                "versions": {},
            }
        _put(partitions[r["partition"]], r)
    for r in rows:
        if r["scope"] == EVALUATION and r["partition"] in partitions:
            _put(partitions[r["partition"]]["versions"].setdefault(r["model_version"], {"role": r["role"]}), r)
    for p in partitions.values():  # the version judged first, whatever order the rows came in
        p["versions"] = {v: p["versions"][v] for v in (version, other) if v in p["versions"]}
    final = sum(p["maturity"] == "final" for p in partitions.values())
    return {"table": redact(e.output), "version": version, "final_partitions": final, "partitions": partitions}


def _put(into: dict[str, Any], row: dict[str, Any]) -> None:
    """An evaluation row into its metric's cell: the value (bucket null), an interval end or error
    bound (bucket ``lower``, ``upper``, ``error_bound``), or why it is undefined (``reason: ...``)."""
    cell = into.setdefault(row["metric"], {"value": None})
    bucket = row["bucket"]
    if bucket is not None and bucket.startswith("reason: "):
        cell["reason"] = bucket.removeprefix("reason: ")
    else:
        cell["value" if bucket is None else bucket] = json_number(row["value"])


def _evaluation_rows(
    path: str, job: str, column: str, partition_by: Sequence[str], version: str, other: str | None
) -> list[dict[str, Any]]:
    """``job``'s evaluation rows of ``version``'s paired comparison and of both versions' own
    metrics, read with delta-rs (a handful of rows of a handful of columns)."""
    import pyarrow.dataset as ds

    from jobs.tables.embedded.snapshot import open_table

    if not table_exists(path):
        return []
    dataset = open_table(path).to_pyarrow_dataset()
    versions = [v for v in (version, other) if v is not None]
    paired = (ds.field("scope") == PAIRED) & (ds.field("model_version") == version) & ds.field("metric").isin(PAIRED_METRICS)
    own = (ds.field("scope") == EVALUATION) & ds.field("model_version").isin(versions) & ds.field("metric").isin(VERSION_METRICS)
    wanted = (ds.field("job") == job) & (ds.field("column") == column) & (paired | own)
    names = ["run_id", "partition", "model_version", "role", "scope", "metric", "bucket", "value", "maturity"]
    names += ["label_coverage", "computed_at", *(c for c in partition_by if c in dataset.schema.names)]
    return dataset.to_table(columns=names, filter=wanted).to_pylist()
