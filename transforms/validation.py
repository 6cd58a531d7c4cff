"""Row rules: each row gets the list of every rule it breaks; rows with none go on to scoring."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import RuleConfig

REASONS = "quarantine_reasons"
REASON_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField("rule", T.StringType(), False),
            T.StructField("column", T.StringType(), True),
            T.StructField("message", T.StringType(), False),
        ]
    ),
    containsNull=False,
)


def _is_number(dtype: T.DataType) -> bool:
    return isinstance(dtype, T.NumericType)


def _failure(rule: RuleConfig, schema: T.StructType) -> tuple[Column, str]:
    """The condition under which a row breaks ``rule`` (never null), and the message to record."""
    if rule.kind == "not_null":
        col = F.col(rule.column)
        broken = col.isNull()
        if isinstance(schema[rule.column].dataType, (T.DoubleType, T.FloatType)):
            broken = broken | F.isnan(col)
        return broken, f"{rule.column} is null"
    if rule.kind == "range":
        col = F.col(rule.column)
        out = F.lit(False)
        if rule.min is not None:
            out = out | (col < F.lit(rule.min))
        if rule.max is not None:
            out = out | (col > F.lit(rule.max))
        bounds = f"[{'-inf' if rule.min is None else format(rule.min, 'g')}, {'inf' if rule.max is None else format(rule.max, 'g')}]"
        if isinstance(schema[rule.column].dataType, (T.DoubleType, T.FloatType)):
            # NaN compares greater than everything in Spark; name it explicitly so no NaN slips through
            out = out | F.isnan(col) | (F.abs(col) == F.lit(float("inf")))
            return col.isNotNull() & out, f"{rule.column} is outside {bounds} or not a finite number"
        return col.isNotNull() & out, f"{rule.column} is outside {bounds}"
    if rule.kind == "allowed_values":
        col = F.col(rule.column)
        allowed = ", ".join(map(str, rule.values))
        return col.isNotNull() & ~col.isin(list(rule.values)), f"{rule.column} is not one of [{allowed}]"
    if rule.kind == "expression":
        # a null result is a failure: the expression could not say the row is good
        return ~F.coalesce(F.expr(rule.expr), F.lit(False)), f"expression is false: {rule.expr}"
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def rule_columns(rules: Sequence[RuleConfig]) -> set[str]:
    return {r.column for r in rules if r.column}


def validate(rules: Sequence[RuleConfig]) -> Callable[[DataFrame], DataFrame]:
    """Add ``quarantine_reasons``: one struct per broken rule (empty when the row is good).

    Every rule is evaluated, so a row carries all its reasons, not just the first.
    """

    def _(df: DataFrame) -> DataFrame:
        missing = sorted(rule_columns(rules) - set(df.columns))
        if missing:
            raise ValueError(f"validation rules name columns that are not in the input: {missing}")
        checks = []
        for rule in rules:
            broken, message = _failure(rule, df.schema)
            reason = F.struct(
                F.lit(rule.name).alias("rule"),
                F.lit(rule.column).cast("string").alias("column"),
                F.lit(message).alias("message"),
            )
            checks.append(F.when(F.coalesce(broken, F.lit(False)), reason))
        if not checks:
            checks = [F.lit(None).cast(REASON_TYPE.elementType)]
        return df.select("*", F.filter(F.array(*checks), lambda r: r.isNotNull()).alias(REASONS))

    return _


def is_quarantined() -> Column:
    return F.size(F.col(REASONS)) > 0
