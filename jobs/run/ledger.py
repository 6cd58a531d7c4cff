"""The runs ledger: one row per run, saying what was read, with which model, what was written, and how it went."""

from __future__ import annotations

import datetime as dt
import functools
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from jobs.redact import redact
from jobs.tables import write_table

LEDGER_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("exit_code", T.IntegerType(), False),
        T.StructField("error", T.StringType(), True),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("finished_at", T.TimestampType(), True),  # null in a run's `running` row
        T.StructField("engine", T.StringType(), True),
        T.StructField("input_table", T.StringType(), False),
        T.StructField("input_version", T.LongType(), True),
        T.StructField("partitions", T.ArrayType(T.StringType()), False),
        T.StructField("model_uri", T.StringType(), False),
        T.StructField("model_resolved_uri", T.StringType(), True),
        T.StructField("model_name", T.StringType(), True),
        T.StructField("model_version", T.StringType(), True),
        T.StructField("config_hash", T.StringType(), False),
        T.StructField("code_version", T.StringType(), False),
        T.StructField("rows_in", T.LongType(), True),
        T.StructField("rows_scored", T.LongType(), True),
        T.StructField("rows_quarantined", T.LongType(), True),
        T.StructField("rows_held", T.LongType(), True),  # a gate-failed partition's quarantined rows, in output.held
        T.StructField("scored_table", T.StringType(), False),
        T.StructField("scored_version", T.LongType(), True),
        T.StructField("timings", T.MapType(T.StringType(), T.DoubleType()), False),
        T.StructField("report", T.StringType(), True),
        # one per configured challenger: what became of it (scored, or failed and why, and where)
        T.StructField(
            "challengers",
            T.ArrayType(
                T.StructType(
                    [
                        T.StructField("reference", T.StringType(), False),
                        T.StructField("version", T.StringType(), True),
                        T.StructField("status", T.StringType(), False),
                        T.StructField("error", T.StringType(), True),
                        T.StructField("failed_partitions", T.ArrayType(T.StringType()), False),
                    ]
                )
            ),
            True,
        ),
    ]
)


@functools.cache
def code_version() -> str:
    """``LAKESCORE_CODE_VERSION`` if set, else the git commit of this checkout, else the installed
    package's version (a job submitted as a wheel has no checkout)."""
    if os.environ.get("LAKESCORE_CODE_VERSION"):
        return os.environ["LAKESCORE_CODE_VERSION"]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or _package_version()
    except (OSError, subprocess.SubprocessError):
        return _package_version()


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"lakescore {version('lakescore')}"
    except PackageNotFoundError:
        return "unknown"


@dataclass
class RunRecord:
    """The ledger row, filled in as the run goes."""

    run_id: str
    job: str
    input_table: str
    model_uri: str
    config_hash: str
    scored_table: str
    started_at: dt.datetime
    status: str = "running"
    exit_code: int = 1
    error: str | None = None
    finished_at: dt.datetime | None = None
    engine: str | None = None
    input_version: int | None = None
    partitions: list[str] = field(default_factory=list)
    model_resolved_uri: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    rows_in: int | None = None
    rows_scored: int | None = None
    rows_quarantined: int | None = None
    rows_held: int | None = None
    scored_version: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    report: str | None = None  # the HTML run report's path
    challengers: list[Any] = field(default_factory=list)  # jobs.run.challengers.ChallengerStatus, one per configured

    def row(self) -> tuple:
        """The ledger row; no credential a URI or an error message carries reaches it."""
        values = {**self.__dict__, "code_version": code_version(), "challengers": [c.row() for c in self.challengers]}
        for name in ("model_uri", "model_resolved_uri", "error", "input_table", "scored_table", "report"):
            if values[name] is not None:
                values[name] = redact(values[name])
        return tuple(values[f.name] for f in LEDGER_SCHEMA.fields)


def append_run(spark: SparkSession, record: RunRecord, path: str, engine: str) -> None:
    df = spark.createDataFrame([record.row()], LEDGER_SCHEMA)
    # merge_schema: a ledger written before a column existed (e.g. report) gains it, old rows null
    write_table(df, path, engine, mode="append", merge_schema=True, commit_metadata={"lakescore.run_id": record.run_id})


def latest_rows(path: str, run_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Each run's ledger row, read with delta-rs (the ledger is small metadata): its final row, or
    its ``running`` row when it never wrote one (killed, or still running). ``run_ids``: only these."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(path):
        return {}
    wanted = None if run_ids is None else sorted(set(run_ids))
    if wanted == []:
        return {}
    where = ds.field("run_id").isin(wanted) if wanted is not None else None
    out: dict[str, dict[str, Any]] = {}
    for row in DeltaTable(path).to_pyarrow_dataset().to_table(filter=where).to_pylist():
        seen = out.get(row["run_id"])
        if seen is None or seen["status"] == "running":
            out[row["run_id"]] = row
    return out
