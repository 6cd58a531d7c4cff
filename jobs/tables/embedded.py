"""The embedded Delta engine: a Spark Python Data Source whose Delta protocol work is done by delta-rs.

Reads plan one Spark partition per active data file of a snapshot and prune files by pushed-down
partition filters. ``read_table`` uses this reader for object storage and other tables Spark's own
Parquet reader could misread; local tables go through the same planner (``plan_files``) and then
Spark's reader (``jobs.tables.reading``). Writes run on the executors as Arrow batches, each task
writing Parquet files and returning add-actions; the driver commits them as one Delta transaction
(``commit``) or deletes them (``abort``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import math
import operator
import os
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql.datasource import (
    DataSource,
    DataSourceArrowWriter,
    DataSourceReader,
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
    WriterCommitMessage,
)
from pyspark.sql.types import ArrayType, DataType, DoubleType, FloatType, MapType, StructField, StructType

from jobs.logs import StderrHandler

FORMAT = "lakescore_delta"
log = logging.getLogger("lakescore.delta")
if not logging.getLogger("lakescore").handlers:
    # Planning and commit run in Python workers the JVM starts, where nobody configured logging.
    _handler = StderrHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("lakescore").addHandler(_handler)
    logging.getLogger("lakescore").setLevel(logging.INFO)

# Reader features whose meaning this reader cannot honor: refuse rather than return wrong rows.
# Reader features whose tables the embedded engine would read wrongly, so it refuses them by name:
# deletion vectors (deleted rows would come back), column mapping (physical names: nulls), v2
# checkpoints (delta-rs cannot replay them), type widening (files of the older type, which one of
# the readers crashes on), variants (delta-rs gives struct<metadata, value>, and a shredded one's
# typed columns would be lost). vacuumProtocolCheck only binds vacuum, which delta-rs honours.
UNSUPPORTED_READER_FEATURES = {
    "deletionVectors",
    "columnMapping",
    "v2Checkpoint",
    "typeWidening",
    "typeWidening-preview",
    "variantType",
    "variantType-preview",
    "variantShredding",
    "variantShredding-preview",
}


def _open(path: str, version: int | None = None, timestamp: str | None = None):
    """The table at ``version``, or as of ``timestamp`` (ISO 8601), or its latest snapshot."""
    from deltalake import DeltaTable

    if version is not None:
        return DeltaTable(path, version=version)
    table = DeltaTable(path)
    if timestamp:
        moment = dt.datetime.fromisoformat(timestamp)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        # delta-rs falls back to the earliest version for an instant before it; delta-spark refuses
        # (DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION), and so do we: that snapshot did not exist.
        earliest = _earliest_commit_ms(path)
        if earliest is not None and moment.timestamp() * 1000 < earliest:
            first = dt.datetime.fromtimestamp(earliest / 1000, dt.UTC).isoformat()
            raise ValueError(f"Delta table {path}: timestamp {timestamp} is before the earliest version available ({first})")
        table.load_as_version(moment)
    return table


_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def _earliest_commit_ms(path: str) -> int | None:
    """When the oldest commit still in the log was made (epoch ms), from that one commit file.

    Its commitInfo carries the time (inCommitTimestamp when the table has them, as delta-spark
    prefers); a commit without one falls back to the file's modification time, as delta-spark does.
    Only the listing and one small file are read, not the whole history.
    """
    import pyarrow.fs as pafs

    fs, root = _table_filesystem(path)
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/_delta_log", allow_not_found=True))
    commits = [i for i in infos if i.is_file and _COMMIT_FILE.match(i.base_name)]
    if not commits:
        return None
    oldest = min(commits, key=lambda i: i.base_name)
    with fs.open_input_stream(oldest.path) as stream:
        for line in stream.read().decode().splitlines():
            info = json.loads(line).get("commitInfo") if line.strip() else None
            if info:
                stamp = info.get("inCommitTimestamp", info.get("timestamp"))
                if stamp is not None:
                    return int(stamp)
    return int(oldest.mtime.timestamp() * 1000) if oldest.mtime else None


def spark_schema(table) -> StructType:
    """The Spark schema of a delta-rs table (snapshot)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(pa.schema(table.schema().to_arrow()))


class UnsupportedFeatureError(ValueError):
    """A table uses a feature this engine cannot honour: retrying will not help (exit 2)."""


def _check_readable(table, path: str, doing: str = "read") -> None:
    protocol = table.protocol()
    features = set(protocol.reader_features or [])
    # Column mapping also runs on the older protocol (reader version 2), which lists no features:
    # its files name columns by physical names, so reading them by logical name gives nulls
    if table.metadata().configuration.get("delta.columnMapping.mode", "none") != "none":
        features.add("columnMapping")
    blocked = sorted(features & UNSUPPORTED_READER_FEATURES)
    if blocked:
        raise UnsupportedFeatureError(
            f"Delta table {path} uses reader feature(s) {', '.join(blocked)} that the embedded engine "
            f"cannot {doing} correctly; use the native engine (delta-spark) for this table"
        )
    collated = _collations(json.loads(table.schema().to_json()))
    if collated:
        # a writer feature only, but delta-rs drops the collation from the schema, and comparing
        # the strings as binary would quietly change what every filter and join means
        column, collation = collated[0]
        raise UnsupportedFeatureError(
            f"Delta table {path}: column {column!r} has collation {collation}, which the embedded engine "
            f"cannot {doing} (it would compare as binary); use the native engine (delta-spark) for this table"
        )


