"""How the embedded engine reads: delta-rs plans the files, Spark's own Parquet reader reads them
wherever it provably returns the same rows, and the Python data source reads them elsewhere
(see docs/DESIGN.md#two-readers-and-when-each-is-used).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import os
import re
from collections.abc import Mapping, Sequence
from functools import reduce
from typing import Any
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.datasource import (
    EqualTo,
    Filter,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNotNull,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Not,
)
from pyspark.sql.types import (
    BinaryType,
    BooleanType,
    ByteType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from jobs.tables.embedded.pruning import FileSlice, classify_filters, plan_files
from jobs.tables.embedded.snapshot import HIVE_NULL, check_readable, open_table, partition_string, spark_schema
from jobs.tables.embedded.source import FORMAT

log = logging.getLogger("lakescore.delta")

READERS = ("auto", "spark", "python")

# (column, op, value): the one filter form read_table takes, so the planner can skip files by it
FilterTuple = tuple[str, str, Any]
OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null")

# Partition column types whose directory form Spark turns into the same value as the log's string,
# whatever the session time zone. Timestamps (zone-dependent) and floats (spelling) are not among them.
PATH_TYPES = (StringType, BooleanType, ByteType, ShortType, IntegerType, LongType, DateType)

# the Python values a filter may compare each column type with (bool is an int: checked apart)
_INTEGRAL = (int,)
_PYTHON_TYPES: dict[type, tuple[type, ...]] = {
    BooleanType: (bool,),
    ByteType: _INTEGRAL,
    ShortType: _INTEGRAL,
    IntegerType: _INTEGRAL,
    LongType: _INTEGRAL,
    FloatType: (int, float),
    DoubleType: (int, float),
    DecimalType: (int, decimal.Decimal),
    StringType: (str,),
    BinaryType: (bytes, bytearray),
    DateType: (dt.date,),
    TimestampType: (dt.datetime,),
    TimestampNTZType: (dt.datetime,),
}


def check_filters(filters: Sequence[FilterTuple]) -> None:
    for flt in filters:
        if len(flt) != 3 or flt[1] not in OPS:
            raise ValueError(f"filter {flt!r}: expected (column, op, value) with op one of {', '.join(OPS)}")
        if flt[2] is None and flt[1] not in ("is null", "is not null"):
            # SQL: a comparison with null is never true, which is rarely what was meant
            raise ValueError(f"filter {flt!r}: compares with None; use (column, 'is null', None)")


def check_filter_types(filters: Sequence[FilterTuple], schema: StructType, path: str) -> None:
    """Refuse a filter whose value the planner could not compare with the column's values: a
    string for a date column would match no file's partition value, and so lose every row."""
    for column, op, value in filters:
        if column not in schema.fieldNames():
            raise ValueError(f"filter on {path}: no column {column!r} (columns: {', '.join(schema.fieldNames())})")
        kind = schema[column].dataType
        wanted = _PYTHON_TYPES.get(type(kind))
        if wanted is None:
            raise ValueError(f"filter on {path}: column {column!r} is {kind.simpleString()}; filter it with .where")
        values = [] if op in ("is null", "is not null") else list(value) if op in ("in", "not in") else [value]
        for v in values:
            if v is not None and (
                not isinstance(v, wanted)
                or (isinstance(v, bool) and bool not in wanted)
                or (isinstance(v, dt.datetime) and dt.datetime not in wanted)
            ):
                raise ValueError(
                    f"filter on {path}: ({column} {op} {value!r}) compares {kind.simpleString()} column {column!r} "
                    f"with a {type(v).__name__}; give a {' or '.join(t.__name__ for t in wanted)}"
                )


def literal(value: Any) -> Column:
    """``value`` as a typed Spark literal. A date goes as its ISO text cast to date: pyspark hands a
    ``datetime.date`` to the JVM as ``java.sql.Date.valueOf(strftime(...))``, which fails with an
    empty IllegalArgumentException for years before 1000 (strftime writes year 1 as ``1-01-01``)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return F.lit(value.isoformat()).cast(DateType())
    return F.lit(value)


def filter_column(filters: Sequence[FilterTuple]) -> Column:
    """The filters as one Spark condition (AND), with SQL's semantics."""

    def one(column: str, op: str, value: Any) -> Column:
        c = F.col(quoted(column))
        return {
            "=": lambda: c == literal(value),
            "!=": lambda: c != literal(value),
            "<": lambda: c < literal(value),
            "<=": lambda: c <= literal(value),
            ">": lambda: c > literal(value),
            ">=": lambda: c >= literal(value),
            "in": lambda: c.isin([literal(v) for v in value]),
            "not in": lambda: ~c.isin([literal(v) for v in value]),
            "is null": c.isNull,
            "is not null": c.isNotNull,
        }[op]()

    return reduce(lambda a, b: a & b, [one(*f) for f in filters])


