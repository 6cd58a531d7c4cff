"""Row rules: each row gets the list of every rule it breaks; rows with none go on to scoring.

Row rules look at one row; ``unique`` looks at the rows sharing a key, within the frame it is
given (the job validates one partition at a time, so a key must be unique within its partition).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.numeric import is_floating, not_finite
from transforms.specs import RuleConfig

REASONS = "quarantine_reasons"
REASON_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField("rule", T.StringType(), False),
            T.StructField("column", T.StringType(), True),
            T.StructField("message", T.StringType(), False),
            # last, so tables written before it existed only gain a field; one per rule type
            T.StructField("code", T.StringType(), False),
        ]
    ),
    containsNull=False,
)


def _dup_count(columns: Sequence[str]) -> str:
    return "_lakescore_dup_" + "_".join(columns)


def _failure(rule: RuleConfig, schema: T.StructType) -> tuple[Column, Column]:
    """The condition under which a row breaks ``rule``, and the message to record."""
    if rule.kind == "not_null":
        col = F.col(rule.target)
        broken = col.isNull()
        if is_floating(schema[rule.target].dataType):
            broken = broken | F.isnan(col)
        return broken, F.lit(f"{rule.column} is null")
    if rule.kind == "range":
        col = F.col(rule.target)
        out = F.lit(False)
        if rule.min is not None:
            out = out | (col < F.lit(rule.min))
        if rule.max is not None:
            out = out | (col > F.lit(rule.max))
        bounds = (
            f"[{'-inf' if rule.min is None else format(rule.min, 'g')}, {'inf' if rule.max is None else format(rule.max, 'g')}]"
        )
        if not is_floating(schema[rule.target].dataType):
            return col.isNotNull() & out, F.lit(f"{rule.column} is outside {bounds}")
        if rule.allow_nan:
            # NaN compares greater than every number in Spark and inf beyond any bound: let them through
            return col.isNotNull() & ~not_finite(col) & out, F.lit(f"{rule.column} is outside {bounds}")
        # named explicitly so that no NaN slips through whatever the bounds are
        return col.isNotNull() & (out | not_finite(col)), F.lit(f"{rule.column} is outside {bounds} or not a finite number")
    if rule.kind == "allowed_values":
        col = F.col(rule.target)
        allowed = ", ".join(map(str, rule.values))
        return col.isNotNull() & ~col.isin(list(rule.values)), F.lit(f"{rule.column} is not one of [{allowed}]")
    if rule.kind == "regex":
        col = F.col(rule.target)
        # rlike finds the pattern anywhere in the value; anchor it (^...$) to match the whole value
        return col.isNotNull() & ~col.cast("string").rlike(rule.pattern or ""), F.lit(
            f"{rule.column} does not match {rule.pattern}"
        )
    if rule.kind == "unique":
        # SQL's UNIQUE: a key with a null part is not compared (not_null rules catch those)
        complete = reduce(lambda acc, c: acc & F.col(c).isNotNull(), rule.columns, F.lit(True))
        count = F.col(_dup_count(rule.columns))
        key = ", ".join(rule.columns)
        message = F.format_string(f"({key}) is duplicated: %d rows share this key", count)
        return complete & (count > 1), message
    if rule.kind == "expression":
        # a null result is a failure: the expression could not say the row is good
        return ~F.coalesce(F.expr(rule.expr or ""), F.lit(False)), F.lit(f"expression is false: {rule.expr}")
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def rule_columns(rules: Sequence[RuleConfig]) -> set[str]:
    return {c for r in rules for c in r.read_columns}


def _with_key_counts(df: DataFrame, rules: Sequence[RuleConfig]) -> DataFrame:
    """Rows per key of every unique rule, as helper columns: one window (one shuffle) per key."""
    keys = list(dict.fromkeys(r.columns for r in rules if r.kind == "unique"))
    return df.select(
        "*", *[F.count(F.lit(1)).over(Window.partitionBy(*[F.col(c) for c in key])).alias(_dup_count(key)) for key in keys]
    )


def validate(rules: Sequence[RuleConfig]) -> Callable[[DataFrame], DataFrame]:
    """Add ``quarantine_reasons``: one struct per broken rule (empty when the row is good).

    Every rule is evaluated, so a row carries all its reasons, not just the first; every row of a
    duplicated key is quarantined, not all but one (which of them is right is not ours to guess).
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
                F.lit(", ".join(rule.read_columns) or None).cast("string").alias("column"),
                message.alias("message"),
                F.lit(rule.kind).alias("code"),
            )
            checks.append(F.when(F.coalesce(broken, F.lit(False)), reason))
        if not checks:
            checks = [F.lit(None).cast(REASON_TYPE.elementType)]
        reasons = F.filter(F.array(*checks), lambda r: r.isNotNull()).alias(REASONS)
        return df.transform(lambda d: _with_key_counts(d, rules)).select(*[F.col(c) for c in df.columns], reasons)

    return _


def is_quarantined() -> Column:
    return F.size(F.col(REASONS)) > 0


def passing_rows(df: DataFrame) -> DataFrame:
    """The validated rows that broke no rule, without the reasons column: what goes on to scoring."""
    return df.where(~is_quarantined()).drop(REASONS)


def quarantined_rows(
    columns: Sequence[str], run_id: str, quarantined_at: Any, with_code: bool = True
) -> Callable[[DataFrame], DataFrame]:
    """The quarantine table's contract: the rows that broke a rule as they came (``columns``), why,
    and which run put them there. ``with_code=False`` writes the reasons without their ``code``
    field, for a table created before the field existed (the engines do not evolve schemas)."""

    def _(df: DataFrame) -> DataFrame:
        reasons = F.col(REASONS)
        if not with_code:
            reasons = F.transform(
                reasons, lambda r: F.struct(r["rule"].alias("rule"), r["column"].alias("column"), r["message"].alias("message"))
            )
        return df.where(is_quarantined()).select(
            *columns, reasons.alias(REASONS), F.lit(run_id).alias("run_id"), F.lit(quarantined_at).alias("quarantined_at")
        )

    return _