def _collations(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``(column path, collation)`` for every collated string in a Delta schema (JSON form)."""
    out: list[tuple[str, str]] = []
    for field_ in schema.get("fields", ()):
        name = prefix + field_["name"]
        for where, collation in (field_.get("metadata") or {}).get("__COLLATIONS", {}).items():
            out.append((prefix + where, collation))
        kind = field_["type"]
        while isinstance(kind, dict) and kind.get("type") in ("array", "map"):
            kind = kind.get("elementType") or kind.get("valueType")
        if isinstance(kind, dict) and kind.get("type") == "struct":
            out += _collations(kind, name + ".")
    return out


def partition_string(value: Any) -> str | None:
    """The Delta log's string form of a partition value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


_COMPARE = {
    EqualTo: operator.eq,
    GreaterThan: operator.gt,
    GreaterThanOrEqual: operator.ge,
    LessThan: operator.lt,
    LessThanOrEqual: operator.le,
}


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
    return _COMPARE[type(flt)](value, flt.value)


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


@dataclass(frozen=True)
class FileSlice(InputPartition):
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
    are left out of both: NaN sorts above every number (and equals itself) in Spark, but not in
    Python's comparisons nor in min/max, so "x > 5" could skip a file holding NaN rows.
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
        attribute = getattr(flt.child if isinstance(flt, Not) else flt, "attribute", ())
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
    partitions: Sequence[dict[str, Any]] | None = None,
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


def _in_spec(spec: dict[str, Any], typed: dict[str, Any]) -> bool:
    """Whether a file's partition values can hold rows of ``spec``: SQL equality on the partition
    columns it names (null equals nothing); other columns are left to Spark's filter."""
    # floating values are not pruned on: NaN equals itself in Spark, not in Python
    return all(typed[c] is not None and typed[c] == v for c, v in spec.items() if c in typed and not isinstance(v, float))


def _describe_spec(spec: dict[str, Any]) -> str:
    return "/".join(f"{c}={partition_string(v)}" for c, v in spec.items())


def _file_may_match(flt: Filter, add: dict[str, Any]) -> bool:
    column = flt.attribute[0]
    hi = add.get(f"max.{column}")
    if isinstance(hi, dt.datetime):
        # Delta statistics hold timestamps to the millisecond, cut down (ours, delta-rs's and
        # delta-spark's): the true maximum can be up to 999 us above the one in the log
        # (a year-9999 maximum has no room above it: then the maximum is unknown, and nothing skipped)
        hi = hi + dt.timedelta(milliseconds=1) if hi < dt.datetime.max.replace(tzinfo=hi.tzinfo) - dt.timedelta(milliseconds=1) else None
    return _may_contain(flt, add.get(f"min.{column}"), hi, add.get(f"null_count.{column}"), add.get("num_records"))


class DeltaReader(DataSourceReader):
    def __init__(self, path: str, version: int | None, timestamp: str | None, schema: StructType, batch_size: int) -> None:
        self.path, self.version, self.timestamp, self.batch_size = path, version, timestamp, batch_size
        self.spark_schema = schema
        self.partition_filters: list[tuple[str, Filter]] = []  # (partition column, filter)
        self.stats_filters: list[Filter] = []

    def _table(self):
        return _open(self.path, self.version, self.timestamp)

    def pushFilters(self, filters: list[Filter]) -> Iterator[Filter]:
        table = self._table()
        self.partition_filters, self.stats_filters, residual = classify_filters(
            filters, self.spark_schema, table.metadata().partition_columns
        )
        yield from residual

    def partitions(self) -> Sequence[InputPartition]:
        table = self._table()
        _check_readable(table, self.path)
        kept = plan_files(table, self.path, self.partition_filters, self.stats_filters)
        # Spark needs at least one partition to produce an (empty) result with the right schema.
        return kept or [FileSlice("", ())]

    def read(self, partition: FileSlice) -> Iterator[pa.RecordBatch]:
        """Yield the file's rows as Arrow batches in the Spark schema, without a round trip through Python objects.

        Per batch, only Arrow calls run: the partition columns are one repeated scalar, columns a
        file lacks (added after it was written) are nulls, and casts are skipped where the file
        already has the table's type.
        """
        target = _target_schema(self.spark_schema)
        if not partition.path:
            return
        file = _parquet_file(_join(self.path, partition.path))
        constants = {name: pa.scalar(value, target.field(name).type) for name, value in partition.partition_values}
        present = set(file.schema_arrow.names)
        stored = [f.name for f in target if f.name in present and f.name not in constants]
        # one decoding thread: Spark already runs a task per core
        for batch in file.iter_batches(batch_size=self.batch_size, columns=stored, use_threads=False):
            columns = []
            for f in target:
                if f.name in constants:
                    columns.append(pa.repeat(constants[f.name], batch.num_rows))
                elif f.name in present:
                    column = batch.column(f.name)
                    columns.append(column if column.type == f.type else column.cast(f.type))
                else:  # a column added to the table after this file was written
                    columns.append(pa.nulls(batch.num_rows, f.type))
            yield pa.RecordBatch.from_arrays(columns, schema=target)


def _target_schema(schema: StructType) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, timezone="UTC")


def _parquet_file(uri: str) -> pq.ParquetFile:
    # pre_buffer coalesces the column chunks of a row group into few large reads: one round trip
    # instead of one per column on object storage; on a local disk it only costs copies.
    if "://" in uri:
        fs, where = _filesystem(uri)
        return pq.ParquetFile(where, filesystem=fs, pre_buffer=True, coerce_int96_timestamp_unit="us")
    # INT96 (Spark's and Hive's old timestamps) to microseconds, Spark's unit: pyarrow's default,
    # nanoseconds, overflows outside 1677-2262
    return pq.ParquetFile(uri, pre_buffer=False, coerce_int96_timestamp_unit="us")