def data_source_filters(filters: Sequence[FilterTuple]) -> list[Filter]:
    """The filters as the Filter objects Spark pushes into a Python data source, for the planner."""

    def one(column: str, op: str, value: Any) -> Filter:
        attribute = (column,)
        simple = {"=": EqualTo, "<": LessThan, "<=": LessThanOrEqual, ">": GreaterThan, ">=": GreaterThanOrEqual}
        if op in simple:
            return simple[op](attribute, value)
        return {
            "!=": lambda: Not(EqualTo(attribute, value)),
            "in": lambda: In(attribute, tuple(value)),
            "not in": lambda: Not(In(attribute, tuple(value))),
            "is null": lambda: IsNull(attribute),
            "is not null": lambda: IsNotNull(attribute),
        }[op]()

    return [one(*f) for f in filters]


def quoted(name: str) -> str:
    """A column name as Spark reads it literally, dots and all."""
    return "`" + name.replace("`", "``") + "`"


def read_embedded(
    spark: SparkSession,
    path: str,
    *,
    partitions: Sequence[Mapping[str, Any]] | None,
    version: int | None,
    timestamp: str | None,
    filters: Sequence[FilterTuple],
    reader: str,
    batch_size: int | None,
) -> DataFrame:
    """The embedded engine's read; ``reader`` is ``auto``, ``spark`` (or fail) or ``python``."""
    if reader not in READERS:
        raise ValueError(f"embedded reader must be one of {', '.join(READERS)}, got {reader!r}")
    df = None
    if reader != "python":
        df = _read_with_spark_parquet(spark, path, partitions, version, timestamp, filters, required=reader == "spark")
    if df is None:
        source = spark.read.format(FORMAT).option("path", path)
        if batch_size:
            source = source.option("batch_size", str(batch_size))
        if version is not None:
            source = source.option("versionAsOf", str(version))
        if timestamp is not None:
            source = source.option("timestampAsOf", timestamp)
        df = source.load()
        check_filter_types([*filters, *_spec_filters(partitions)], df.schema, path)
    # On the Python reader Spark pushes these into the data source, whose planner prunes and skips
    # files by them; on Spark's reader the files were planned by them already, and the rows are
    # filtered here all the same, so a planner that kept too many files never returns extra rows.
    return restrict(df, partitions, filters)


def restrict(df: DataFrame, partitions: Sequence[Mapping[str, Any]] | None, filters: Sequence[FilterTuple]) -> DataFrame:
    """``df`` filtered to the partition specs (ORed) and the filters (ANDed)."""
    if partitions:
        df = df.where(partition_predicate(partitions))
    return df.where(filter_column(filters)) if filters else df


def _spec_filters(partitions: Sequence[Mapping[str, Any]] | None) -> list[FilterTuple]:
    return [(c, "=", v) for spec in partitions or () for c, v in spec.items() if v is not None]


def partition_predicate(specs: Sequence[Mapping[str, Any]]) -> Column:
    """``(ds = v1) OR (ds = v2)`` as a Column: typed literals, never SQL text built from input.
    A None names the null partition (``ds IS NULL``): a partition spec names a partition, and the
    rows whose partition value is null are one (Hive's ``__HIVE_DEFAULT_PARTITION__``)."""

    def equals(column: str, value: Any) -> Column:
        c = F.col(quoted(column))
        return c.isNull() if value is None else c == literal(value)

    def one(spec: Mapping[str, Any]) -> Column:
        return reduce(lambda a, b: a & b, [equals(c, v) for c, v in spec.items()])

    return reduce(lambda a, b: a | b, [one(s) for s in specs])


def _read_with_spark_parquet(
    spark: SparkSession,
    path: str,
    partitions: Sequence[Mapping[str, Any]] | None,
    version: int | None,
    timestamp: str | None,
    filters: Sequence[FilterTuple],
    required: bool,
) -> DataFrame | None:
    """The planned files through Spark's Parquet reader; None (or, when ``required``, an error)
    where that reader could return different rows than the log describes."""
    root = _local_root(path)
    if root is None:
        reason = "the table is not on a filesystem this reader reaches (object storage goes through the Python reader)"
        _not_by_spark(path, reason, required)
        return None
    table = open_table(path, version, timestamp)
    check_readable(table, path)
    schema = spark_schema(table)
    pcols = list(table.metadata().partition_columns)
    check_filter_types([*filters, *_spec_filters(partitions)], schema, path)
    refusal = _root_refusal(root) or _schema_refusal(schema, pcols)
    if refusal is not None:
        _not_by_spark(path, refusal, required)
        return None
    by_partition, by_stats, _ = classify_filters(data_source_filters(filters), schema, pcols)
    files = plan_files(table, path, by_partition, by_stats, partitions)
    refusal = next((r for r in (_layout_refusal(f, pcols) for f in files) if r), None)
    if refusal is not None:
        _not_by_spark(path, refusal, required)
        return None
    if not files:
        return spark.createDataFrame([], schema)
    uris = [_file_uri(os.path.join(root, unquote(f.path))) for f in files]
    data = (
        spark.read.schema(schema)
        .option("basePath", _file_uri(root))
        # delta-rs and pyarrow write proleptic Gregorian dates without Spark's version tag, which
        # Spark would otherwise refuse (EXCEPTION) or rebase for dates before 1582
        .option("datetimeRebaseMode", "CORRECTED")
        .option("int96RebaseMode", "CORRECTED")
        .parquet(*uris)
    )
    # Spark puts partition columns last: back into the table's order
    return data.select(*[unpushable(field) for field in schema.fields])


