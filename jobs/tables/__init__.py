"""Delta table I/O behind one interface, with two engines (see docs/DESIGN.md).

``native`` is delta-spark's ``format("delta")``; ``embedded`` is our Python Data Source over
delta-rs, whose reads decode the files delta-rs planned with Spark's own Parquet reader where that
provably returns the same rows (``jobs.tables.reading``). ``auto`` takes native when Delta's JVM
classes load, else embedded. Snapshot versions, schemas and table existence are read from the
Delta log: on native by delta-spark (a table may use features delta-rs cannot read), elsewhere by
delta-rs.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from jobs.tables import native
from jobs.tables.embedded.commit import CommitPolicy
from jobs.tables.embedded.errors import ConcurrentWriteError, SchemaMismatchError, TableWriteError, UnsupportedFeatureError
from jobs.tables.embedded.schema import refuse_schema_mismatch
from jobs.tables.embedded.snapshot import check_readable, is_delta_table, open_table, partition_string, spark_schema
from jobs.tables.embedded.source import FORMAT, DeltaDataSource
from jobs.tables.embedded.storage import StorageCredentialsError
from jobs.tables.reading import (
    FilterTuple,
    check_filter_types,
    check_filters,
    partition_predicate,
    read_embedded,
    restrict,
    unpushable,
)
from jobs.tables.vacuum import vacuum

__all__ = [
    "WRITE_TOKEN",
    "CommitPolicy",
    "ConcurrentWriteError",
    "SchemaMismatchError",
    "StorageCredentialsError",
    "TableWriteError",
    "UnsupportedFeatureError",
    "WriteResult",
    "app_transaction_version",
    "commit_metadata",
    "committed_version",
    "partition_predicate",
    "read_table",
    "table_exists",
    "table_schema",
    "table_version",
    "vacuum",
    "write_table",
]

log = logging.getLogger("lakescore.tables")

WRITE_TOKEN = "lakescore.write"  # commit metadata key: one random token per write_table call

PartitionSpec = Mapping[str, Any]  # {"ds": date(2024, 6, 1)}: typed values


def native_available(spark: SparkSession) -> bool:
    """True when delta-spark's classes are on the JVM classpath."""
    try:
        # Spark's own lookup (the context class loader, which holds --jars / spark.jars): a bare
        # Class.forName through py4j sees only the JVM's launch classpath and never finds them
        jvm = spark._jvm
        if jvm is None:  # no JVM gateway: no delta-spark either
            return False
        jvm.org.apache.spark.util.Utils.classForName("io.delta.tables.DeltaTable", True, False)
        return True
    except Exception:  # py4j raises a generic error for ClassNotFoundException
        return False


def resolve_engine(spark: SparkSession, requested: str) -> str:
    if requested == "embedded":
        return "embedded"
    if native_available(spark):
        return "native"
    if requested == "native":
        from jobs.tables.jars import DELTA_PACKAGES

        raise RuntimeError(
            "engine 'native' was requested but delta-spark's classes are not on the classpath; "
            f"run make setup, or pass --packages {DELTA_PACKAGES} (or --jars), or use engine 'embedded'"
        )
    return "embedded"


def register(spark: SparkSession) -> None:
    """Make the embedded engine's format available in this session (idempotent)."""
    spark.dataSource.register(DeltaDataSource)


def _session() -> SparkSession:
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise RuntimeError("the native engine reads table metadata through delta-spark: start a SparkSession first")
    return spark


def table_exists(path: str, engine: str = "embedded") -> bool:
    """Whether ``path`` holds a Delta table; on ``native`` asked of delta-spark (the active
    session), elsewhere of delta-rs, which needs no session."""
    if engine == "native":
        return native.exists(_session(), path)
    return is_delta_table(path)