def _filesystem(uri: str):
    """The pyarrow filesystem for a URI and the path inside it.

    Object stores take their credentials, region and endpoint from the environment (AWS_* for S3),
    as delta-rs does, so the Parquet files and the log are reached the same way. ``s3a://`` (the
    Hadoop spelling, which delta-rs accepts) is read as ``s3://``.
    """
    import pyarrow.fs as pafs

    scheme, _, rest = uri.partition("://")
    if scheme not in ("s3", "s3a"):
        return pafs.FileSystem.from_uri(uri)
    bucket = rest.partition("/")[0]
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    return _s3_filesystem(bucket, environment), rest


@functools.lru_cache(maxsize=16)
def _s3_filesystem(bucket: str, environment: tuple[tuple[str, str], ...]):
    # One filesystem per bucket and environment, per process: building one from a URI can cost a
    # request (the bucket's region), and a task opens one file per partition it writes or reads.
    # The environment is part of the key only, so a changed endpoint or key gets a new filesystem.
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(f"s3://{bucket}")[0]


def _join(root: str, relative: str) -> str:
    relative = unquote(relative)
    if "://" in relative or relative.startswith("/"):
        return relative
    return f"{root.rstrip('/')}/{relative}"


# ---------------------------------------------------------------------------------------------
# writing


class TableWriteError(RuntimeError):
    """A Delta write that LakeScore refused or could not commit; the message names the table."""


class SchemaMismatchError(TableWriteError, ValueError):
    """The data's schema differs from the table's and the write did not ask for (or allow) evolution."""


class ConcurrentWriteError(TableWriteError):
    """Another writer committed to the partitions this write replaces after this write was planned."""


CONFLICT_MODES = ("fail", "retry")


@dataclass(frozen=True)
class CommitPolicy:
    """What a commit does when it meets another writer's commit.

    Attributes:
        conflict: ``fail`` raises ConcurrentWriteError when a commit made after this write was
            planned changed a partition this write replaces; ``retry`` commits on top of it (the
            later writer's rows replace the earlier's, as a rerun would).
        max_retries: how many times a commit that lost the race for the next log version is tried
            again (and, with ``retry``, how many conflicts it rides over) before giving up.
    """

    conflict: str = "fail"
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.conflict not in CONFLICT_MODES:
            raise ValueError(f"conflict must be one of {CONFLICT_MODES}, got {self.conflict!r}")
        if not 0 <= self.max_retries <= 100:
            raise ValueError(f"max_retries must be between 0 and 100, got {self.max_retries}")


def _loose(kind: DataType) -> DataType:
    """``kind`` with every nullability flag set: writes are checked on names and types only."""
    if isinstance(kind, StructType):
        return StructType([StructField(f.name, _loose(f.dataType), True) for f in kind.fields])
    if isinstance(kind, ArrayType):
        return ArrayType(_loose(kind.elementType), True)
    if isinstance(kind, MapType):
        return MapType(_loose(kind.keyType), _loose(kind.valueType), True)
    return kind


@dataclass(frozen=True)
class SchemaDiff:
    """How a write's columns differ from its table's: by name, and by type where both have the column."""

    new: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    changed: tuple[tuple[str, str, str], ...] = ()  # (column, table type, data type)

    def __bool__(self) -> bool:
        return bool(self.new or self.missing or self.changed)

    def describe(self) -> str:
        parts = []
        if self.new:
            parts.append(f"new column(s) {list(self.new)}")
        if self.missing:
            parts.append(f"missing column(s) {list(self.missing)}")
        if self.changed:
            parts.append("changed type(s) " + ", ".join(f"{c}: {t} -> {d}" for c, t, d in self.changed))
        return "; ".join(parts)


def schema_diff(table: StructType, data: StructType) -> SchemaDiff:
    """Compare a write's Spark schema with its table's (nullability ignored, nested types compared whole)."""
    ours = {f.name: f.dataType for f in table.fields}
    theirs = {f.name: f.dataType for f in data.fields}
    changed = tuple(
        (name, ours[name].simpleString(), theirs[name].simpleString())
        for name in ours
        if name in theirs and _loose(ours[name]) != _loose(theirs[name])
    )
    return SchemaDiff(
        new=tuple(n for n in theirs if n not in ours), missing=tuple(n for n in ours if n not in theirs), changed=changed
    )


def refuse_schema_mismatch(path: str, table: StructType, data: StructType, merge_schema: bool) -> SchemaDiff:
    """How a write's schema differs from its table's; raises
    SchemaMismatchError, naming the table and the columns, when the write may not go ahead.

    New columns are added (nullable) only with ``merge_schema``; with it, columns the data lacks
    are written as nulls. A changed type is always refused: old files could not be read as it.
    Both engines check this, so a mismatch is the same error whichever writes.
    """
    diff = schema_diff(table, data)
    if not diff:
        return diff
    if diff.changed or not merge_schema:
        hint = "" if diff.changed else "; pass merge_schema=True to add new columns"
        raise SchemaMismatchError(f"Delta write to {path}: the data's schema differs from the table's: {diff.describe()}{hint}")
    required = [f.name for f in table.fields if f.name in diff.missing and not f.nullable]
    if required:
        raise SchemaMismatchError(f"Delta write to {path}: missing column(s) {required} are not nullable in the table")
    return diff


