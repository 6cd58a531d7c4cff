"""Planning a read: which of a snapshot's data files can hold rows that pass the pushed-down
filters, by partition values and by per-file statistics (see docs/DESIGN.md#planning-and-pruning)."""

from __future__ import annotations

import datetime as dt
import logging
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa
from pyspark.sql.datasource import (
    EqualNullSafe,
    EqualTo,
    Filter,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    InputPartition,
    IsNotNull,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Not,
)
from pyspark.sql.types import ArrayType, DoubleType, FloatType, MapType, StructType

from jobs.tables.embedded.snapshot import HIVE_NULL, partition_string

log = logging.getLogger("lakescore.delta")

_COMPARE = {
    EqualTo: operator.eq,
    GreaterThan: operator.gt,
    GreaterThanOrEqual: operator.ge,
    LessThan: operator.lt,
    LessThanOrEqual: operator.le,
}
_Comparison = EqualTo | GreaterThan | GreaterThanOrEqual | LessThan | LessThanOrEqual


def _matches(flt: Filter, value: Any) -> bool:
    """Whether a partition value passes ``flt``, with SQL's null semantics (null never compares)."""
    if isinstance(flt, Not):
        return value is not None and not _matches(flt.child, value)
    if isinstance(flt, IsNull):
        return value is None
    if isinstance(flt, IsNotNull):
        return value is not None
    if isinstance(flt, EqualNullSafe):
        return value == flt.value
    if value is None:
        return False
    if isinstance(flt, In):
        return value in flt.value
    # what is left of a partition filter (_prunable) is a comparison: one of _COMPARE's
    return _COMPARE[type(flt)](value, cast(_Comparison, flt).value)


def _may_contain(flt: Filter, lo: Any, hi: Any, nulls: int | None, rows: int | None) -> bool:
    """Whether a file whose column has these statistics can hold a row that passes ``flt``.

    Missing statistics, or values that do not compare, keep the file: skipping must never lose rows.
    """
    if isinstance(flt, IsNull) or (isinstance(flt, EqualNullSafe) and flt.value is None):
        return nulls is None or nulls > 0
    if isinstance(flt, IsNotNull):
        return nulls is None or rows is None or nulls < rows
    if lo is None or hi is None:
        return True
    try:
        if isinstance(flt, (EqualTo, EqualNullSafe)):
            return lo <= flt.value <= hi
        if isinstance(flt, In):
            return any(v is not None and lo <= v <= hi for v in flt.value)
        if isinstance(flt, GreaterThan):
            return hi > flt.value
        if isinstance(flt, GreaterThanOrEqual):
            return hi >= flt.value
        if isinstance(flt, LessThan):
            return lo < flt.value
        if isinstance(flt, LessThanOrEqual):
            return lo <= flt.value
    except TypeError:
        return True
    return True


def _prunable(flt: Filter) -> bool:
    """Filters evaluated exactly on partition values. NOT is taken over comparisons only, where
    "value is not null and not child" is exactly SQL's NOT; over null tests it would not be."""
    if isinstance(flt, Not):
        return isinstance(flt.child, (EqualTo, In, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual))
    return isinstance(flt, _PRUNABLE)


_PRUNABLE = (EqualTo, EqualNullSafe, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual, In, IsNull, IsNotNull)
_OnColumn = EqualTo | EqualNullSafe | GreaterThan | GreaterThanOrEqual | LessThan | LessThanOrEqual | In | IsNull | IsNotNull


@dataclass(frozen=True)
class FileSlice(InputPartition):
    """One planned data file (path as the log spells it) and its partition values: one Spark partition."""

    path: str
    partition_values: tuple[tuple[str, Any], ...]  # typed values, as delta-rs parses them

    def __init__(self, path: str, partition_values: tuple[tuple[str, Any], ...]) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "partition_values", partition_values)
        object.__setattr__(self, "value", path)