def table_schema(path: str, version: int | None = None, engine: str = "embedded") -> StructType:
    """The Spark schema of the Delta table at ``path`` (at ``version``), from its log alone: no
    file is planned or read."""
    if engine == "native":
        return native.schema(_session(), path, version)
    table = open_table(path, version)
    check_readable(table, path)  # a feature the embedded engine cannot honour is refused up front
    return spark_schema(table)


def table_version(path: str, engine: str = "embedded") -> int | None:
    """The latest committed version of the Delta table at ``path``, or None when there is none."""
    if not table_exists(path, engine):
        return None
    if engine == "native":
        return native.version(_session(), path)
    return open_table(path).version()


def read_table(
    spark: SparkSession,
    path: str,
    engine: str,
    partitions: Sequence[PartitionSpec] | None = None,
    version: int | None = None,
    batch_size: int | None = None,
    timestamp: str | None = None,
    *,
    filters: Sequence[FilterTuple] = (),
    embedded_reader: str = "auto",
) -> DataFrame:
    """Read a Delta table, pruned to ``partitions`` when given.

    Args:
        version: read this snapshot version (time travel); exclusive with ``timestamp``.
        timestamp: read the snapshot as of this ISO 8601 instant (UTC unless it says otherwise).
        filters: ``(column, op, value)`` conditions, all of which rows must pass; op is one of
            ``=, !=, <, <=, >, >=, in, not in, is null, is not null`` (value None for the last two).
            The embedded engine skips whole files by them, on partition values and on the log's
            per-file min/max/null counts, before Spark reads anything; a ``.where`` on the result
            filters the same rows but only the Python reader sees it in time to skip files.
        embedded_reader: how the embedded engine decodes the planned files: ``auto`` (Spark's
            Parquet reader where it provably returns the rows the log describes, else the Python
            data source; see ``jobs.tables.reading``), ``spark`` (that reader or an error) or
            ``python`` (always the data source). The native engine ignores it.
        batch_size: Arrow batch size of the Python data source.
    """
    if version is not None and timestamp is not None:
        raise ValueError("read_table: give a version or a timestamp, not both")
    check_filters(filters)
    if engine != "native":
        try:
            return read_embedded(
                spark,
                path,
                partitions=partitions,
                version=version,
                timestamp=timestamp,
                filters=filters,
                reader=embedded_reader,
                batch_size=batch_size,
            )
        except Exception as err:  # the data source plans in a Python worker: Spark wraps its errors
            lifted = _lakescore_error(err)
            if lifted is err:
                raise
            raise lifted from err
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", str(version))
    if timestamp is not None:
        reader = reader.option("timestampAsOf", timestamp)
    df = reader.load(path)
    check_filter_types(filters, df.schema, path)
    # delta-spark skips files by the log's min/max, which delta-rs and pyarrow write without NaN:
    # floating columns behind nanvl(x, x) are not used for skipping, so no NaN row is lost
    return restrict(df.select(*[unpushable(field) for field in df.schema.fields]), partitions, filters)


def _replace_where_sql(specs: Sequence[PartitionSpec]) -> str:
    """delta-spark only takes replaceWhere as SQL; values are typed and quoted, never raw input.
    A None is the null partition: ``IS NULL`` (``= NULL`` would replace nothing and refuse the rows)."""

    def literal(v: Any) -> str:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return repr(v)
        return "'" + str(partition_string(v)).replace("\\", "\\\\").replace("'", "\\'") + "'"

    def equals(column: str, v: Any) -> str:
        name = "`" + column.replace("`", "``") + "`"
        return f"{name} IS NULL" if v is None else f"{name} = {literal(v)}"

    return " OR ".join("(" + " AND ".join(equals(c, v) for c, v in s.items()) + ")" for s in specs)


@dataclass(frozen=True)
class WriteResult:
    """Where a write went. ``committed`` is False when its app transaction had already been
    committed at this version or later (by this write's earlier attempt or by another writer),
    so nothing of this write is in the table; ``version`` is then the table's latest."""

    path: str
    version: int | None
    committed: bool = True