@dataclass
class WrittenFiles(WriterCommitMessage):
    """What one write task produced: add-actions as plain dicts (picklable)."""

    adds: list[dict[str, Any]] = field(default_factory=list)


def _stat_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):  # NaN and inf are not JSON: leave the stat out
        return None
    if hasattr(value, "is_finite"):  # Decimal
        return str(value)
    return value


class FileStats:
    """Delta per-file statistics (numRecords, minValues, maxValues, nullCount), accumulated batch by batch.

    Nested, binary and boolean columns get null counts only; a column with a NaN or infinite
    min/max anywhere in the file gets no min/max (they are not JSON, and would mislead skipping).
    """

    def __init__(self) -> None:
        self.rows = 0
        self.mins: dict[str, Any] = {}
        self.maxs: dict[str, Any] = {}
        self.nulls: dict[str, int] = {}
        self.unbounded: set[str] = set()

    def update(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for name, column in zip(table.column_names, table.columns, strict=True):
            kind = column.type
            if pa.types.is_nested(kind):
                continue
            self.nulls[name] = self.nulls.get(name, 0) + column.null_count
            if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_boolean(kind):
                continue
            if column.null_count == len(column) or name in self.unbounded:
                continue
            bounds = pc.min_max(column)
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
            if _stat_value(lo) is None or _stat_value(hi) is None:
                self.unbounded.add(name)
                continue
            self.mins[name] = lo if name not in self.mins else min(self.mins[name], lo)
            self.maxs[name] = hi if name not in self.maxs else max(self.maxs[name], hi)

    def json(self) -> str:
        bounded = [c for c in self.mins if c not in self.unbounded]
        return json.dumps(
            {
                "numRecords": self.rows,
                "minValues": {c: _stat_value(self.mins[c]) for c in bounded},
                "maxValues": {c: _stat_value(self.maxs[c]) for c in bounded},
                "nullCount": self.nulls,
            }
        )


@dataclass
class _OpenFile:
    relative: str
    full: str
    values: tuple[tuple[str, Any], ...]
    writer: pq.ParquetWriter
    stats: FileStats = field(default_factory=FileStats)
    arrow_bytes: int = 0
    pending: list[pa.Table] = field(default_factory=list)  # the next row group, not yet written
    pending_rows: int = 0
    pending_bytes: int = 0

    def add(self, data: pa.Table) -> None:
        self.pending.append(data)
        self.pending_rows += data.num_rows
        self.pending_bytes += data.nbytes
        self.stats.update(data)
        self.arrow_bytes += data.nbytes

    def flush(self) -> None:
        """Write what is pending as one row group."""
        if self.pending_rows:
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=self.pending_rows)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0


def _delete(full: str) -> None:
    try:
        if "://" in full:
            # delta-rs's object store, not pyarrow's: pyarrow's S3 delete_file writes an empty
            # "directory/" marker object when it removes the last file under a prefix.
            from deltalake.fs import DeltaStorageHandler

            parent, _, name = full.rpartition("/")
            # the handler percent-decodes its URL: quoted, an escaped directory ("p=t%3A1") stays one
            DeltaStorageHandler(quote(parent, safe=":/")).delete_file(name)
        else:
            os.remove(full)
    except FileNotFoundError:
        pass  # already gone: abort after a task cleaned up after itself
    except Exception as err:  # delta-rs raises its own errors; a leftover file must not hide the write's error
        log.warning("could not delete %s: %s", full, err)


DEFAULT_TARGET_FILE_SIZE = 128 * 1024 * 1024
# A task's batches arrive a few thousand rows per partition at a time; each open file gathers them
# into row groups of about this many rows (smaller files, faster reads for every engine). All of a
# task's open files together hold at most TASK_BUFFER_BYTES of Arrow data before they write out.
ROW_GROUP_ROWS = 128 * 1024
TASK_BUFFER_BYTES = 64 * 1024 * 1024
# Where a write that has ended (committed or aborted) leaves its marker, for task attempts still
# running (see DeltaWriter.abort); readers skip "_" directories, vacuum removes old markers.
ENDED_DIR = "_lakescore/ended"