def classify_filters(
    filters: Sequence[Filter], schema: StructType, partition_columns: Sequence[str]
) -> tuple[list[tuple[str, Filter]], list[Filter], list[Filter]]:
    """Split filters into (partition filters, statistics filters, filters Spark must still evaluate).

    Partition filters are exact on partition values, so Spark need not re-check their rows.
    Statistics filters only skip whole files, so they are also in the third list. Floating columns
    are left out of both (NaN, see docs/DESIGN.md#floating-columns-and-nan).
    """
    floating = {f.name for f in schema.fields if isinstance(f.dataType, (FloatType, DoubleType))}
    pcols = set(partition_columns) - floating
    skippable = {
        f.name
        for f in schema.fields
        if f.name not in partition_columns and not isinstance(f.dataType, (FloatType, DoubleType, StructType, ArrayType, MapType))
    }
    by_partition: list[tuple[str, Filter]] = []
    by_stats: list[Filter] = []
    residual: list[Filter] = []
    for flt in filters:
        attribute: tuple[str, ...] = getattr(flt.child if isinstance(flt, Not) else flt, "attribute", ())
        column = attribute[0] if len(attribute) == 1 else None
        if _prunable(flt) and column in pcols:
            by_partition.append((column, flt))
            continue
        if isinstance(flt, _PRUNABLE) and column in skippable:
            by_stats.append(flt)
        residual.append(flt)
    return by_partition, by_stats, residual


def plan_files(
    table,
    path: str,
    partition_filters: Sequence[tuple[str, Filter]] = (),
    stats_filters: Sequence[Filter] = (),
    partitions: Sequence[Mapping[str, Any]] | None = None,
) -> list[FileSlice]:
    """The snapshot's data files that can hold rows passing every filter, logged with what was skipped.

    ``partitions``: typed partition specs (``[{"ds": date(2024, 6, 1)}]``); a file is kept when its
    partition values match any of them. None or empty: no such restriction, as in ``read_table``.
    """
    pcols = table.metadata().partition_columns
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    kept: list[FileSlice] = []
    by_partition = by_stats = 0
    for add in actions:
        typed = {c: add.get(f"partition.{c}") for c in pcols}
        in_specs = not partitions or any(_in_spec(spec, typed) for spec in partitions)
        if not in_specs or not all(_matches(f, typed[c]) for c, f in partition_filters):
            by_partition += 1
            continue
        if not all(_file_may_match(f, add) for f in stats_filters):
            by_stats += 1
            continue
        kept.append(FileSlice(add["path"], tuple((c, typed[c]) for c in pcols)))
    log.info(
        "delta read %s v%s: %d of %d files planned (%d skipped by partition filters %s, %d by statistics %s)",
        path,
        table.version(),
        len(kept),
        len(actions),
        by_partition,
        [repr(f) for _, f in partition_filters] + ([" OR ".join(map(_describe_spec, partitions))] if partitions else []),
        by_stats,
        [repr(f) for f in stats_filters],
    )
    return kept


def _in_spec(spec: Mapping[str, Any], typed: dict[str, Any]) -> bool:
    """Whether a file's partition values can hold rows of ``spec``: equality on the partition
    columns it names, a None naming the null partition (as ``partition_predicate`` reads it);
    other columns are left to Spark's filter."""
    # floating values are not pruned on: NaN equals itself in Spark, not in Python
    return all(
        typed[c] is None if v is None else (typed[c] is not None and typed[c] == v)
        for c, v in spec.items()
        if c in typed and not isinstance(v, float)
    )


def _describe_spec(spec: Mapping[str, Any]) -> str:
    return "/".join(f"{c}={HIVE_NULL if v is None else partition_string(v)}" for c, v in spec.items())


def _file_may_match(flt: Filter, add: dict[str, Any]) -> bool:
    column = cast(_OnColumn, flt).attribute[0]  # statistics filters are _PRUNABLE ones (classify_filters)
    hi = add.get(f"max.{column}")
    if isinstance(hi, dt.datetime):
        # Delta statistics hold timestamps to the millisecond, cut down (ours, delta-rs's and
        # delta-spark's): the true maximum can be up to 999 us above the one in the log
        # (a year-9999 maximum has no room above it: then the maximum is unknown, and nothing skipped)
        hi = (
            hi + dt.timedelta(milliseconds=1)
            if hi < dt.datetime.max.replace(tzinfo=hi.tzinfo) - dt.timedelta(milliseconds=1)
            else None
        )
    return _may_contain(flt, add.get(f"min.{column}"), hi, add.get(f"null_count.{column}"), add.get("num_records"))
