"""A table's snapshot through delta-rs: opening it (latest, or by version or timestamp), its Spark
schema and files, and refusing features the embedded engine cannot honour
(see docs/DESIGN.md#what-the-embedded-engine-refuses)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pyarrow as pa
from pyspark.sql.types import StructType

from jobs.tables.embedded.errors import UnsupportedFeatureError
from jobs.tables.embedded.storage import explained, table_filesystem

# Reader features whose tables the embedded engine would read wrongly, so it refuses them by name
# rather than return wrong rows: deletion vectors (deleted rows would come back), column mapping
# (physical names: nulls), v2 checkpoints (delta-rs cannot replay them), type widening (files of
# the older type, which one of the readers crashes on), variants (delta-rs gives
# struct<metadata, value>, and a shredded one's typed columns would be lost). vacuumProtocolCheck
# only binds vacuum, which delta-rs honours.
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


def is_delta_table(path: str) -> bool:
    """Whether ``path`` holds a Delta table (delta-rs). Raises StorageCredentialsError when object
    storage cannot be asked for want of credentials or region."""
    from deltalake import DeltaTable

    with explained(path):
        return DeltaTable.is_deltatable(path)


def open_table(path: str, version: int | None = None, timestamp: str | None = None):
    """The table at ``version``, or as of ``timestamp`` (ISO 8601), or its latest snapshot.
    Raises StorageCredentialsError as ``is_delta_table`` does."""
    with explained(path):
        return _open_table(path, version, timestamp)


def _open_table(path: str, version: int | None, timestamp: str | None):
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

    fs, root = table_filesystem(path)
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


def check_readable(table, path: str, doing: str = "read") -> None:
    """Raise UnsupportedFeatureError when the embedded engine cannot ``doing`` (read, write) this
    snapshot correctly."""
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


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # Hive's and Spark's name for the null partition's directory


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


def files_by_partition(table) -> dict[str, dict[str, str | None]]:
    """Active data files of a snapshot and their partition values, in the log's string form."""
    prefix = "partition."
    rows = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    return {r["path"]: {k[len(prefix) :]: partition_string(v) for k, v in r.items() if k.startswith(prefix)} for r in rows}