class DeltaWriter(DataSourceArrowWriter):
    def __init__(self, path: str, schema: StructType, overwrite: bool, options: dict[str, str]) -> None:
        self.path = path
        self.spark_schema = schema
        self.overwrite = overwrite
        self.partition_by = [c for c in options.get("partition_by", "").split(",") if c]
        self.replace = json.loads(options["replace_partitions"]) if options.get("replace_partitions") else None
        self.metadata = json.loads(options.get("commit_metadata") or "{}")
        self.txn_app_id = options.get("txn_app_id")
        self.txn_version = int(options["txn_version"]) if options.get("txn_version") else None
        self.target_file_size = int(options.get("target_file_size") or DEFAULT_TARGET_FILE_SIZE)
        self.merge_schema = options.get("merge_schema", "false").lower() == "true"
        self.table_properties = json.loads(options.get("table_properties") or "{}")
        self.policy = CommitPolicy(options.get("conflict", "fail"), int(options.get("max_retries", "3")))
        # Every file of this write carries this id in its name, so abort can find the files of a task
        # that died or was cancelled mid-write and never reported them (see abort).
        self.write_id = uuid.uuid4().hex[:16]
        missing = [c for c in self.partition_by if c not in schema.fieldNames()]
        if missing:
            raise ValueError(f"Delta write to {path}: partition column(s) {missing} are not in the data")
        # The snapshot this write is based on, taken when Spark plans it (this runs on the driver):
        # what other writers commit after it is what the commit checks for conflicts.
        self.read_version: int | None = None
        if _exists(path):
            table = _open(path)
            # files written by logical column names into a column-mapped table would read as nulls
            _check_readable(table, path, "write")
            self.read_version = table.version()
            self._commit_schema(table)  # a schema mismatch fails here, before any task writes a file

    # -- executors ----------------------------------------------------------------------------
    def write(self, iterator: Iterator[pa.RecordBatch]) -> WrittenFiles:
        """Stream batches into one open Parquet file per partition, rolling at the target size.

        Memory holds one batch and the open files' pending row groups (see ROW_GROUP_ROWS and
        TASK_BUFFER_BYTES), not the task's rows. If the task fails, or finds the write already
        ended once its files are closed (a failed or duplicate attempt outliving the job), every
        file it wrote is deleted before the error goes on.
        """
        open_files: dict[tuple[tuple[str, Any], ...], _OpenFile] = {}
        adds: list[dict[str, Any]] = []
        try:
            for batch in iterator:
                if not batch.num_rows:
                    continue
                for values, part in self._split(pa.Table.from_batches([batch])):
                    data = part.drop_columns(self.partition_by)
                    current = open_files.get(values) or open_files.setdefault(values, self._open(values, data.schema))
                    current.add(data)
                    if current.pending_rows >= ROW_GROUP_ROWS:
                        current.flush()
                    if current.arrow_bytes >= self.target_file_size:
                        adds.append(self._close(open_files.pop(values)))
                if sum(f.pending_bytes for f in open_files.values()) >= TASK_BUFFER_BYTES:
                    for current in open_files.values():
                        current.flush()
            while open_files:
                adds.append(self._close(open_files.popitem()[1]))
            if _file_exists(self._end_marker()):
                raise TableWriteError(
                    f"Delta write to {self.path}: the write had ended (committed or aborted) before this task attempt finished; its files are deleted"
                )
        except BaseException:
            for current in open_files.values():
                with contextlib.suppress(Exception):
                    current.writer.close()
                _delete(current.full)
            _delete_under(self.path, {add["path"] for add in adds})
            raise
        return WrittenFiles(adds)

    def _open(self, values: tuple[tuple[str, Any], ...], schema: pa.Schema) -> _OpenFile:
        directory = "/".join(f"{escape_path_name(c)}={escape_path_name(_hive_value(v))}" for c, v in values)
        name = f"part-{self.write_id}-{uuid.uuid4().hex}.snappy.parquet"
        relative = f"{directory}/{name}" if directory else name
        full = f"{self.path.rstrip('/')}/{relative}"  # as it is on storage; the log's URI form is delta-rs's to make
        if "://" in full:
            fs, where = _filesystem(full)
            writer = pq.ParquetWriter(where, schema, filesystem=fs, compression="snappy")
        else:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            writer = pq.ParquetWriter(full, schema, compression="snappy")
        return _OpenFile(relative, full, values, writer)

    def _close(self, current: _OpenFile) -> dict[str, Any]:
        current.flush()
        current.writer.close()
        return {
            "path": current.relative,
            "size": os.path.getsize(current.full) if "://" not in current.full else _remote_size(current.full),
            "partition_values": {c: partition_string(v) for c, v in current.values},
            "modification_time": int(time.time() * 1000),
            "stats": current.stats.json(),
        }

    def _split(self, data: pa.Table) -> list[tuple[tuple[tuple[str, Any], ...], pa.Table]]:
        if not self.partition_by:
            return [((), data)]
        keys = data.select(self.partition_by).group_by(self.partition_by).aggregate([]).to_pylist()
        out = []
        for key in keys:
            mask = None
            for c in self.partition_by:
                col = data.column(c)
                cond = pc.is_null(col) if key[c] is None else pc.equal(col, pa.scalar(key[c], col.type))
                mask = cond if mask is None else pc.and_(mask, cond)
            out.append((tuple((c, key[c]) for c in self.partition_by), data.filter(mask)))
        return out

    # -- driver -------------------------------------------------------------------------------
    def commit(self, messages: list[WrittenFiles | None]) -> None:
        """Commit every task's files as one Delta transaction (Spark calls ``abort`` if this raises),
        then clear out what other attempts of the same tasks wrote (see ``_tidy_after_commit``)."""
        self._commit(messages)
        self._tidy_after_commit([a for m in messages if m is not None for a in m.adds])

    def _commit(self, messages: list[WrittenFiles | None]) -> None:
        """The commit itself.

        Conflicts are judged here rather than by delta-rs: its checker treats a
        ``create_write_transaction`` overwrite as having read the whole table, so two overwrites of
        different partitions conflict, and it lets an overwrite commit over a concurrent append to
        (or first fill of) the same partition, leaving both writers' rows. So the commit compares
        the files of the snapshot it was planned on with the latest one, and asks delta-rs for
        exactly the next log version (``max_commit_retries=0``): the log's put-if-absent makes that
        atomic, so nothing can land between the check and the commit unnoticed.
        """
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import AddAction

        adds = [a for m in messages if m is not None for a in m.adds]
        self._check_replace(adds)
        actions = [AddAction(a["path"], a["size"], a["partition_values"], a["modification_time"], True, a["stats"]) for a in adds]
        read_version = self.read_version
        attempts = 0
        evolved = False
        last_error: Exception | None = None
        while attempts <= self.policy.max_retries:
            if not _exists(self.path):
                if self._create(actions):
                    return
                continue  # another writer created the table first: commit into it
            table = _open(self.path)
            if self._already_committed(table):
                self.abort(messages)
                return
            if self._list_implicit_invariants(table):
                continue  # its own commit: check again on top of it
            existing = table.metadata().partition_columns
            if list(existing) != list(self.partition_by):
                raise ValueError(
                    f"Delta write to {self.path}: table is partitioned by {existing}, the write by {self.partition_by}"
                )
            schema = self._commit_schema(table)
            if schema is not None and not self.overwrite:
                if evolved:
                    raise TableWriteError(f"Delta write to {self.path}: adding columns {self._describe_new(table)} did not take")
                evolved = True
                # delta-rs ignores the schema of an append, so new columns go in first, in their own
                # (metadata-only) commit; if the append then fails they stay, null, which is what a
                # retried write would add again anyway.
                # The app transaction belongs to the data commit: recorded here, it would skip that.
                table.alter.add_columns(self._new_fields(table), commit_properties=self._props(app_transaction=False))
                log.info("delta %s: added column(s) %s", self.path, self._describe_new(table))
                continue
            clashes = self._conflicts(table, read_version)
            if clashes:
                where = self._describe(clashes)
                if self.policy.conflict == "fail":
                    raise ConcurrentWriteError(
                        f"Delta write to {self.path}: partition(s) {where} were changed by another writer's commit "
                        f"(version(s) {_after(read_version)}..{table.version()}) after this write's snapshot "
                        f"({_planned(read_version)}); nothing was committed (conflict='fail')"
                    )
                attempts += 1
                log.warning(
                    "delta %s: partition(s) %s changed since %s; committing on top (conflict='retry')",
                    self.path, where, _planned(read_version),
                )
            read_version = table.version()  # what this attempt has checked against
            mode = "overwrite" if self.overwrite else "append"
            try:
                table.create_write_transaction(
                    actions,
                    mode,
                    schema if schema is not None else table.schema(),
                    partition_by=self.partition_by or None,
                    partition_filters=self._replace_filters() if self.overwrite else None,
                    commit_properties=self._props(max_commit_retries=0),
                )
            except CommitFailedError as err:
                if (_open(self.path).version() or 0) <= table.version():
                    raise  # not a lost race: retrying would not help
                attempts += 1
                last_error = err
                log.info("delta %s: another commit took version %d; checking again", self.path, table.version() + 1)
                continue
            log.info("delta %s %s: %d files committed (replace=%s)", mode, self.path, len(actions), self.replace)
            return
        raise ConcurrentWriteError(
            f"Delta write to {self.path}: could not commit {self._describe(None)} after "
            f"{self.policy.max_retries + 1} attempts: other writers kept committing first"
        ) from last_error

    def _props(self, max_commit_retries: int | None = None, app_transaction: bool = True):
        from deltalake import CommitProperties
        from deltalake.transaction import Transaction

        with_txn = app_transaction and self.txn_app_id and self.txn_version is not None
        txns = [Transaction(self.txn_app_id, self.txn_version)] if with_txn else None
        return CommitProperties(custom_metadata=self.metadata or None, app_transactions=txns, max_commit_retries=max_commit_retries)

    def _create(self, actions: list) -> bool:
        """Create the table with these files; False when another writer created it first."""
        from deltalake.exceptions import DeltaError
        from deltalake.transaction import create_table_with_add_actions

        try:
            create_table_with_add_actions(
                self.path,
                self._delta_schema(),
                actions,
                mode="error",  # never write over a table another writer has just created
                partition_by=self.partition_by or None,
                configuration=self.table_properties or None,
                commit_properties=self._props(),
            )
        except DeltaError as err:
            if _exists(self.path):
                log.info("delta %s: created by another writer meanwhile; committing into it", self.path)
                return False
            raise TableWriteError(f"Delta write to {self.path}: could not create the table: {err}") from err
        log.info("delta create %s: %d files committed, properties %s", self.path, len(actions), self.table_properties)
        self._list_implicit_invariants(_open(self.path))
        return True

    def _list_implicit_invariants(self, table) -> bool:
        """List the ``invariants`` writer feature that the table's NOT NULL columns need.

        delta-rs puts a table on writer version 7 (table features) when it needs one, such as
        timestampNtz, without listing ``invariants`` for its NOT NULL columns (delta-io/delta-rs#2882);
        delta-spark then refuses every read (DELTA_FEATURES_PROTOCOL_METADATA_MISMATCH). The
        feature commit follows the create at once; every later write checks again, so a crash
        between the two is repaired by the next write. True when it committed the feature.
        """
        from deltalake import TableFeatures

        if not _has_not_null(spark_schema(table)):
            return False
        protocol = table.protocol()
        if protocol.min_writer_version < 7 or "invariants" in (protocol.writer_features or []):
            return False
        table.alter.add_feature(TableFeatures.Invariants, allow_protocol_versions_increase=True)
        log.info("delta %s: listed the invariants writer feature its NOT NULL columns need", self.path)
        return True

    def _already_committed(self, table) -> bool:
        if not (self.txn_app_id and self.txn_version is not None):
            return False
        done = table.transaction_version(self.txn_app_id)
        if done is not None and done >= self.txn_version:
            # delta-spark's txnAppId/txnVersion semantics: this write already committed once
            log.info("delta %s: app transaction %s v%d already committed (at v%d): skipping", self.path, self.txn_app_id, self.txn_version, done)
            return True
        return False

    def _commit_schema(self, table):
        """The Delta schema to commit with, None when the table's own fits; raises on a mismatch
        (see ``refuse_schema_mismatch``)."""
        if not refuse_schema_mismatch(self.path, spark_schema(table), self.spark_schema, self.merge_schema).new:
            return None
        from deltalake import Schema

        return Schema(list(table.schema().fields) + self._new_fields(table))

    def _describe_new(self, table) -> list[str]:
        return [f.name for f in self._new_fields(table)]

    def _new_fields(self, table) -> list:
        from deltalake import Field

        known = {f.name for f in table.schema().fields}
        return [Field(f.name, f.type, nullable=True) for f in self._delta_schema().fields if f.name not in known]

    def _conflicts(self, table, since: int | None) -> list[dict[str, str | None]]:
        """Partitions this write replaces whose files another commit added or removed after ``since``.

        Appends never conflict (blind appends commute, as in Delta's WriteSerializable level);
        an overwrite of named partitions conflicts only on those; a whole-table overwrite on any change.
        """
        if not self.overwrite or since == table.version():
            return []
        now = _files_by_partition(table)
        before = _files_by_partition(_open(self.path, since)) if since is not None else {}
        touched: list[dict[str, str | None]] = []
        for path in now.keys() ^ before.keys():
            values = now.get(path) or before[path]
            replaced = self.replace is None or any(all(values.get(c) == v for c, v in spec.items()) for spec in self.replace)
            if replaced and values not in touched:
                touched.append(values)
        return touched

    def _describe(self, partitions: list[dict[str, str | None]] | None) -> str:
        specs = partitions if partitions is not None else (self.replace or [])
        text = ", ".join("/".join(f"{c}={v}" for c, v in spec.items()) or "(unpartitioned)" for spec in specs)
        return text or "the whole table"

    def abort(self, messages: list[WrittenFiles | None]) -> None:
        """Delete this write's files: those the tasks reported, and those of tasks that never did.

        A task that fails on the JVM side mid-stream (a bad row, a cancelled stage) reports no
        message, yet its Python worker sees its input end as if it were complete: it goes on
        writing what was already sent to it, closes its files and returns, possibly after this
        runs. So abort first leaves a marker named with this write's id, which every task checks
        after closing its files (see ``write``), then sweeps the table for files named with the
        write's id. A task that checked before the marker existed had closed its files by then, so
        the sweep finds them; one that checks after deletes its own. Files the log references are
        never deleted. Only a worker killed mid-write leaves files behind: vacuum removes those.
        """
        _touch(self._end_marker())  # first: a task that finishes after this deletes its own files
        live = {unquote(p) for p in _files_by_partition(_open(self.path))} if _exists(self.path) else set()
        reported = {add["path"] for m in messages if m is not None for add in m.adds}
        swept = self._unreported_files() - reported - live
        _delete_under(self.path, (reported - live) | swept)
        if swept:
            log.info("delta %s: deleted %d file(s) of failed or cancelled tasks", self.path, len(swept))

    def _tidy_after_commit(self, committed: list[dict[str, Any]]) -> None:
        """After a commit: what other attempts of this write's tasks wrote is garbage.

        With task retries or speculation, an attempt that failed or lost can have written files
        the log will never reference, and can still be writing. The same marker as abort's makes a
        late attempt delete its own files; the directories this write committed to are swept for
        the rest (only those: listing a whole large table on every commit would cost too much).
        """
        _touch(self._end_marker())
        kept = {a["path"] for a in committed}
        directories = {relative.rpartition("/")[0] for relative in kept}
        stray = self._unreported_files(directories) - kept
        _delete_under(self.path, stray)
        if stray:
            log.info("delta %s: deleted %d file(s) of failed or duplicate task attempts", self.path, len(stray))

    def _end_marker(self) -> str:
        return f"{self.path.rstrip('/')}/{ENDED_DIR}/{self.write_id}"

    def _unreported_files(self, directories: set[str] | None = None) -> set[str]:
        """Files named with this write's id, relative to the table root: anywhere under it, or
        directly in ``directories`` (relative, unquoted)."""
        import pyarrow.fs as pafs

        fs, root = _table_filesystem(self.path)
        if directories is None:
            selectors = [pafs.FileSelector(root, recursive=True, allow_not_found=True)]
        else:
            selectors = [pafs.FileSelector(f"{root}/{d}" if d else root, allow_not_found=True) for d in sorted(directories)]
        prefix = f"part-{self.write_id}-"
        try:
            infos = [i for selector in selectors for i in fs.get_file_info(selector)]
        except OSError as err:
            log.warning("delta %s: could not list the table to clean up this write's stray files: %s", self.path, err)
            return set()
        root += "/"
        return {i.path[len(root):] for i in infos if i.is_file and i.base_name.startswith(prefix) and i.path.startswith(root)}

    def _delta_schema(self):
        from deltalake import Schema

        return Schema.from_arrow(_target_schema(self.spark_schema))

    def _replace_filters(self) -> list[tuple[str, str, Any]] | None:
        """delta-rs takes one conjunction: one partition spec, or several over a single column (IN)."""
        if self.replace is None:
            return None
        if len(self.replace) == 1:
            return [(c, "=", v) for c, v in self.replace[0].items()]
        columns = {c for spec in self.replace for c in spec}
        if len(columns) != 1 or any(len(spec) != 1 for spec in self.replace):
            raise ValueError(
                f"Delta write to {self.path}: replacing several multi-column partitions at once is not "
                "supported; write one partition per transaction"
            )
        (column,) = columns
        return [(column, "in", [spec[column] for spec in self.replace])]

    def _check_replace(self, adds: list[dict[str, Any]]) -> None:
        """replaceWhere semantics: a row outside the partitions being replaced fails the write."""
        if not self.overwrite or self.replace is None:
            return
        allowed = [{c: v for c, v in spec.items()} for spec in self.replace]
        for add in adds:
            pv = add["partition_values"]
            if not any(all(pv.get(c) == v for c, v in spec.items()) for spec in allowed):
                raise ValueError(
                    f"Delta write to {self.path}: data for partition {pv} is outside the partitions "
                    f"being replaced {self.replace}"
                )


