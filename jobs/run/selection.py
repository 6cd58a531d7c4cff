"""Which partitions a run scores: named ones, a ``--from/--to`` range, or what changed since the
last run; and which of them are already done.

Everything here reads Delta logs and the ledger's commit metadata with delta-rs on the driver:
no SparkSession, no data files. A plan is settled before Spark starts, so ``--dry-run`` costs
seconds, and a restarted backfill knows what to skip.

How "already scored" is known: every partition the job publishes is one commit of the scored
table whose commit info carries ``lakescore.partition``, ``lakescore.model_version``,
``lakescore.config_hash`` and ``lakescore.input_version`` (``published_metadata``, written by
``jobs.run.publish``). A partition is done when its latest such commit has the same model version
and config hash, the input partition has the same data files now as at the input version that
commit read, and the publication is audited (``Audit``): the quarantine table's latest commit of
the partition is the same run's, the stats table holds that run's rows of it, and the ledger has
that run's final row. A run killed part way fails the audit, so its partitions are scored again.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.config.sections import changed_sections
from jobs.run.partition_spec import PartitionError, parse_partition, partition_label, partition_sort_key
from jobs.tables import commit_metadata, table_exists
from jobs.tables.embedded.snapshot import open_table

COMMIT_KEYS = ("lakescore.partition", "lakescore.model_version", "lakescore.config_hash", "lakescore.input_version")


def published_metadata(
    run_id: str,
    model_uri: str,
    partition: str,
    model_version: int | str | None,
    config_hash: str,
    input_version: int,
    publication: int,
    config_sections: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What both commits that publish a partition (quarantine, then scores) carry, so ``published``
    can tell later runs (resume, ``--since-last-run``) that it is done, and anyone can tell which run
    each table's rows of the partition came from."""
    return {
        "lakescore.run_id": run_id,
        "lakescore.model": model_uri,
        "lakescore.partition": partition,
        "lakescore.model_version": str(model_version),
        "lakescore.config_hash": config_hash,
        "lakescore.input_version": str(input_version),
        "lakescore.publication": str(publication),
        "lakescore.config_sections": json.dumps(dict(config_sections or {}), sort_keys=True),
    }


@dataclass(frozen=True)
class Published:
    """The latest commit that published one partition of the scored table."""

    version: int
    run_id: str | None
    model_version: str | None
    config_hash: str | None
    input_version: int | None
    config_sections: Mapping[str, str] | None = None  # per-section hashes, when the commit has them


@dataclass(frozen=True)
class Selection:
    """The partitions to score, in order, and those left out with the reason why."""

    partitions: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    files: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # label -> (data files, bytes)
    reasons: Mapping[str, str] = field(default_factory=dict)  # label -> why it is scored


@dataclass(frozen=True)
class Audit:
    """The tables a publication is checked against before a resume trusts it as done."""

    quarantine: str
    stats: str
    runs: str

    def distrust(self, done: Mapping[str, Published]) -> dict[str, str]:
        """label -> why its latest publication cannot be trusted (absent: it can)."""
        from jobs.run.ledger import latest_rows

        runs = {p.run_id for p in done.values() if p.run_id}
        quarantined = _latest_runs(self.quarantine)
        with_stats = _stats_of(self.stats, runs)
        ledger = latest_rows(self.runs, runs)
        out: dict[str, str] = {}
        for label, last in done.items():
            row = ledger.get(last.run_id or "")
            if quarantined.get(label) != last.run_id:
                out[label] = (
                    f"torn: its quarantine is from run {quarantined.get(label) or 'none'}, its scores from run {last.run_id}"
                )
            elif (last.run_id, label) not in with_stats:
                out[label] = f"run {last.run_id} left no statistics for it"
            elif row is None or row["status"] == "running":
                out[label] = f"run {last.run_id} that published it never finished (no final ledger row)"
        return out


def _latest_runs(path: str) -> dict[str, str | None]:
    """label -> the run of the latest commit of that partition (a restore names the run it restored)."""

    if not table_exists(path):
        return {}
    out: dict[str, str | None] = {}
    for entry in open_table(path).history():  # newest first
        commit = commit_metadata(entry)
        label = commit.get("lakescore.partition")
        if label and label not in out:
            out[label] = commit.get("lakescore.run_id") or None
    return out


