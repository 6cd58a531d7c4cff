"""The schema contract: required columns and types, checked on schemas before any row is read."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

log = logging.getLogger("lakescore.contract")

# a contract's type names (the values of jobs.config.CONTRACT_TYPES) as Spark types
SPARK_TYPES: dict[str, T.DataType] = {
    "boolean": T.BooleanType(),
    "tinyint": T.ByteType(),
    "smallint": T.ShortType(),
    "int": T.IntegerType(),
    "bigint": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "string": T.StringType(),
    "binary": T.BinaryType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}

# found type -> types it may be widened to without losing values
_WIDENINGS: dict[type, tuple[type, ...]] = {
    T.ByteType: (T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType),
    T.ShortType: (T.IntegerType, T.LongType, T.FloatType, T.DoubleType),
    T.IntegerType: (T.LongType, T.DoubleType),
    T.LongType: (T.DoubleType,),
    T.FloatType: (T.DoubleType,),
}


class ContractError(ValueError):
    """The input breaks the contract: nothing may be scored or written."""


def check_contract(schema: T.StructType, required: Mapping[str, T.DataType | None], table: str) -> dict[str, T.DataType]:
    """Check ``schema`` against ``required`` (column -> expected type, None for any type).

    Returns:
        The safe widening casts to apply, column -> target type.

    Raises:
        ContractError: naming the table, the column, the expected and the found type.
    """
    found = {f.name: f.dataType for f in schema.fields}
    problems, casts = [], {}
    for column, expected in required.items():
        if column not in found:
            problems.append(f"column {column!r} is missing (expected {expected.simpleString() if expected else 'any type'})")
            continue
        actual = found[column]
        if expected is None or actual == expected:
            continue
        if isinstance(expected, _WIDENINGS.get(type(actual), ())):
            casts[column] = expected
        else:
            problems.append(f"column {column!r} has type {actual.simpleString()}, expected {expected.simpleString()}")
    if problems:
        raise ContractError(f"input table {table} breaks the contract: " + "; ".join(problems))
    return casts


def conform(casts: Mapping[str, T.DataType]) -> Callable[[DataFrame], DataFrame]:
    """Apply the safe widening casts that :func:`check_contract` returned."""

    def _(df: DataFrame) -> DataFrame:
        for column, target in casts.items():
            log.info(
                "contract: widening %s from %s to %s", column, df.schema[column].dataType.simpleString(), target.simpleString()
            )
        return df.select(*[F.col(c).cast(casts[c]).alias(c) if c in casts else F.col(c) for c in df.columns])

    return _