# What Hive and Spark escape in a partition directory's name (ExternalCatalogUtils.escapePathName),
# as %XX; the rest, spaces and non-ASCII included, stays as it is. The same layout as delta-spark's,
# and one Spark's partition discovery reads back exactly (see jobs.tables.reading).
_PATH_ESCAPED = frozenset(map(chr, range(1, 0x20))) | frozenset('"#%\'*/:=?\\\x7f{[]^')


def escape_path_name(text: str) -> str:
    return "".join(f"%{ord(ch):02X}" if ch in _PATH_ESCAPED else ch for ch in text)


def _hive_value(value: Any) -> str:
    text = partition_string(value)
    return "__HIVE_DEFAULT_PARTITION__" if text is None else text


def _touch(uri: str) -> None:
    try:
        if "://" in uri:
            fs, where = _filesystem(uri)
            fs.open_output_stream(where).close()
        else:
            os.makedirs(os.path.dirname(uri), exist_ok=True)
            open(uri, "ab").close()
    except OSError as err:  # the sweep still runs; a task finishing later leaves files for vacuum
        log.warning("could not write %s: %s", uri, err)


def _file_exists(uri: str) -> bool:
    if "://" in uri:
        import pyarrow.fs as pafs

        fs, where = _filesystem(uri)
        return fs.get_file_info(where).type != pafs.FileType.NotFound
    return os.path.exists(uri)


