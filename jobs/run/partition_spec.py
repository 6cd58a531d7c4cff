"""Partition arguments (``ds=2024-06-01``) parsed strictly against the partition columns' types.

The null partition (the rows whose partition value is null) is a partition like any other; its
label spells the null as Hive and Spark name its directory, ``ds=__HIVE_DEFAULT_PARTITION__``,
and ``parse_partition`` reads that back as None for a column of any type. (A string column cannot
hold that text as a value anyway: Spark reads its directory as null.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import types as T

from jobs.tables.embedded.snapshot import HIVE_NULL

# a null partition value in a label: Hive's and Spark's name for the null partition's directory
NULL_LABEL = HIVE_NULL


class PartitionError(ValueError):
    """A --partition argument that does not name a valid partition of the input table."""


def _parse_value(column: str, text: str, dtype: T.DataType, arg: str) -> Any:
    if text == NULL_LABEL:
        return None
    try:
        if isinstance(dtype, T.DateType):
            return dt.date.fromisoformat(text)
        if isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
            return dt.datetime.fromisoformat(text)
        if isinstance(dtype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
            return int(text)
        if isinstance(dtype, T.BooleanType):
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if isinstance(dtype, T.StringType):
            return text
    except ValueError:
        raise PartitionError(
            f"--partition {arg!r}: {text!r} is not a valid {dtype.simpleString()} for partition column {column!r}"
        ) from None
    raise PartitionError(f"--partition {arg!r}: partition column {column!r} has unsupported type {dtype.simpleString()}")


def parse_partition(arg: str, schema: T.StructType, partition_by: Sequence[str]) -> dict[str, Any]:
    """``"ds=2024-06-01"`` (or ``"ds=...,region=eu"``) -> ``{"ds": date(2024, 6, 1)}``.

    Every partition column must be named exactly once, and nothing else.
    """
    spec: dict[str, Any] = {}
    for part in arg.split(","):
        column, sep, text = part.partition("=")
        column = column.strip()
        if not sep or not column:
            raise PartitionError(f"--partition {arg!r}: expected column=value[,column=value]")
        if column not in partition_by:
            raise PartitionError(f"--partition {arg!r}: {column!r} is not a partition column (they are {list(partition_by)})")
        if column in spec:
            raise PartitionError(f"--partition {arg!r}: {column!r} is given twice")
        spec[column] = _parse_value(column, text.strip(), schema[column].dataType, arg)
    missing = [c for c in partition_by if c not in spec]
    if missing:
        raise PartitionError(f"--partition {arg!r}: no value for partition column(s) {missing}")
    return {c: spec[c] for c in partition_by}


def _label_value(value: Any) -> str:
    if value is None:
        return NULL_LABEL
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def partition_label(spec: Mapping[str, Any]) -> str:
    """``{"ds": date(2024, 6, 1)}`` -> ``"ds=2024-06-01"``; ``{"ds": None}`` -> ``"ds=__HIVE_DEFAULT_PARTITION__"``.
    ``parse_partition`` reads every label back to the same spec."""
    return ",".join(f"{c}={_label_value(v)}" for c, v in spec.items())


def partition_sort_key(spec: Mapping[str, Any]) -> tuple[tuple[bool, Any], ...]:
    """A key that orders specs by their values, column by column, the null partition first (as
    Spark's ascending sort puts nulls): None does not compare with a date, so sort by this."""
    return tuple((value is not None, value) for value in spec.values())
