"""Which partitions a run scores: named ones, a ``--from/--to`` range, or what changed since the
last run; and which of them are already done.

Everything here reads Delta logs and the ledger's commit metadata with delta-rs on the driver:
no SparkSession, no data files. A plan is settled before Spark starts, so ``--dry-run`` costs
seconds, and a restarted backfill knows what to skip.

How "already scored" is known: every partition the job publishes is one commit of the scored
table whose commit info carries ``lakescore.partition``, ``lakescore.model_version``,
``lakescore.config_hash`` and ``lakescore.input_version`` (``published_metadata``, written by ``jobs.run.publish``). A partition is
done when its latest such commit has the same model version and config hash, and the input
partition has the same data files now as at the input version that commit read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.run.partition_spec import PartitionError, parse_partition, partition_label
from jobs.tables import commit_metadata, table_exists

COMMIT_KEYS = ("lakescore.partition", "lakescore.model_version", "lakescore.config_hash", "lakescore.input_version")


def published_metadata(
    run_id: str, model_uri: str, partition: str, model_version: int | str | None, config_hash: str, input_version: int
) -> dict[str, str]:
    """What the commit that publishes a partition's scores carries, so ``published`` can tell later
    runs (resume, ``--since-last-run``) that it is done."""
    return {
        "lakescore.run_id": run_id,
        "lakescore.model": model_uri,
        "lakescore.partition": partition,
        "lakescore.model_version": str(model_version),
        "lakescore.config_hash": config_hash,
        "lakescore.input_version": str(input_version),
    }


@dataclass(frozen=True)
class Published:
    """The latest commit that published one partition of the scored table."""

    version: int
    run_id: str | None
    model_version: str | None
    config_hash: str | None
    input_version: int | None


@dataclass(frozen=True)
class Selection:
    """The partitions to score, in order, and those left out with the reason why."""

    partitions: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    files: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # label -> (data files, bytes)


def input_schema(path: str):
    """The input table's Spark schema, read from its Delta log (no Spark session needed)."""
    from jobs.tables import table_schema

    return table_schema(path)


def partition_files(path: str, partition_by: Sequence[str], version: int | None = None) -> dict[str, dict[str, int]]:
    """``{"ds=2024-06-01": {file path: size}}`` for every partition of the table at ``version``."""
    import pyarrow as pa
    from deltalake import DeltaTable

    table = DeltaTable(path, version=version) if version is not None else DeltaTable(path)
    adds = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    out: dict[str, dict[str, int]] = {}
    for add in adds:
        spec = {c: add.get(f"partition.{c}") for c in partition_by}
        out.setdefault(partition_label(spec), {})[add["path"]] = add["size_bytes"]
    return out


def published(scored_path: str) -> dict[str, Published]:
    """The latest publishing commit per partition label, from the scored table's history."""
    from deltalake import DeltaTable

    if not table_exists(scored_path):
        return {}
    out: dict[str, Published] = {}
    for entry in DeltaTable(scored_path).history():  # newest first
        commit = commit_metadata(entry)
        label = commit.get("lakescore.partition")
        if not label or label in out:
            continue
        input_version = commit.get("lakescore.input_version")
        out[label] = Published(
            version=int(commit["version"]),
            run_id=commit.get("lakescore.run_id"),
            model_version=commit.get("lakescore.model_version"),
            config_hash=commit.get("lakescore.config_hash"),
            input_version=int(input_version) if input_version not in (None, "") else None,
        )
    return out


def _in_range(label_value: Any, start: Any, end: Any) -> bool:
    return (start is None or label_value >= start) and (end is None or label_value <= end)


