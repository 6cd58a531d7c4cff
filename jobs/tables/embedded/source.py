"""The embedded engine as Spark sees it: the ``lakescore_delta`` Python data source, which
``jobs.tables.register`` adds to a session."""

from __future__ import annotations

from pyspark.sql.datasource import DataSource
from pyspark.sql.types import StructType

from jobs.tables.embedded.reader import DeltaReader
from jobs.tables.embedded.snapshot import is_delta_table, open_table, spark_schema
from jobs.tables.embedded.writer import DeltaWriter

FORMAT = "lakescore_delta"


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
        if not is_delta_table(path):
            raise FileNotFoundError(f"no Delta table at {path}")
        version, timestamp = self._as_of()
        return spark_schema(open_table(path, version, timestamp))

    def _as_of(self) -> tuple[int | None, str | None]:
        version = self.options.get("versionAsOf")
        return (int(version) if version else None), self.options.get("timestampAsOf")

    def reader(self, schema: StructType) -> DeltaReader:
        batch = int(self.options.get("batch_size", "65536"))
        return DeltaReader(self._path(), *self._as_of(), schema, batch)

    def writer(self, schema: StructType, overwrite: bool) -> DeltaWriter:
        return DeltaWriter(self._path(), schema, overwrite, dict(self.options))
