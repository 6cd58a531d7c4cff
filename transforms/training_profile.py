"""Aggregations behind a model's training reference profile: pure frames, collected by ``jobs.model.training``.

Numeric summaries ignore NaN and +/-inf (as the run statistics do); null counts include NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.numeric import QUANTILES, finite, is_floating

BINS = 10  # quantile bins: edges at the deciles of the training data
BIN_EDGES = tuple(i / BINS for i in range(BINS + 1))


def is_numeric(dtype: T.DataType) -> bool:
    return isinstance(dtype, T.NumericType)


def missing(df: DataFrame, column: str) -> Column:
    col = F.col(column)
    return col.isNull() | F.isnan(col) if is_floating(df.schema[column].dataType) else col.isNull()


def statistic(df: DataFrame, column: str, name: str) -> Column:
    """One aggregate: median, mean, min, max (of the finite values) or mode (most frequent non-null value)."""
    if name == "mode":
        return F.mode(F.when(~missing(df, column), F.col(column)))
    if not is_numeric(df.schema[column].dataType):
        raise ValueError(f"{name} of {column} needs a numeric column, it is {df.schema[column].dataType.simpleString()}")
    value = finite(df, column)
    return {"median": F.median(value), "mean": F.avg(value), "min": F.min(value), "max": F.max(value)}[name]


def summary(columns: Sequence[str]):
    """One row: per column count, null count; per numeric column mean, stddev, min, max, quantiles, bin edges."""

    def _(df: DataFrame) -> DataFrame:
        aggs = [F.count(F.lit(1)).alias("rows")]
        for i, c in enumerate(columns):
            aggs.append(F.sum(F.when(missing(df, c), 1).otherwise(0)).alias(f"c{i}_nulls"))
            if is_numeric(df.schema[c].dataType):
                v = finite(df, c)
                aggs += [
                    F.avg(v).alias(f"c{i}_mean"),
                    F.stddev_samp(v).alias(f"c{i}_stddev"),
                    F.min(v).alias(f"c{i}_min"),
                    F.max(v).alias(f"c{i}_max"),
                    F.percentile(v, list(QUANTILES)).alias(f"c{i}_quantiles"),
                    F.percentile(v, list(BIN_EDGES)).alias(f"c{i}_edges"),
                ]
            else:
                aggs.append(F.count_distinct(F.col(c)).alias(f"c{i}_distinct"))
        return df.select(*aggs)

    return _


def bin_counts(column: str, edges: Sequence[float]):
    """Finite values per bin ``[e_i, e_i+1)`` (the last one closed), one row with a count per bin."""

    def _(df: DataFrame) -> DataFrame:
        v = finite(df, column)
        counts = []
        for i in range(len(edges) - 1):
            upper = v <= F.lit(edges[i + 1]) if i == len(edges) - 2 else v < F.lit(edges[i + 1])
            # half-open bins never overlap, even where ties repeat an edge (the bin is then empty)
            counts.append(F.sum(F.when((v >= F.lit(edges[i])) & upper, 1).otherwise(0)).alias(f"b{i}"))
        return df.select(*counts)

    return _


def frequencies(column: str):
    """Rows per non-null value of a categorical column, most frequent first."""

    def _(df: DataFrame) -> DataFrame:
        return (
            df.where(F.col(column).isNotNull())
            .groupBy(F.col(column).cast("string").alias("value"))
            .agg(F.count(F.lit(1)).alias("n"))
            .select("value", "n")
            .orderBy(F.col("n").desc(), F.col("value"))
        )

    return _