def expired_end_markers(path: str, older_than_hours: float, delete: bool) -> list[str]:
    """The markers ended writes left (see DeltaWriter.abort) older than this, relative to the
    table root; deleted unless ``delete`` is false. delta-rs's vacuum skips ``_`` directories."""
    import pyarrow.fs as pafs

    fs, root = _table_filesystem(path)
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/{ENDED_DIR}", allow_not_found=True))
    cutoff = time.time() - older_than_hours * 3600
    expired = sorted(f"{ENDED_DIR}/{i.base_name}" for i in infos if i.is_file and i.mtime is not None and i.mtime.timestamp() < cutoff)
    if delete:
        _delete_under(path, set(expired))
    return expired


def _table_filesystem(path: str):
    """The pyarrow filesystem of a table and its root in it (no trailing slash), for listing."""
    import pyarrow.fs as pafs

    if "://" in path:
        fs, root = _filesystem(path)
    else:
        fs, root = pafs.LocalFileSystem(), os.path.abspath(path)
    return fs, root.rstrip("/")


def _delete_under(path: str, relatives: set[str]) -> None:
    """Delete files given relative to the table root, already unquoted (so no _join, which unquotes)."""
    for relative in sorted(relatives):
        _delete(f"{path.rstrip('/')}/{relative}")


