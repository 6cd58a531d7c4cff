"""The Python data source's reader: one Spark partition per planned file, decoded by pyarrow
(see docs/DESIGN.md#the-python-reader)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql.datasource import DataSourceReader, Filter, InputPartition
from pyspark.sql.types import StructType

from jobs.tables.embedded.pruning import FileSlice, classify_filters, plan_files
from jobs.tables.embedded.schema import target_schema
from jobs.tables.embedded.snapshot import check_readable, open_table
from jobs.tables.embedded.storage import filesystem, join_path


class DeltaReader(DataSourceReader):
    """Plans on the driver (``pushFilters``, ``partitions``), reads one file per task (``read``)."""

    def __init__(self, path: str, version: int | None, timestamp: str | None, schema: StructType, batch_size: int) -> None:
        self.path, self.version, self.timestamp, self.batch_size = path, version, timestamp, batch_size
        self.spark_schema = schema
        self.partition_filters: list[tuple[str, Filter]] = []  # (partition column, filter)
        self.stats_filters: list[Filter] = []

    def _table(self):
        return open_table(self.path, self.version, self.timestamp)

    def pushFilters(self, filters: list[Filter]) -> Iterator[Filter]:
        table = self._table()
        self.partition_filters, self.stats_filters, residual = classify_filters(
            filters, self.spark_schema, table.metadata().partition_columns
        )
        yield from residual

    def partitions(self) -> Sequence[InputPartition]:
        table = self._table()
        check_readable(table, self.path)
        kept = plan_files(table, self.path, self.partition_filters, self.stats_filters)
        # Spark needs at least one partition to produce an (empty) result with the right schema.
        return kept or [FileSlice("", ())]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """Yield the file's rows as Arrow batches in the Spark schema, without a round trip through Python objects.

        Per batch, only Arrow calls run: the partition columns are one repeated scalar, columns a
        file lacks (added after it was written) are nulls, and casts are skipped where the file
        already has the table's type.
        """
        planned = cast(FileSlice, partition)  # Spark hands back one of the partitions() planned
        target = target_schema(self.spark_schema)
        if not planned.path:
            return
        file = _parquet_file(join_path(self.path, planned.path))
        constants = {name: pa.scalar(value, target.field(name).type) for name, value in planned.partition_values}
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


def _parquet_file(uri: str) -> pq.ParquetFile:
    # pre_buffer coalesces the column chunks of a row group into few large reads: one round trip
    # instead of one per column on object storage; on a local disk it only costs copies.
    if "://" in uri:
        fs, where = filesystem(uri)
        return pq.ParquetFile(where, filesystem=fs, pre_buffer=True, coerce_int96_timestamp_unit="us")
    # INT96 (Spark's and Hive's old timestamps) to microseconds, Spark's unit: pyarrow's default,
    # nanoseconds, overflows outside 1677-2262
    return pq.ParquetFile(uri, pre_buffer=False, coerce_int96_timestamp_unit="us")
