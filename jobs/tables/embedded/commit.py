"""The commit protocol of an embedded write, run on the driver once the tasks have written their
files: one Delta transaction, checked for conflicting commits and retried when it loses the race
for the next log version; app transactions; abort, and the end markers and sweeps that leave no
file of a failed or duplicate task attempt behind (see docs/DESIGN.md#committing-a-write).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pyspark.sql.types import StructType

from jobs.tables.embedded.errors import ConcurrentWriteError, TableWriteError
from jobs.tables.embedded.markers import end_marker
from jobs.tables.embedded.schema import has_not_null, refuse_schema_mismatch, target_schema
from jobs.tables.embedded.snapshot import check_readable, files_by_partition, is_delta_table, open_table, spark_schema
from jobs.tables.embedded.storage import delete_under, table_filesystem, touch

if TYPE_CHECKING:
    from jobs.tables.embedded.writer import WrittenFiles

log = logging.getLogger("lakescore.delta")

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


@dataclass(kw_only=True)
class WriteTransaction:
    """The driver's half of one write: the snapshot it is planned on, then its commit or abort.

    Made when Spark plans the write (``DeltaWriter.__init__``), so a schema mismatch or a feature
    the engine cannot write fails before any task writes a file; pickled to the tasks with the
    writer, and back on the driver for ``commit`` or ``abort``.
    """

    path: str
    spark_schema: StructType
    overwrite: bool
    partition_by: list[str]
    replace: list[dict[str, str | None]] | None  # the partitions an overwrite replaces; None: all
    metadata: dict[str, Any]  # commit metadata
    txn_app_id: str | None
    txn_version: int | None
    merge_schema: bool
    table_properties: dict[str, str]
    policy: CommitPolicy
    write_id: str
    # The snapshot this write is based on, taken when Spark plans it (this runs on the driver):
    # what other writers commit after it is what the commit checks for conflicts.
    read_version: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if is_delta_table(self.path):
            table = open_table(self.path)
            # files written by logical column names into a column-mapped table would read as nulls
            check_readable(table, self.path, "write")
            self.read_version = table.version()
            self._commit_schema(table)  # a schema mismatch fails here, before any task writes a file

    def commit(self, messages: list[WrittenFiles | None]) -> None:
        """Commit every task's files as one Delta transaction (Spark calls ``abort`` if this raises),
        then clear out what other attempts of the same tasks wrote (see ``_tidy_after_commit``)."""
        self._commit(messages)
        self._tidy_after_commit([a for m in messages if m is not None for a in m.adds])

    def _commit(self, messages: list[WrittenFiles | None]) -> None:
        """The commit itself: conflicts are judged here, not by delta-rs, and each attempt asks for
        exactly the next log version (see docs/DESIGN.md#conflicts-and-retries)."""
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
            if not is_delta_table(self.path):
                if self._create(actions):
                    return
                continue  # another writer created the table first: commit into it
            table = open_table(self.path)
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
                    self.path,
                    where,
                    _planned(read_version),
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
                if (open_table(self.path).version() or 0) <= table.version():
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

        txns = None
        if app_transaction and self.txn_app_id and self.txn_version is not None:
            txns = [Transaction(self.txn_app_id, self.txn_version)]
        return CommitProperties(
            custom_metadata=self.metadata or None, app_transactions=txns, max_commit_retries=max_commit_retries
        )

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
            if is_delta_table(self.path):
                log.info("delta %s: created by another writer meanwhile; committing into it", self.path)
                return False
            raise TableWriteError(f"Delta write to {self.path}: could not create the table: {err}") from err
        log.info("delta create %s: %d files committed, properties %s", self.path, len(actions), self.table_properties)
        self._list_implicit_invariants(open_table(self.path))
        return True

    def _list_implicit_invariants(self, table) -> bool:
        """List the ``invariants`` writer feature that the table's NOT NULL columns need, which
        delta-rs leaves out (delta-io/delta-rs#2882; see docs/DESIGN.md#the-invariants-feature).
        True when it committed the feature."""
        from deltalake import TableFeatures

        if not has_not_null(spark_schema(table)):
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
            log.info(
                "delta %s: app transaction %s v%d already committed (at v%d): skipping",
                self.path,
                self.txn_app_id,
                self.txn_version,
                done,
            )
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
        now = files_by_partition(table)
        before = files_by_partition(open_table(self.path, since)) if since is not None else {}
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

        The end marker goes first, then the sweep for files named with this write's id; files the
        log references are never deleted (see docs/DESIGN.md#abort-end-markers-and-sweeps).
        """
        touch(self._end_marker())  # first: a task that finishes after this deletes its own files
        live = {unquote(p) for p in files_by_partition(open_table(self.path))} if is_delta_table(self.path) else set()
        reported = {add["path"] for m in messages if m is not None for add in m.adds}
        swept = self._unreported_files() - reported - live
        delete_under(self.path, (reported - live) | swept)
        if swept:
            log.info("delta %s: deleted %d file(s) of failed or cancelled tasks", self.path, len(swept))

    def _tidy_after_commit(self, committed: list[dict[str, Any]]) -> None:
        """After a commit: what other attempts of this write's tasks wrote is garbage. The same
        marker as abort's, then a sweep of only the directories this write committed to (see
        docs/DESIGN.md#abort-end-markers-and-sweeps)."""
        touch(self._end_marker())
        kept = {a["path"] for a in committed}
        directories = {relative.rpartition("/")[0] for relative in kept}
        stray = self._unreported_files(directories) - kept
        delete_under(self.path, stray)
        if stray:
            log.info("delta %s: deleted %d file(s) of failed or duplicate task attempts", self.path, len(stray))

    def _end_marker(self) -> str:
        return end_marker(self.path, self.write_id)

    def _unreported_files(self, directories: set[str] | None = None) -> set[str]:
        """Files named with this write's id, relative to the table root: anywhere under it, or
        directly in ``directories`` (relative, unquoted)."""
        import pyarrow.fs as pafs

        fs, root = table_filesystem(self.path)
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
        return {i.path[len(root) :] for i in infos if i.is_file and i.base_name.startswith(prefix) and i.path.startswith(root)}

    def _delta_schema(self):
        from deltalake import Schema

        return Schema.from_arrow(target_schema(self.spark_schema))

    def _replace_filters(self) -> list[tuple[str, str, Any]] | None:
        """delta-rs takes one conjunction: one partition spec, or several over a single column (IN)."""
        if self.replace is None:
            return None
        if len(self.replace) == 1:
            return [(c, "=", _filter_value(v)) for c, v in self.replace[0].items()]
        columns = {c for spec in self.replace for c in spec}
        if len(columns) != 1 or any(len(spec) != 1 for spec in self.replace):
            raise ValueError(
                f"Delta write to {self.path}: replacing several multi-column partitions at once is not "
                "supported; write one partition per transaction"
            )
        (column,) = columns
        if any(spec[column] is None for spec in self.replace):
            # delta-rs's IN never matches the null partition: its old files would stay beside the new
            raise ValueError(
                f"Delta write to {self.path}: replacing the null partition together with others at once is not "
                "supported; write one partition per transaction"
            )
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
                    f"Delta write to {self.path}: data for partition {pv} is outside the partitions being replaced {self.replace}"
                )


def _filter_value(value: str | None) -> str:
    """A partition value as delta-rs's partition filters take it: the null partition is ``""``, as
    in the log's partitionValues (None cannot be encoded, and the Hive name fails to parse)."""
    return "" if value is None else value


def _after(version: int | None) -> int:
    return 0 if version is None else version + 1


def _planned(version: int | None) -> str:
    return "a time the table did not exist" if version is None else f"version {version}"