def select(
    input_path: str,
    partition_by: Sequence[str],
    scored_path: str,
    *,
    partitions: Sequence[str] = (),
    start: str | None = None,
    end: str | None = None,
    since_last_run: bool = False,
    model_version: str | None = None,
    config_hash: str | None = None,
    resume: bool = False,
) -> Selection:
    """Settle the partitions of one run.

    Args:
        partitions: ``--partition`` arguments, scored as named (rescored even when done).
        start, end: ``--from``/``--to``, inclusive, over the only partition column; the input's
            partitions in that range, oldest first.
        since_last_run: every input partition that was never published, or whose data files changed
            since the input version its last publication read.
        model_version, config_hash, resume: with ``resume``, partitions already published with this
            model version and config, from unchanged input, are skipped (a restarted backfill).

    Raises:
        PartitionError: a bad partition or range argument, naming it.
    """
    schema = input_schema(input_path)
    now = partition_files(input_path, partition_by)
    if partitions:
        labels = [partition_label(parse_partition(p, schema, partition_by)) for p in partitions]
        missing = [label for label in labels if label not in now]
        if missing:
            raise PartitionError(f"input table {input_path} has no partition {', '.join(missing)}")
    elif start is not None or end is not None or since_last_run:
        if len(partition_by) != 1 and not since_last_run:
            raise PartitionError(f"--from/--to need a table partitioned by one column; {input_path} has {list(partition_by)}")
        column = partition_by[0]
        bounds = [parse_partition(f"{column}={b}", schema, partition_by)[column] if b else None for b in (start, end)]
        if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
            raise PartitionError(f"--from {start} is after --to {end}")
        typed = {label: parse_partition(label, schema, partition_by) for label in now}
        labels = sorted(
            (label for label, spec in typed.items() if len(partition_by) > 1 or _in_range(spec[column], *bounds)),
            key=lambda label: tuple(typed[label].values()),
        )
    else:
        raise PartitionError("name the partitions: --partition, --from/--to, or --since-last-run")

    done = published(scored_path) if (since_last_run or resume) else {}
    chosen, skipped = [], []
    for label in labels:
        why = _why_skipped(
            done.get(label), label, input_path, partition_by, now, since_last_run, resume, model_version, config_hash
        )
        if why is not None:
            skipped.append((label, why))
        else:
            chosen.append(label)
    files = {label: (len(now.get(label, {})), sum(now.get(label, {}).values())) for label in chosen}
    return Selection(tuple(chosen), tuple(skipped), files)


def _why_skipped(
    last: Published | None,
    label: str,
    input_path: str,
    partition_by: Sequence[str],
    now: dict[str, dict[str, int]],
    since_last_run: bool,
    resume: bool,
    model_version: str | None,
    config_hash: str | None,
) -> str | None:
    """Why ``label`` is left out (``last``: its latest publication), or None when it is scored."""
    if last is None or last.input_version is None or not _same_files(input_path, partition_by, label, last.input_version, now):
        return None  # never published, or its input changed since
    if since_last_run:
        return f"input unchanged since its last scoring (scored table version {last.version})"
    if resume and last.model_version == model_version and last.config_hash == config_hash:
        return f"already scored with model version {model_version} and this config (run {last.run_id})"
    return None


def _same_files(
    input_path: str, partition_by: Sequence[str], label: str, input_version: int, now: dict[str, dict[str, int]]
) -> bool:
    then = _files_at(input_path, tuple(partition_by), input_version)
    return set(then.get(label, {})) == set(now.get(label, {}))


_files_cache: dict[tuple[str, tuple[str, ...], int], dict[str, dict[str, int]]] = {}


def _files_at(path: str, partition_by: tuple[str, ...], version: int) -> dict[str, dict[str, int]]:
    key = (path, partition_by, version)
    if key not in _files_cache:  # many partitions usually share the input version they were read at
        _files_cache[key] = partition_files(path, partition_by, version)
    return _files_cache[key]


def describe(selection: Selection, model: str, now: dt.datetime | None = None) -> str:
    """The plan as ``--dry-run`` prints it."""
    lines = [f"plan: {len(selection.partitions)} partition(s) to score with {model}"]
    for label in selection.partitions:
        count, size = selection.files.get(label, (0, 0))
        lines.append(f"  score  {label:<24} {count} file(s), {size / 1e6:.1f} MB")
    for label, why in selection.skipped:
        lines.append(f"  skip   {label:<24} {why}")
    return "\n".join(lines)
