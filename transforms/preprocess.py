"""Preprocessing steps declared in YAML, each a factory of a DataFrame -> DataFrame transform.

The same pipeline runs where the model is trained (``jobs.model.training.fit_pipeline``) and where it
is scored, so the model sees features computed by one piece of code in both places.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.specs import StepConfig

Transform = Callable[[DataFrame], DataFrame]


class PipelineError(ValueError):
    """A step cannot run on the input (a column it needs is missing, its expression is invalid)."""


def _replace(df: DataFrame, column: str, value: Column) -> DataFrame:
    """``df`` with ``column`` replaced in place by ``value`` (appended when new): the step's output contract."""
    if column in df.columns:
        return df.select(*[value.alias(c) if c == column else F.col(c) for c in df.columns])
    return df.select(*[F.col(c) for c in df.columns], value.alias(column))


def cast(column: str, to: str) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        return _replace(df, column, F.col(column).cast(to))

    return _


def fill_null(column: str, value: object) -> Transform:
    """Nulls (and NaN in floating columns: the same missing value to a model) become ``value``."""

    def _(df: DataFrame) -> DataFrame:
        col = F.col(column)
        dtype = df.schema[column].dataType
        missing = col.isNull() | F.isnan(col) if isinstance(dtype, (T.DoubleType, T.FloatType)) else col.isNull()
        return _replace(df, column, F.when(missing, F.lit(value).cast(dtype)).otherwise(col))

    return _


def clip(column: str, lower: float, upper: float) -> Transform:
    """Values below ``lower`` become ``lower``, above ``upper`` become ``upper``; null and NaN stay missing."""

    def _(df: DataFrame) -> DataFrame:
        col = F.col(column)
        # greatest/least skip nulls (greatest(null, 0) is 0) and NaN sorts above every number (least(NaN, 10)
        # is 10): keep both missing rather than turn them into a bound
        missing = (
            col.isNull() | F.isnan(col) if isinstance(df.schema[column].dataType, (T.DoubleType, T.FloatType)) else col.isNull()
        )
        return _replace(df, column, F.when(missing, col).otherwise(F.least(F.greatest(col, F.lit(lower)), F.lit(upper))))

    return _


def log1p(column: str) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        return _replace(df, column, F.log1p(F.col(column)))

    return _


def bucketize(column: str, splits: Sequence[float]) -> Transform:
    """The index (as double, like Spark ML's Bucketizer) of the bucket ``[s_i, s_i+1)`` holding the value.

    The last bucket includes its upper edge. Null, NaN and values outside the splits become null:
    use -inf/inf as the outer splits to catch every number.
    """
    edges = list(splits)

    def _(df: DataFrame) -> DataFrame:
        col = F.col(column).cast("double")
        index: Column = F.lit(None).cast("double")
        for i in reversed(range(len(edges) - 1)):
            upper_ok = col <= F.lit(edges[i + 1]) if i == len(edges) - 2 else col < F.lit(edges[i + 1])
            index = F.when((col >= F.lit(edges[i])) & upper_ok, F.lit(float(i))).otherwise(index)
        return _replace(df, column, F.when(col.isNull() | F.isnan(col), F.lit(None).cast("double")).otherwise(index))

    return _


def map_categories(column: str, mapping: Mapping[str, str], other: str) -> Transform:
    """Known values become their category; values the mapping does not know become ``other``; nulls stay null."""
    pairs = [x for k, v in mapping.items() for x in (F.lit(k), F.lit(v))]

    def _(df: DataFrame) -> DataFrame:
        col = F.col(column).cast("string")
        category = F.coalesce(F.try_element_at(F.create_map(*pairs), col), F.lit(other))
        return _replace(df, column, F.when(col.isNull(), F.lit(None).cast("string")).otherwise(category))

    return _


def derive(column: str, expr: str) -> Transform:
    """``column`` computed by a Spark SQL expression over the row (replaced in place when it exists)."""

    def _(df: DataFrame) -> DataFrame:
        return _replace(df, column, F.expr(expr))

    return _


def select(columns: Sequence[str]) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        return df.select(*[F.col(c) for c in columns])

    return _


def rename(columns: Mapping[str, str]) -> Transform:
    def _(df: DataFrame) -> DataFrame:
        return df.select(*[F.col(c).alias(columns.get(c, c)) for c in df.columns])

    return _


def reads(cfg: StepConfig) -> tuple[str, ...]:
    """The columns a step needs in its input (a derive expression's are known only to Spark)."""
    if cfg.kind == "select":
        return tuple(cfg.param("columns"))
    if cfg.kind == "rename":
        return tuple(old for old, _ in cfg.param("columns"))
    if cfg.kind == "derive":
        return ()
    return (cfg.target,)


