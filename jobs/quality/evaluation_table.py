"""The evaluation table (one partition's current evaluation, replaced when it is evaluated again) and
its history (every evaluation ever computed, appended): long rows, one per partition, model version,
scope, column, metric and bucket, partitioned like the scored table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from jobs.tables import WriteResult, write_table

EVALUATION_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("partition", T.StringType(), False),
        T.StructField("model_version", T.StringType(), True),  # null: the champion scored no row of the partition
        T.StructField("model_name", T.StringType(), True),
        T.StructField("role", T.StringType(), False),  # champion (the scored table) or challenger (the shadow table)
        T.StructField("scope", T.StringType(), False),  # evaluation: one model's rows; paired: champion against it
        T.StructField("column", T.StringType(), False),  # the score column, or * for the counts
        T.StructField("metric", T.StringType(), False),
        T.StructField("bucket", T.StringType(), True),
        T.StructField("value", T.DoubleType(), True),  # null: undefined (a "reason: ..." bucket says why)
        T.StructField("maturity", T.StringType(), False),  # final or provisional
        T.StructField("labels_version", T.LongType(), False),  # the labels table's Delta version joined
        T.StructField("label_coverage", T.DoubleType(), True),  # labelled / scored rows of the version
        T.StructField("as_of", T.DateType(), False),  # the day maturity was judged on (--as-of)
        T.StructField("computed_at", T.TimestampType(), False),
    ]
)


ROWS_PER_SLICE = 4_000


def write_evaluation(
    spark: SparkSession,
    paths: tuple[str, str],
    engine: str,
    rows: Sequence[Mapping[str, Any]],
    partition_fields: Sequence[T.StructField],
    spec: Mapping[str, Any],
    label: str,
    run_id: str,
) -> WriteResult:
    """Append the partition's rows to the history (``paths[1]``), then replace the partition of the
    evaluation table (``paths[0]``) with them in one transaction; return the latter's write.
    ``spec``: the partition's typed values, ``label`` its name (``ds=2024-06-01``).

    The history first: a failure between the two leaves the history with an evaluation the table
    does not show yet (the next run replaces it), never a published one the history lacks."""
    schema = T.StructType([*EVALUATION_SCHEMA.fields, *partition_fields])
    values = [tuple(r.get(f.name) for f in schema.fields) for r in rows]
    # tens of thousands of rows (histograms, bootstrap replicates): shipped in slices, not as one task
    # of megabytes, then gathered by a shuffle into one file per write
    slices = max(1, len(values) // ROWS_PER_SLICE)
    df = spark.createDataFrame(spark.sparkContext.parallelize(values, slices), schema).repartition(1)
    partition_by = [f.name for f in partition_fields]
    metadata = {"lakescore.run_id": run_id, "lakescore.partition": label}
    current, history = paths
    write_table(df, history, engine, mode="append", partition_by=partition_by, commit_metadata=metadata)
    return write_table(
        df,
        current,
        engine,
        mode="overwrite",
        partition_by=partition_by,
        replace_partitions=[dict(spec)],
        commit_metadata=metadata,
    )