def _not_by_spark(path: str, refusal: str, required: bool) -> None:
    if required:
        raise ValueError(f"Delta table {path}: Spark's Parquet reader cannot read it exactly: {refusal}")
    log.info("delta read %s: through the Python reader, since %s", path, refusal)


def unpushable(field: StructField) -> Column:
    """The column, with floating ones behind ``nanvl(x, x)`` (which is ``x``, NaN and -0.0 included),
    an expression Spark does not push into Parquet's statistics, which omit NaN
    (see docs/DESIGN.md#floating-columns-and-nan)."""
    column = F.col(quoted(field.name))
    if isinstance(field.dataType, (FloatType, DoubleType)):
        return F.nanvl(column, column).alias(field.name)
    return column


def _local_root(path: str) -> str | None:
    """The table's absolute local path, or None for object storage and other remote schemes."""
    if path.startswith("file://"):
        return unquote(path[len("file://") :])
    if path.startswith("file:"):
        return unquote(path[len("file:") :])
    return None if "://" in path else os.path.abspath(path)


def _file_uri(local: str) -> str:
    # an explicit scheme: on a cluster whose default filesystem is HDFS a bare path would mean HDFS.
    # Not percent-encoded: Hadoop's Path takes the characters as they are.
    return "file:" + local


def _root_refusal(root: str) -> str | None:
    # Hadoop expands glob characters in the paths it is given, even in a basePath
    if any(ch in root for ch in _GLOB):
        return f"the table's path has one of {_GLOB}, which Spark's file listing reads as a glob"
    return None


_GLOB = "{}[]*?\\"


def _schema_refusal(schema: StructType, pcols: Sequence[str]) -> str | None:
    for field in schema.fields:
        if isinstance(field.dataType, StructType) and _has_floating_field(field.dataType):
            # Spark pushes comparisons on struct fields into Parquet too, where NaN is not in
            # min/max (see unpushable); a struct cannot be put behind an expression field by field
            return f"column {field.name!r} has a floating field inside a struct, whose Parquet statistics omit NaN"
    for name in pcols:
        kind = schema[name].dataType
        if not isinstance(kind, PATH_TYPES):
            return f"partition column {name!r} is {kind.simpleString()}, whose directory form Spark may read differently"
    return None


def _has_floating_field(struct: StructType) -> bool:
    return any(
        isinstance(f.dataType, (FloatType, DoubleType))
        or (isinstance(f.dataType, StructType) and _has_floating_field(f.dataType))
        for f in struct.fields
    )


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _unescape(text: str) -> str:
    """Hive's unescaping of a directory name, as Spark's partition discovery does it."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _layout_refusal(file: FileSlice, pcols: Sequence[str]) -> str | None:
    """Why Spark's partition discovery could read this file's partition values differently from
    the log's, or None when its directories spell exactly those values."""
    relative = unquote(file.path)
    if "://" in relative or relative.startswith("/"):
        return f"file {relative} lies outside the table's directory"
    *directories, name = relative.split("/")
    if name.startswith(("_", ".")):
        return f"file {relative} has a name Spark treats as hidden"
    if len(directories) != len(pcols):
        return f"file {relative} is not in the table's partition directories {'/'.join(c + '=...' for c in pcols)}"
    values = dict(file.partition_values)
    for directory, column in zip(directories, pcols, strict=True):
        key, _, raw = directory.partition("=")
        expected = partition_string(values[column])
        if expected == HIVE_NULL:  # a string that says null to Spark's partition discovery
            return f"partition value {column}={expected!r} of {relative} would read as null"
        if key != column or (raw != HIVE_NULL if expected is None else _unescape(raw) != expected):
            return f"directory {directory!r} of {relative} does not spell the log's partition value {column}={expected!r}"
    return None
