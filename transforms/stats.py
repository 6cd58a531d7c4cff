"""Quality statistics as Spark aggregations, in long format: one row per (partition, scope, column, metric).

Each profile is a single aggregation over its frame: the validated input gives counts, null
counts and numeric summaries; the scored output gives the prediction distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.validation import REASONS, is_quarantined

HIST_BINS = 10
Metric = tuple[tuple[str, str, str, str | None], Column]  # ((scope, column, metric, bucket), aggregate)


def _count_where(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0))


def _broke(rule: str) -> Column:
    return F.exists(F.col(REASONS), lambda r: r["rule"] == F.lit(rule))


def _is_float(df: DataFrame, name: str) -> bool:
    return isinstance(df.schema[name].dataType, (T.DoubleType, T.FloatType))


def _numeric_summary(scope: str, name: str, col: Column) -> list[Metric]:
    return [
        ((scope, name, "min", None), F.min(col)),
        ((scope, name, "max", None), F.max(col)),
        ((scope, name, "mean", None), F.avg(col)),
        ((scope, name, "stddev", None), F.stddev_samp(col)),
    ]


def _finite(df: DataFrame, name: str) -> Column:
    """The column with NaN and +/-inf as null, so numeric summaries stay numbers."""
    col = F.col(name)
    if _is_float(df, name):
        return F.when(~F.isnan(col) & (F.abs(col) != F.lit(float("inf"))), col)
    return col


def _long(df: DataFrame, group_by: Sequence[str], metrics: list[Metric]) -> DataFrame:
    """Aggregate once, then turn the one wide row per group into one row per metric."""
    wide = df.groupBy(*group_by).agg(*[agg.alias(f"m{i}") for i, (_, agg) in enumerate(metrics)])
    entries = [
        F.struct(
            F.lit(scope).alias("scope"),
            F.lit(column).alias("column"),
            F.lit(metric).alias("metric"),
            F.lit(bucket).cast("string").alias("bucket"),
            F.col(f"m{i}").cast("double").alias("value"),
        )
        for i, ((scope, column, metric, bucket), _) in enumerate(metrics)
    ]
    return wide.select(*group_by, F.inline(F.array(*entries)))


def input_profile(
    features: Sequence[str], rule_names: Sequence[str], group_by: Sequence[str]
) -> Callable[[DataFrame], DataFrame]:
    """Row counts (in, quarantined, by rule) and per-feature null counts and summaries.

    Expects the output of :func:`transforms.validation.validate`. Null counts include NaN.
    """

    def _(df: DataFrame) -> DataFrame:
        metrics: list[Metric] = [
            (("rows", "*", "rows_in", None), F.count(F.lit(1))),
            (("rows", "*", "rows_quarantined", None), _count_where(is_quarantined())),
        ]
        for rule in rule_names:
            metrics.append((("rows", rule, "quarantined_by_rule", None), _count_where(_broke(rule))))
        for name in features:
            missing = F.col(name).isNull() | (F.isnan(F.col(name)) if _is_float(df, name) else F.lit(False))
            metrics.append((("input", name, "null_count", None), _count_where(missing)))
            if isinstance(df.schema[name].dataType, T.NumericType):
                metrics.extend(_numeric_summary("input", name, _finite(df, name)))
            else:
                metrics.append((("input", name, "distinct_count", None), F.count_distinct(F.col(name))))
        return _long(df, group_by, metrics)

    return _


def _bucket_label(i: int) -> str:
    close = "]" if i == HIST_BINS - 1 else ")"
    return f"[{i / HIST_BINS:.1f},{(i + 1) / HIST_BINS:.1f}{close}"


def prediction_profile(outputs: T.StructType, group_by: Sequence[str]) -> Callable[[DataFrame], DataFrame]:
    """Scored row count and, per numeric model output, a summary; floating outputs also get a
    10-bin histogram over [0, 1] (classifier probabilities; values outside land in the edge bins).
    """

    def _(df: DataFrame) -> DataFrame:
        metrics: list[Metric] = [(("rows", "*", "rows_scored", None), F.count(F.lit(1)))]
        for field in outputs.fields:
            if not isinstance(field.dataType, T.NumericType):
                continue
            col = F.col(field.name).cast("double")
            metrics.extend(_numeric_summary("prediction", field.name, col))
            if isinstance(field.dataType, (T.DoubleType, T.FloatType)):
                index = F.least(F.greatest(F.floor(col * HIST_BINS), F.lit(0)), F.lit(HIST_BINS - 1))
                metrics.extend(
                    (("prediction", field.name, "histogram", _bucket_label(i)), _count_where(index == i))
                    for i in range(HIST_BINS)
                )
        return _long(df, group_by, metrics)

    return _