def _remote_size(uri: str) -> int:
    fs, p = _filesystem(uri)
    return fs.get_file_info(p).size


def _files_by_partition(table) -> dict[str, dict[str, str | None]]:
    """Active data files of a snapshot and their partition values, in the log's string form."""
    prefix = "partition."
    rows = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    return {r["path"]: {k[len(prefix):]: partition_string(v) for k, v in r.items() if k.startswith(prefix)} for r in rows}


def _after(version: int | None) -> int:
    return 0 if version is None else version + 1


def _planned(version: int | None) -> str:
    return "a time the table did not exist" if version is None else f"version {version}"


def _has_not_null(data_type: DataType) -> bool:
    """Whether any field, at any depth, is NOT NULL (delta-spark reads each as an invariant)."""
    if isinstance(data_type, StructType):
        return any(not f.nullable or _has_not_null(f.dataType) for f in data_type.fields)
    if isinstance(data_type, ArrayType):
        return _has_not_null(data_type.elementType)
    if isinstance(data_type, MapType):
        return _has_not_null(data_type.keyType) or _has_not_null(data_type.valueType)
    return False


def _exists(path: str) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(path)


class DeltaDataSource(DataSource):
    """``spark.read.format("lakescore_delta").option("path", ...)`` and the matching writer."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def _path(self) -> str:
        path = self.options.get("path")
        if not path:
            raise ValueError(f"{FORMAT}: the 'path' option is required")
        return path

    def schema(self) -> StructType:
        path = self._path()
        if not _exists(path):
            raise FileNotFoundError(f"no Delta table at {path}")
        version, timestamp = self._as_of()
        return spark_schema(_open(path, version, timestamp))

    def _as_of(self) -> tuple[int | None, str | None]:
        version = self.options.get("versionAsOf")
        return (int(version) if version else None), self.options.get("timestampAsOf")

    def reader(self, schema: StructType) -> DeltaReader:
        batch = int(self.options.get("batch_size", "65536"))
        return DeltaReader(self._path(), *self._as_of(), schema, batch)

    def writer(self, schema: StructType, overwrite: bool) -> DeltaWriter:
        return DeltaWriter(self._path(), schema, overwrite, dict(self.options))
