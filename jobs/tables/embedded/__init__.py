"""The embedded Delta engine: a Spark Python Data Source whose Delta protocol work is done by delta-rs.

One module per stage (see docs/DESIGN.md#the-embedded-engine):

* ``snapshot``: opening a table (time travel), its schema and files, features it refuses;
* ``pruning``: planning a read, files skipped by partition values and statistics;
* ``reader``: the Python data source's reader (``jobs.tables.reading`` picks it or Spark's);
* ``writer``: the tasks' side of a write, Parquet files and their statistics;
* ``commit``: the driver's side, the commit protocol (conflicts, retries, app transactions,
  abort, end markers);
* ``schema``: a write's schema against its table's; ``storage``: filesystems and file operations;
  ``errors``; ``source``: the data source Spark is given.

Spark pickles the reader and writer by reference and runs them in Python workers, which import
them from here: this package's import also sets up logging there.
"""

from __future__ import annotations

import logging

from jobs.logs import StderrHandler
from jobs.redact import RedactingFilter
from jobs.tables.embedded.commit import CONFLICT_MODES, CommitPolicy, WriteTransaction
from jobs.tables.embedded.errors import ConcurrentWriteError, SchemaMismatchError, TableWriteError, UnsupportedFeatureError
from jobs.tables.embedded.markers import ENDED_DIR, expired_end_markers
from jobs.tables.embedded.pruning import FileSlice, classify_filters, plan_files
from jobs.tables.embedded.reader import DeltaReader
from jobs.tables.embedded.schema import SchemaDiff, refuse_schema_mismatch, schema_diff
from jobs.tables.embedded.snapshot import UNSUPPORTED_READER_FEATURES, partition_string, spark_schema
from jobs.tables.embedded.source import FORMAT, DeltaDataSource
from jobs.tables.embedded.writer import DeltaWriter, FileStats, WrittenFiles, escape_path_name

__all__ = [
    "CONFLICT_MODES",
    "DEFAULT_TARGET_FILE_SIZE",
    "ENDED_DIR",
    "FORMAT",
    "ROW_GROUP_ROWS",
    "TASK_BUFFER_BYTES",
    "UNSUPPORTED_READER_FEATURES",
    "CommitPolicy",
    "ConcurrentWriteError",
    "DeltaDataSource",
    "DeltaReader",
    "DeltaWriter",
    "FileSlice",
    "FileStats",
    "SchemaDiff",
    "SchemaMismatchError",
    "TableWriteError",
    "UnsupportedFeatureError",
    "WriteTransaction",
    "WrittenFiles",
    "classify_filters",
    "escape_path_name",
    "expired_end_markers",
    "partition_string",
    "plan_files",
    "refuse_schema_mismatch",
    "schema_diff",
    "spark_schema",
]


log = logging.getLogger("lakescore.delta")
if not logging.getLogger("lakescore").handlers:
    # Planning and commit run in Python workers the JVM starts, where nobody configured logging.
    _handler = StderrHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _handler.addFilter(RedactingFilter())  # a table URI may carry credentials
    logging.getLogger("lakescore").addHandler(_handler)
    logging.getLogger("lakescore").setLevel(logging.INFO)

# The sizes of what a write produces. They live here, not in ``writer``, which reads them through
# this package whenever a task runs, so one assignment here (a test's) changes them for every write.
DEFAULT_TARGET_FILE_SIZE = 128 * 1024 * 1024
# A task's batches arrive a few thousand rows per partition at a time; each open file gathers them
# into row groups of about this many rows (smaller files, faster reads for every engine). All of a
# task's open files together hold at most TASK_BUFFER_BYTES of Arrow data before they write out.
ROW_GROUP_ROWS = 128 * 1024
TASK_BUFFER_BYTES = 64 * 1024 * 1024
