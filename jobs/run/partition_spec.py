"""Partition arguments (``ds=2024-06-01``) parsed strictly against the partition columns' types."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pyspark.sql import types as T


class PartitionError(ValueError):
    """A --partition argument that does not name a valid partition of the input table."""


def _parse_value(column: str, text: str, dtype: T.DataType, arg: str) -> Any:
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


def partition_label(spec: dict[str, Any]) -> str:
    """``{"ds": date(2024, 6, 1)}`` -> ``"ds=2024-06-01"``."""
    return ",".join(f"{c}={v.isoformat() if hasattr(v, 'isoformat') else v}" for c, v in spec.items())