def writes(cfg: StepConfig) -> tuple[str, ...]:
    """The columns a step creates that were not in its input (before it ran)."""
    if cfg.kind == "derive":
        return (cfg.target,)
    if cfg.kind == "rename":
        return tuple(new for _, new in cfg.param("columns"))
    return ()


def input_columns(steps: Sequence[StepConfig]) -> tuple[str, ...]:
    """The columns the pipeline reads from its input: read by a step before any step created them."""
    created: set[str] = set()
    needed: list[str] = []
    for s in steps:
        needed.extend(c for c in reads(s) if c not in created and c not in needed)
        created.update(writes(s))
    return tuple(needed)


def output_columns(steps: Sequence[StepConfig]) -> set[str]:
    """Columns the pipeline creates, so the input need not have them."""
    return {c for s in steps for c in writes(s)}


def step(cfg: StepConfig, fitted: Any = None) -> Transform:
    """The transform for one configured step.

    Args:
        fitted: for ``fill_null`` from a reference statistic, the value that statistic had on the
            training data (see :func:`jobs.model.training.fit_pipeline`).
    """
    if cfg.kind == "cast":
        return cast(cfg.target, cfg.param("to"))
    if cfg.kind == "fill_null":
        if cfg.param("reference") is not None:
            if fitted is None:
                raise PipelineError(f"fill_null {cfg.column}: no fitted {cfg.param('reference')} from the training reference")
            return fill_null(cfg.target, fitted)
        return fill_null(cfg.target, cfg.param("value"))
    if cfg.kind == "clip":
        return clip(cfg.target, cfg.param("lower"), cfg.param("upper"))
    if cfg.kind == "log1p":
        return log1p(cfg.target)
    if cfg.kind == "bucketize":
        return bucketize(cfg.target, cfg.param("splits"))
    if cfg.kind == "map_categories":
        return map_categories(cfg.target, dict(cfg.param("mapping")), cfg.param("other"))
    if cfg.kind == "derive":
        return derive(cfg.target, cfg.param("expr"))
    if cfg.kind == "select":
        return select(cfg.param("columns"))
    if cfg.kind == "rename":
        return rename(dict(cfg.param("columns")))
    raise ValueError(f"unknown preprocessing step {cfg.kind!r}")


def describe(index: int, cfg: StepConfig) -> str:
    return f"preprocessing[{index}] ({cfg.kind}{' ' + cfg.column if cfg.column else ''})"


def apply_step(df: DataFrame, index: int, cfg: StepConfig, fitted: Any = None) -> DataFrame:
    """One step on ``df``; errors name the step's index and the column."""
    missing = [c for c in reads(cfg) if c not in df.columns]
    if missing:
        raise PipelineError(
            f"{describe(index, cfg)}: column {missing[0]!r} is not in its input (columns: {', '.join(df.columns)})"
        )
    if cfg.kind == "rename":
        clash = sorted(
            set(new for old, new in cfg.param("columns")) & (set(df.columns) - {old for old, _ in cfg.param("columns")})
        )
        if clash:
            raise PipelineError(f"{describe(index, cfg)}: column {clash[0]!r} already exists")
    try:  # classic Spark analyses eagerly: a bad expression or type fails here, before any row is read
        return df.transform(step(cfg, fitted))
    except AnalysisException as exc:
        raise PipelineError(f"{describe(index, cfg)}: {str(exc).strip().splitlines()[0]}") from None


def pipeline(steps: Sequence[StepConfig], fitted: Mapping[int, Any] | None = None, keep: Sequence[str] = ()) -> Transform:
    """All steps in order, as one transform.

    Columns no step touches pass through in place; derived columns are appended; ``select`` and
    ``rename`` change the column list from their point on.

    Args:
        fitted: step index -> fitted value, for the steps that take a statistic of the training data.
        keep: columns that ride through every step untouched, a ``select`` included (the caller's
            copies of input values; no step may name them).
    """
    steps, fitted, keep = list(steps), dict(fitted or {}), list(keep)

    def _(df: DataFrame) -> DataFrame:
        out = df
        for i, s in enumerate(steps):
            before = out
            out = apply_step(out, i, s, fitted.get(i))
            kept = [c for c in keep if c in before.columns and c not in out.columns]
            if kept:  # a select step dropped them: the same columns, picked from its input
                out = before.select(*[F.col(c) for c in out.columns], *[F.col(c) for c in kept])
        return out.select(*[F.col(c) for c in out.columns])

    return _
