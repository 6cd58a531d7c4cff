"""Preprocessing steps declared in YAML, each a factory of a DataFrame -> DataFrame transform."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.config import StepConfig

Transform = Callable[[DataFrame], DataFrame]


def cast(column: str, to: str) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        return df.withColumn(column, F.col(column).cast(to))

    return _


def fill_null(column: str, value: object) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        col = F.col(column)
        return df.withColumn(column, F.coalesce(col, F.lit(value).cast(df.schema[column].dataType)))

    return _


def clip(column: str, lower: float, upper: float) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        col = F.col(column)
        # greatest/least skip nulls (greatest(null, 0) is 0): keep a null a null, not the lower bound
        return df.withColumn(column, F.when(col.isNull(), col).otherwise(F.least(F.greatest(col, F.lit(lower)), F.lit(upper))))

    return _


def log1p(column: str) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        return df.withColumn(column, F.log1p(F.col(column)))

    return _


def step(cfg: StepConfig) -> Transform:
    """The transform for one configured step."""
    if cfg.kind == "cast":
        return cast(cfg.column, cfg.param("to"))
    if cfg.kind == "fill_null":
        return fill_null(cfg.column, cfg.param("value"))
    if cfg.kind == "clip":
        return clip(cfg.column, cfg.param("lower"), cfg.param("upper"))
    if cfg.kind == "log1p":
        return log1p(cfg.column)
    raise ValueError(f"unknown preprocessing step {cfg.kind!r}")


def pipeline(steps: Sequence[StepConfig]) -> Transform:
    """All steps in order, as one transform; the columns not touched pass through unchanged."""
    transforms = [step(s) for s in steps]

    def _(df: DataFrame) -> DataFrame:
        missing = sorted({s.column for s in steps} - set(df.columns))
        if missing:
            raise ValueError(f"preprocessing steps name columns that are not in the input: {missing}")
        out = reduce(lambda acc, t: acc.transform(t), transforms, df)
        return out.select(*df.columns)

    return _
