"""The stats table: one row per partition, scope, column and metric (``STATS_SCHEMA`` plus the
input's partition columns), appended once per run; and the earlier partition's rows read back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.quality.drift import BINNED, Row
from jobs.tables import partition_predicate, read_table, table_exists, write_table
from jobs.tables.reading import literal

STATS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("partition", T.StringType(), False),
        T.StructField("scope", T.StringType(), False),
        T.StructField("column", T.StringType(), False),
        T.StructField("metric", T.StringType(), False),
        T.StructField("bucket", T.StringType(), True),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("computed_at", T.TimestampType(), False),
        # the challenger a row describes (scopes challenger and comparison); null: the champion's row
        T.StructField("model_version", T.StringType(), True),
    ]
)


def write_stats(
    spark: SparkSession, path: str, engine: str, rows: Sequence[Row], partition_fields: Sequence[T.StructField], run_id: str
) -> None:
    """Append the run's statistics rows in one commit; ``partition_fields``: the input's partition columns."""
    schema = T.StructType([*STATS_SCHEMA.fields, *partition_fields])
    df = spark.createDataFrame([tuple(r.get(f.name) for f in schema.fields) for r in rows], schema)
    write_table(
        df,
        path,
        engine,
        mode="append",
        partition_by=[f.name for f in partition_fields],
        commit_metadata={"lakescore.run_id": run_id},
        merge_schema=True,  # a table from before model_version gains it (null in its older rows)
    )


def previous_partition(
    spark: SparkSession,
    stats_path: str,
    engine: str,
    job: str,
    partition_by: Sequence[str],
    spec: Mapping[str, Any],
    this_run: Sequence[Row],
) -> tuple[str | None, list[Row]]:
    """The partition before ``spec`` (the greatest smaller one in partition-column order) that this
    job has statistics for, and its binned counts and means from the latest run that scored it.

    This run's own earlier partitions count too (their statistics are not written yet). Two small
    queries over the stats table, never over the input.
    """
    key = tuple(spec[c] for c in partition_by)
    wanted = lambda r: r["scope"] in BINNED and r["metric"] in (*BINNED.values(), "mean")  # noqa: E731
    candidates = [r for r in this_run if tuple(r[c] for c in partition_by) < key]
    best: tuple[Any, ...] | None = max((tuple(r[c] for c in partition_by) for r in candidates), default=None)
    table_best = None
    if table_exists(stats_path, engine):
        stats = read_table(spark, stats_path, engine)
        if len(partition_by) == 1:  # a plain comparison the reader can prune partitions with
            before = F.col(partition_by[0]) < literal(key[0])
        else:
            before = F.struct(*[F.col(c) for c in partition_by]) < F.struct(*[literal(v) for v in key])
        stats = stats.where(
            before & (F.col("job") == job) & F.col("scope").isin(list(BINNED)) & F.col("metric").isin([*BINNED.values(), "mean"])
        )
        latest = (
            stats.orderBy(*[F.col(c).desc() for c in partition_by], F.col("computed_at").desc())
            .select(*partition_by, "run_id")
            .first()
        )
        if latest is not None:
            table_best, latest_run = tuple(latest[c] for c in partition_by), latest["run_id"]
    if best is not None and (table_best is None or best >= table_best):
        rows = [r for r in candidates if tuple(r[c] for c in partition_by) == best and wanted(r)]
        return rows[0]["partition"], rows
    if table_best is None:
        return None, []
    match = partition_predicate([dict(zip(partition_by, table_best, strict=True))])
    rows = [r.asDict() for r in stats.where(match & (F.col("run_id") == latest_run)).collect()]
    return (rows[0]["partition"] if rows else None), rows
