"""The executor side of an embedded write: each task streams its Arrow batches into Parquet files,
one open file per partition, with Delta statistics, and reports them as add-actions; the driver
commits or aborts them through ``WriteTransaction`` (see docs/DESIGN.md#writing-files)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql.datasource import DataSourceArrowWriter, WriterCommitMessage
from pyspark.sql.types import StructType

from jobs.faults import reach
from jobs.tables import embedded
from jobs.tables.embedded.commit import CommitPolicy, WriteTransaction, end_marker
from jobs.tables.embedded.errors import TableWriteError
from jobs.tables.embedded.snapshot import partition_string
from jobs.tables.embedded.storage import delete_file, delete_under, file_exists, filesystem, remote_size


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

    Nested columns get none, binary and boolean columns null counts only; a column with a NaN or infinite
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


class DeltaWriter(DataSourceArrowWriter):
    """One Spark write: planned on the driver (here), files written by the tasks (``write``), then
    committed or aborted on the driver by its ``WriteTransaction`` (``commit``, ``abort``)."""

    def __init__(self, path: str, schema: StructType, overwrite: bool, options: dict[str, str]) -> None:
        self.path = path
        self.partition_by = [c for c in options.get("partition_by", "").split(",") if c]
        replace = json.loads(options["replace_partitions"]) if options.get("replace_partitions") else None
        metadata = json.loads(options.get("commit_metadata") or "{}")
        txn_app_id = options.get("txn_app_id")
        txn_version = int(options["txn_version"]) if options.get("txn_version") else None
        self.target_file_size = int(options.get("target_file_size") or embedded.DEFAULT_TARGET_FILE_SIZE)
        merge_schema = options.get("merge_schema", "false").lower() == "true"
        table_properties = json.loads(options.get("table_properties") or "{}")
        policy = CommitPolicy(options.get("conflict", "fail"), int(options.get("max_retries", "3")))
        # Every file of this write carries this id in its name, so abort can find the files of a task
        # that died or was cancelled mid-write and never reported them (see WriteTransaction.abort).
        self.write_id = uuid.uuid4().hex[:16]
        missing = [c for c in self.partition_by if c not in schema.fieldNames()]
        if missing:
            raise ValueError(f"Delta write to {path}: partition column(s) {missing} are not in the data")
        self.transaction = WriteTransaction(
            path=path,
            spark_schema=schema,
            overwrite=overwrite,
            partition_by=self.partition_by,
            replace=replace,
            metadata=metadata,
            txn_app_id=txn_app_id,
            txn_version=txn_version,
            merge_schema=merge_schema,
            table_properties=table_properties,
            policy=policy,
            write_id=self.write_id,
        )

    # -- executors ----------------------------------------------------------------------------
    def write(self, iterator: Iterator[pa.RecordBatch]) -> WrittenFiles:
        """Stream batches into one open Parquet file per partition, rolling at the target size.

        Memory holds one batch and the open files' pending row groups (see ROW_GROUP_ROWS and
        TASK_BUFFER_BYTES in jobs.tables.embedded), not the task's rows. If the task fails, or finds the write already
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
                    if current.pending_rows >= embedded.ROW_GROUP_ROWS:
                        current.flush()
                    if current.arrow_bytes >= self.target_file_size:
                        adds.append(self._close(open_files.pop(values)))
                if sum(f.pending_bytes for f in open_files.values()) >= embedded.TASK_BUFFER_BYTES:
                    for current in open_files.values():
                        current.flush()
            while open_files:
                adds.append(self._close(open_files.popitem()[1]))
            if file_exists(end_marker(self.path, self.write_id)):
                raise TableWriteError(
                    f"Delta write to {self.path}: the write had ended (committed or aborted) before this task attempt finished; its files are deleted"
                )
        except BaseException:
            for current in open_files.values():
                with contextlib.suppress(Exception):
                    current.writer.close()
                delete_file(current.full)
            delete_under(self.path, {add["path"] for add in adds})
            raise
        return WrittenFiles(adds)

    def _open(self, values: tuple[tuple[str, Any], ...], schema: pa.Schema) -> _OpenFile:
        directory = partition_directory(values)
        name = f"part-{self.write_id}-{uuid.uuid4().hex}.snappy.parquet"
        relative = f"{directory}/{name}" if directory else name
        full = f"{self.path.rstrip('/')}/{relative}"  # as it is on storage; the log's URI form is delta-rs's to make
        if "://" in full:
            fs, where = filesystem(full)
            writer = pq.ParquetWriter(where, schema, filesystem=fs, compression="snappy")
        else:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            writer = pq.ParquetWriter(full, schema, compression="snappy")
        return _OpenFile(relative, full, values, writer)

    def _close(self, current: _OpenFile) -> dict[str, Any]:
        current.flush()
        current.writer.close()
        reach("data_file_written", self.path)
        return {
            "path": current.relative,
            "size": os.path.getsize(current.full) if "://" not in current.full else remote_size(current.full),
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
    # Spark hands the driver what this writer's tasks returned from write(): WrittenFiles, or None for a failed task
    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        """Commit the tasks' files as one Delta transaction (see ``WriteTransaction.commit``)."""
        self.transaction.commit(cast("list[WrittenFiles | None]", messages))

    def abort(self, messages: list[WriterCommitMessage | None]) -> None:
        """Delete this write's files (see ``WriteTransaction.abort``)."""
        self.transaction.abort(cast("list[WrittenFiles | None]", messages))


# What Hive and Spark escape in a partition directory's name (ExternalCatalogUtils.escapePathName),
# as %XX; the rest, spaces and non-ASCII included, stays as it is. The same layout as delta-spark's,
# and one Spark's partition discovery reads back exactly (see jobs.tables.reading).
_PATH_ESCAPED = frozenset(map(chr, range(1, 0x20))) | frozenset("\"#%'*/:=?\\\x7f{[]^")


def partition_directory(values: Sequence[tuple[str, Any]]) -> str:
    """The Hive-style directory of one partition (``ds=2024-06-01``), relative to the table root."""
    return "/".join(f"{escape_path_name(c)}={escape_path_name(_hive_value(v))}" for c, v in values)


def escape_path_name(text: str) -> str:
    return "".join(f"%{ord(ch):02X}" if ch in _PATH_ESCAPED else ch for ch in text)


def _hive_value(value: Any) -> str:
    text = partition_string(value)
    return "__HIVE_DEFAULT_PARTITION__" if text is None else text