def _stats_of(path: str, runs: set[str]) -> set[tuple[str, str]]:
    """(run, partition label) pairs the stats table holds rows of, for ``runs``."""
    import pyarrow.dataset as ds

    if not runs or not table_exists(path):
        return set()
    rows = (
        open_table(path)
        .to_pyarrow_dataset()
        .to_table(columns=["run_id", "partition"], filter=ds.field("run_id").isin(sorted(runs)))
    )
    return set(zip(rows.column("run_id").to_pylist(), rows.column("partition").to_pylist(), strict=True))


def input_schema(path: str):
    """The input table's Spark schema, read from its Delta log (no Spark session needed)."""
    from jobs.tables import table_schema

    return table_schema(path)


def partition_files(path: str, partition_by: Sequence[str], version: int | None = None) -> dict[str, dict[str, int]]:
    """``{"ds=2024-06-01": {file path: size}}`` for every partition of the table at ``version``."""
    import pyarrow as pa

    table = open_table(path, version)
    adds = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    out: dict[str, dict[str, int]] = {}
    for add in adds:
        spec = {c: add.get(f"partition.{c}") for c in partition_by}
        out.setdefault(partition_label(spec), {})[add["path"]] = add["size_bytes"]
    return out


def published(scored_path: str) -> dict[str, Published]:
    """The latest publishing commit per partition label, from the scored table's history."""

    if not table_exists(scored_path):
        return {}
    out: dict[str, Published] = {}
    for entry in open_table(scored_path).history():  # newest first
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
            config_sections=_sections(commit.get("lakescore.config_sections")),
        )
    return out


def _sections(text: Any) -> dict[str, str] | None:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) and value else None


def _in_range(label_value: Any, start: Any, end: Any) -> bool:
    """Inclusive; the null partition is in no range with a bound (as SQL's BETWEEN)."""
    if label_value is None:
        return start is None and end is None
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
    audit: Audit | None = None,
    config_sections: Mapping[str, str] | None = None,
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
        audit: the other tables a publication must agree with to count as done (None: trust the
            scored table's commits alone).

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
            key=lambda label: partition_sort_key(typed[label]),
        )
    else:
        raise PartitionError("name the partitions: --partition, --from/--to, or --since-last-run")

    done = published(scored_path)
    distrusted = audit.distrust(done) if audit is not None and (since_last_run or resume or partitions) else {}
    chosen, skipped, reasons = [], [], {}
    for label in labels:
        skip, why = _verdict(
            done.get(label),
            distrusted.get(label),
            _Ask(since_last_run, resume, model_version, config_hash, bool(partitions), config_sections),
            functools.partial(_same_files, input_path, partition_by, label, now=now),
        )
        if skip:
            skipped.append((label, why))
        else:
            chosen.append(label)
            reasons[label] = why
    files = {label: (len(now.get(label, {})), sum(now.get(label, {}).values())) for label in chosen}
    return Selection(tuple(chosen), tuple(skipped), files, reasons)


@dataclass(frozen=True)
class _Ask:
    since_last_run: bool
    resume: bool
    model_version: str | None
    config_hash: str | None
    named: bool  # --partition: scored whatever was done before
    config_sections: Mapping[str, str] | None = None


def _verdict(last: Published | None, distrust: str | None, ask: _Ask, same_input: Callable[[int], bool]) -> tuple[bool, str]:
    """Whether ``label`` is skipped, and why it is skipped or scored (``last``: its latest publication)."""
    if last is None:
        return False, "never published"
    if last.input_version is None or not same_input(last.input_version):
        return False, f"input changed since run {last.run_id} scored it"
    if distrust is not None:
        return False, distrust
    if ask.named:
        return False, "named with --partition"
    if ask.since_last_run:
        return True, f"input unchanged since its last scoring (scored table version {last.version})"
    changed = _changes(last, ask)
    if ask.resume and not changed:
        return True, f"already scored with model version {ask.model_version} and this config (run {last.run_id})"
    return False, changed or "rescored as asked"


def _changes(last: Published, ask: _Ask) -> str:
    out = []
    if last.model_version != ask.model_version:
        out.append(f"model version {last.model_version} -> {ask.model_version}")
    if last.config_hash != ask.config_hash:
        sections = (
            changed_sections(last.config_sections, ask.config_sections) if last.config_sections and ask.config_sections else []
        )
        out.append(f"config changed in {', '.join(sections)}" if sections else "config changed")
    return ", ".join(out)


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
        why = selection.reasons.get(label)
        lines.append(f"  score  {label:<24} {count} file(s), {size / 1e6:.1f} MB" + (f"  ({why})" if why else ""))
    for label, why in selection.skipped:
        lines.append(f"  skip   {label:<24} {why}")
    return "\n".join(lines)