def write_table(
    df: DataFrame,
    path: str,
    engine: str,
    *,
    mode: str,
    partition_by: Sequence[str] = (),
    replace_partitions: Sequence[PartitionSpec] | None = None,
    commit_metadata: Mapping[str, str] | None = None,
    app_transaction: tuple[str, int] | None = None,
    target_file_size: int | None = None,
    merge_schema: bool = False,
    table_properties: Mapping[str, str] | None = None,
    conflict: str = "fail",
    max_retries: int = 3,
) -> WriteResult:
    """Write ``df`` as a Delta table.

    Args:
        mode: ``append`` or ``overwrite``. With ``replace_partitions`` an overwrite replaces exactly
            those partitions (rows outside them fail the write); without, the whole table.
        commit_metadata: string pairs stored in the commit info (e.g. the run id).
        app_transaction: ``(app_id, version)``: the write commits only if the table has not yet
            seen this app id at this version or later, so a retried write never commits twice.
        merge_schema: add the data's new columns to the table (nullable; older rows read null) and
            write columns the data lacks as null. Without it a write whose columns differ from the
            table's raises SchemaMismatchError before any file is written. A changed type is
            always refused.
        table_properties: Delta table properties (``delta.*`` keys, e.g.
            ``{"delta.logRetentionDuration": "interval 60 days"}``) set when this write creates the
            table; an existing table keeps its own. delta-rs 1.6.6 refuses other keys.
        conflict: ``fail`` (raise ConcurrentWriteError) or ``retry`` (commit on top) when another
            writer committed to the partitions this write replaces after it was planned; see
            ``CommitPolicy``. Appends never conflict. Embedded engine only: delta-spark has its own.
        max_retries: bound on commit attempts after losing a race or, with ``retry``, a conflict.

    Raises:
        SchemaMismatchError: the data's columns differ from the table's (see ``merge_schema``).
        ConcurrentWriteError: a conflicting concurrent commit; nothing was committed and this
            write's files were deleted.
    """
    if mode not in ("append", "overwrite"):
        raise ValueError(f"mode must be append or overwrite, got {mode!r}")
    CommitPolicy(conflict, max_retries)  # refuse bad options before Spark does any work
    custom = sorted(k for k in (table_properties or {}) if not k.startswith("delta."))
    if custom:
        # delta-rs 1.6.6 (delta-kernel) fails "Error parsing property" on any other key at commit time
        raise ValueError(f"Delta write to {path}: table properties must be delta.* keys, got {custom}")
    # Names this write's commit, so the version it created is found even when another writer
    # commits right after it (the table's latest version would then be the other's).
    token = uuid.uuid4().hex
    commit_metadata = {**(commit_metadata or {}), WRITE_TOKEN: token}
    writer = df.write.mode(mode)
    if engine == "native":
        # delta-spark's own checks differ (it writes a missing column as null without being asked):
        # the same check as the embedded engine's, so both refuse the same writes the same way
        if table_exists(path, engine):
            refuse_schema_mismatch(path, table_schema(path, engine=engine), df.schema, merge_schema)
        writer = writer.format("delta")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if replace_partitions:
            writer = writer.option("replaceWhere", _replace_where_sql(replace_partitions))
        if commit_metadata:
            writer = writer.option("userMetadata", json.dumps(dict(commit_metadata), sort_keys=True))
        if app_transaction:
            writer = writer.option("txnAppId", app_transaction[0]).option("txnVersion", str(app_transaction[1]))
        if merge_schema:
            writer = writer.option("mergeSchema", "true")
        # delta-spark takes delta.* options as table properties; only on create, as the embedded
        # engine does: an existing table keeps its own
        for key, value in (table_properties or {}).items() if not table_exists(path, engine) else ():
            writer = writer.option(key, value)
        policy = CommitPolicy(conflict, max_retries)
        native.save(writer, path, policy)
    else:
        writer = writer.format(FORMAT).option("path", path).option("partition_by", ",".join(partition_by))
        if replace_partitions:
            specs = [{c: partition_string(v) for c, v in s.items()} for s in replace_partitions]
            writer = writer.option("replace_partitions", json.dumps(specs))
        if commit_metadata:
            writer = writer.option("commit_metadata", json.dumps(dict(commit_metadata)))
        if app_transaction:
            writer = writer.option("txn_app_id", app_transaction[0]).option("txn_version", str(app_transaction[1]))
        if target_file_size:
            writer = writer.option("target_file_size", str(target_file_size))
        if merge_schema:
            writer = writer.option("merge_schema", "true")
        if table_properties:
            writer = writer.option("table_properties", json.dumps(dict(table_properties)))
        writer = writer.option("conflict", conflict).option("max_retries", str(max_retries))
        try:
            writer.save()
        except Exception as err:
            raise _lakescore_error(err) from err
    version, committed = committed_version(path, token, engine=engine)
    skipped = "" if committed else f" (nothing written: app transaction {app_transaction} was already committed)"
    log.info("wrote %s (%s) -> version %s%s", path, mode, version, skipped)
    return WriteResult(path, version, committed)


