"""Delta table I/O behind one interface, with two engines (see DESIGN.md).

``native`` is delta-spark's ``format("delta")``; ``embedded`` is our Python Data Source over
delta-rs. ``auto`` takes native when Delta's JVM classes load, else embedded. Snapshot versions
and table existence are read from the Delta log with delta-rs, which works for either engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.tables.embedded import FORMAT, DeltaDataSource, partition_string

log = logging.getLogger("lakescore.tables")

PartitionSpec = Mapping[str, Any]  # {"ds": date(2024, 6, 1)}: typed values


def native_available(spark: SparkSession) -> bool:
    """True when delta-spark's classes are on the JVM classpath."""
    try:
        spark._jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")  # noqa: SLF001 - a class probe only
        return True
    except Exception:  # py4j raises a generic error for ClassNotFoundException
        return False


def resolve_engine(spark: SparkSession, requested: str) -> str:
    if requested == "embedded":
        return "embedded"
    if native_available(spark):
        return "native"
    if requested == "native":
        raise RuntimeError(
            "engine 'native' was requested but delta-spark's classes are not on the classpath; "
            "pass --packages io.delta:delta-spark_2.13:4.0.0 (or --jars) or use engine 'embedded'"
        )
    return "embedded"


def register(spark: SparkSession) -> None:
    """Make the embedded engine's format available in this session (idempotent)."""
    spark.dataSource.register(DeltaDataSource)


def table_exists(path: str) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(path)


def table_version(path: str) -> int | None:
    """The latest committed version of the Delta table at ``path``, or None when there is none."""
    from deltalake import DeltaTable

    return DeltaTable(path).version() if table_exists(path) else None


def partition_predicate(specs: Sequence[PartitionSpec]) -> Column:
    """``(ds = v1) OR (ds = v2)`` as a Column: typed literals, never SQL text built from input."""
    def one(spec: PartitionSpec) -> Column:
        return reduce(lambda a, b: a & b, [F.col(c) == F.lit(v) for c, v in spec.items()])

    return reduce(lambda a, b: a | b, [one(s) for s in specs])


def read_table(
    spark: SparkSession,
    path: str,
    engine: str,
    partitions: Sequence[PartitionSpec] | None = None,
    version: int | None = None,
    batch_size: int | None = None,
    timestamp: str | None = None,
) -> DataFrame:
    """Read a Delta table, pruned to ``partitions`` when given.

    Args:
        version: read this snapshot version (time travel); exclusive with ``timestamp``.
        timestamp: read the snapshot as of this ISO 8601 instant (UTC unless it says otherwise).
    """
    if version is not None and timestamp is not None:
        raise ValueError("read_table: give a version or a timestamp, not both")
    if engine == "native":
        reader = spark.read.format("delta")
    else:
        reader = spark.read.format(FORMAT)
        if batch_size:
            reader = reader.option("batch_size", str(batch_size))
    if version is not None:
        reader = reader.option("versionAsOf", str(version))
    if timestamp is not None:
        reader = reader.option("timestampAsOf", timestamp)
    df = reader.load(path) if engine == "native" else reader.option("path", path).load()
    return df.where(partition_predicate(partitions)) if partitions else df


def _replace_where_sql(specs: Sequence[PartitionSpec]) -> str:
    """delta-spark only takes replaceWhere as SQL; values are typed and quoted, never raw input."""
    def literal(v: Any) -> str:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return repr(v)
        return "'" + str(partition_string(v)).replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " OR ".join("(" + " AND ".join(f"`{c}` = {literal(v)}" for c, v in s.items()) + ")" for s in specs)


@dataclass(frozen=True)
class WriteResult:
    path: str
    version: int | None


def write_table(
    df: DataFrame,
    path: str,
    engine: str,
    *,
    mode: str,
    partition_by: Sequence[str] = (),
    replace_partitions: Sequence[PartitionSpec] | None = None,
    commit_metadata: Mapping[str, str] | None = None,
    app_transaction: tuple[str, int] | None = None,
    target_file_size: int | None = None,
) -> WriteResult:
    """Write ``df`` as a Delta table.

    Args:
        mode: ``append`` or ``overwrite``. With ``replace_partitions`` an overwrite replaces exactly
            those partitions (rows outside them fail the write); without, the whole table.
        commit_metadata: string pairs stored in the commit info (e.g. the run id).
        app_transaction: ``(app_id, version)``: the write commits only if the table has not yet
            seen this app id at this version or later, so a retried write never commits twice.
    """
    if mode not in ("append", "overwrite"):
        raise ValueError(f"mode must be append or overwrite, got {mode!r}")
    writer = df.write.mode(mode)
    if engine == "native":
        writer = writer.format("delta")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if replace_partitions:
            writer = writer.option("replaceWhere", _replace_where_sql(replace_partitions))
        if commit_metadata:
            writer = writer.option("userMetadata", json.dumps(dict(commit_metadata), sort_keys=True))
        if app_transaction:
            writer = writer.option("txnAppId", app_transaction[0]).option("txnVersion", str(app_transaction[1]))
        writer.save(path)
    else:
        writer = writer.format(FORMAT).option("path", path).option("partition_by", ",".join(partition_by))
        if replace_partitions:
            specs = [{c: partition_string(v) for c, v in s.items()} for s in replace_partitions]
            writer = writer.option("replace_partitions", json.dumps(specs))
        if commit_metadata:
            writer = writer.option("commit_metadata", json.dumps(dict(commit_metadata)))
        if app_transaction:
            writer = writer.option("txn_app_id", app_transaction[0]).option("txn_version", str(app_transaction[1]))
        if target_file_size:
            writer = writer.option("target_file_size", str(target_file_size))
        writer.save()
    version = table_version(path)
    log.info("wrote %s (%s) -> version %s", path, mode, version)
    return WriteResult(path, version)
