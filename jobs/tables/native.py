"""The native engine's own work: table metadata and conflict handling through delta-spark.

On the native engine a table may use features that delta-rs cannot read (deletion vectors,
column mapping, v2 checkpoints), so its existence, versions, schema and history come from
delta-spark itself; each reads the log, no data file.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast

from pyspark.sql import DataFrameWriter, Row, SparkSession
from pyspark.sql.types import StructType

from jobs.tables.embedded.commit import CommitPolicy
from jobs.tables.embedded.errors import ConcurrentWriteError

log = logging.getLogger("lakescore.tables")


def exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def version(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    # a Delta table's history holds at least the commit that created it
    return int(cast(Row, DeltaTable.forPath(spark, path).history(1).select("version").first())[0])


def schema(spark: SparkSession, path: str, at: int | None = None) -> StructType:
    reader = spark.read.format("delta")
    if at is not None:
        reader = reader.option("versionAsOf", str(at))
    return reader.load(path).schema


def history(spark: SparkSession, path: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` commits as ``{"version", "timestamp", "userMetadata", "operation"}``."""
    from delta.tables import DeltaTable

    rows = DeltaTable.forPath(spark, path).history(limit).select("version", "timestamp", "userMetadata", "operation").collect()
    return [row.asDict() for row in rows]


# delta-spark's optimistic concurrency: a commit that conflicts with one made since this write's
# snapshot raises one of these (io.delta.exceptions.*), and nothing of this write is committed
CONFLICTS = re.compile(
    r"\b(Concurrent(?:Append|DeleteRead|DeleteDelete|Transaction|Write)Exception|ProtocolChangedException|MetadataChangedException)\b"
    r"|\[(DELTA_CONCURRENT_[\w.]+|DELTA_PROTOCOL_CHANGED[\w.]*|DELTA_METADATA_CHANGED[\w.]*)\]"
)


def save(writer: DataFrameWriter, path: str, policy: CommitPolicy) -> None:
    """``writer.save(path)`` under LakeScore's conflict policy: a delta-spark conflict becomes
    ConcurrentWriteError (``fail``), or the whole write runs again on the newer snapshot
    (``retry``), at most ``policy.max_retries`` times. delta-spark has already retried what
    does not conflict (appends to other partitions)."""
    for attempt in range(policy.max_retries + 1):
        try:
            writer.save(path)
            return
        except Exception as err:  # py4j and pyspark wrap delta-spark's exceptions differently
            # pyspark's captured exceptions carry the class as their own name, the error class in the text
            found = CONFLICTS.search(f"{type(err).__name__} {err}")
            if found is None:
                raise
            name = found.group(1) or found.group(2)
            if policy.conflict == "fail" or attempt == policy.max_retries:
                raise ConcurrentWriteError(
                    f"Delta write to {path}: another writer's commit conflicts with this write ({name}); nothing was committed"
                ) from err
            log.warning(
                "delta write %s: %s, a concurrent commit; writing again on the new snapshot (%d of %d)",
                path,
                name,
                attempt + 1,
                policy.max_retries,
            )
