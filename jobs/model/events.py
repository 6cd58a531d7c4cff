"""The model-events table: one row per move of a model alias (a promotion or a rollback), with who
moved it, why and the evidence; appended by ``lakescore-promote``, read back to roll a move back.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import uuid
from dataclasses import astuple, dataclass, fields
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from jobs.redact import redact
from jobs.tables import WriteResult, table_exists, write_table

ACTIONS = ("promote", "rollback")
USER_VAR = "LAKESCORE_USER"  # who moved the alias, when the login name is not the person (a shared service account)

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