def committed_version(path: str, token: str, search: int = 20, engine: str = "embedded") -> tuple[int | None, bool]:
    """The version whose commit carries this write token and True; the latest version and False
    when none of the last ``search`` commits does (an app transaction that had already committed
    wrote nothing)."""
    if engine == "native":
        # delta-spark stores the commit metadata as userMetadata JSON
        entries = native.history(_session(), path, search)
        found = next((e["version"] for e in entries if commit_metadata(e).get(WRITE_TOKEN) == token), None)
        if found is not None:
            return int(found), True
        return (int(entries[0]["version"]) if entries else None), False
    from deltalake import DeltaTable

    table = DeltaTable(path)
    for entry in table.history(search):
        if commit_metadata(entry).get(WRITE_TOKEN) == token:
            return int(entry["version"]), True
    return table.version(), False


def app_transaction_version(path: str, app_id: str) -> int | None:
    """The highest version the table has committed for app transaction ``app_id`` (None: never,
    or no table). Read from the log by delta-rs whichever engine wrote it: LakeScore's own tables
    use no feature delta-rs cannot read."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(path):
        return None
    return DeltaTable(path).transaction_version(app_id)


def commit_metadata(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata a write stored with its commit, from a delta-rs history entry, whichever engine
    wrote it: the embedded engine stores it as commitInfo keys, delta-spark as userMetadata JSON."""
    out = dict(entry)
    text = entry.get("userMetadata")
    if isinstance(text, str) and text.startswith("{"):
        try:
            out.update({k: v for k, v in json.loads(text).items() if isinstance(v, str)})
        except ValueError:
            pass  # someone else's userMetadata, not ours
    return out


def _lakescore_error(err: Exception) -> Exception:
    """The LakeScore error a Python data source raised inside Spark, as its own class again.

    Spark re-raises errors from the data source's planning and commit as its own exceptions whose
    text holds the Python traceback; callers (and the job's exit codes) want ConcurrentWriteError,
    SchemaMismatchError or StorageCredentialsError, so the last ``<module>.<Class>: message`` line
    of ours is lifted out. Ours raised in this process are returned as they are.
    """
    if isinstance(err, (TableWriteError, StorageCredentialsError)):
        return err
    text = str(err)
    for cls in (ConcurrentWriteError, SchemaMismatchError, TableWriteError, StorageCredentialsError):
        marker = f"{cls.__module__}.{cls.__name__}: "
        at = text.rfind(marker)
        if at < 0:
            marker = f"{cls.__name__}: "
            at = text.rfind(marker)
        if at >= 0:
            return cls(text[at + len(marker) :].splitlines()[0].strip())
    return err
