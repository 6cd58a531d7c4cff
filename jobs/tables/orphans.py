"""Removing what dead writes of one partition left: data files no commit of the log names.

A writer killed between writing its files and committing them (``kill -9``, a lost executor, a
driver that died) leaves Parquet files in the partition's directory that the Delta log never
mentions. Delta readers ignore them, but a plain Parquet reader of the directory counts them, and
they cost storage until ``vacuum``. The next run that publishes the partition removes them.

Which files are safe to delete, without a lock (see docs/DESIGN.md#orphan-sweep):

- files of the partition's directory that the current snapshot does not hold, and that no commit
  since they were written adds or removes (a file removed by a commit is still needed for time
  travel until ``vacuum``). A file is written before the commit that adds it, so only the commits
  newer than the oldest candidate (less ``CLOCK_SKEW_SECONDS``) need reading: a recent crash costs
  a few commit files, never the whole log;
- written before ``older_than``: the sweeping run's claim on the partition. A writer that started
  later may be a legitimate successor still writing its files; one that started earlier claimed a
  publication number this run has now superseded, so its commit can never land.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from jobs.tables.embedded.storage import delete_under, table_filesystem
from jobs.tables.embedded.writer import partition_directory

log = logging.getLogger("lakescore.tables")

# storage clocks (S3's LastModified) and the driver's may disagree by this much
CLOCK_SKEW_SECONDS = 60.0


def _listing(path: str, directory: str) -> dict[str, float]:
    """``{relative path: modified (epoch seconds)}`` of the data files directly in ``directory``."""
    import pyarrow.fs as pafs

    fs, root = table_filesystem(path)
    where = f"{root}/{directory}" if directory else root
    infos = fs.get_file_info(pafs.FileSelector(where, allow_not_found=True))
    prefix = f"{directory}/" if directory else ""
    return {
        f"{prefix}{i.base_name}": i.mtime.timestamp()
        for i in infos
        if i.is_file and i.base_name.endswith(".parquet") and not i.base_name.startswith((".", "_"))
    }


def _commits_newest_first(path: str, latest: int) -> Iterator[list[dict[str, Any]]]:
    """The actions of each commit file still in the log, newest first."""
    fs, root = table_filesystem(path)
    for version in range(latest, -1, -1):
        try:
            with fs.open_input_stream(f"{root}/_delta_log/{version:020d}.json") as stream:
                text = stream.read().decode()
        except (FileNotFoundError, OSError):
            return  # cleaned up by log retention: what it named is past time travel anyway
        yield [json.loads(line) for line in text.splitlines() if line.strip()]


def _named_since(path: str, latest: int, since_ms: float) -> set[str]:
    """Paths (unquoted) that commits made at or after ``since_ms`` add or remove."""
    named: set[str] = set()
    for actions in _commits_newest_first(path, latest):
        for action in actions:
            for kind in ("add", "remove"):
                if kind in action:
                    named.add(unquote(action[kind]["path"]))
        stamps = [a["commitInfo"].get("timestamp") for a in actions if "commitInfo" in a]
        if stamps and stamps[0] is not None and stamps[0] < since_ms:
            break  # older commits cannot name a file written after this one was made
    return named


def sweep_partition(path: str, spec: Mapping[str, Any], older_than: float) -> list[str]:
    """Delete the files dead writes left in partition ``spec`` of the table at ``path``, written
    before ``older_than`` (epoch seconds); return them, relative to the table root."""
    import pyarrow as pa
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(path):
        return []
    table = DeltaTable(path)
    directory = partition_directory(tuple(spec.items()))
    files = {p: t for p, t in _listing(path, directory).items() if t < older_than}
    if not files:
        return []
    live = {unquote(p) for p in pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()}
    candidates = {p: t for p, t in files.items() if p not in live}
    if not candidates:
        return []
    since_ms = (min(candidates.values()) - CLOCK_SKEW_SECONDS) * 1000
    orphans = set(candidates) - _named_since(path, table.version(), since_ms)
    if orphans:
        delete_under(path, orphans | {_crc(p) for p in orphans})
        log.info("delta %s: removed %d file(s) that dead writes of %s left", path, len(orphans), directory)
    return sorted(orphans)


def _crc(relative: str) -> str:
    """The checksum file Hadoop's local filesystem writes beside a data file (delta-spark's writes)."""
    directory, _, name = relative.rpartition("/")
    return f"{directory}/.{name}.crc" if directory else f".{name}.crc"
