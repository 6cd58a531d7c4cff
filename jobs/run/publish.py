"""Publishing a partition: its quarantined rows and its scores, as two commits that either both
belong to this run or leave the partition as the last run that published it left it.

Delta has no transaction across two tables, so publication is a protocol (docs/DESIGN.md#publication):

1. **Claim.** Before computing anything, the run reads the partition's publication number from
   both tables (a Delta app transaction, ``lakescore/<job>/<partition>``) and claims the next one.
2. **Commit the quarantine, then the scores**, each carrying the claimed number as its app
   transaction version. Delta commits an app transaction version once: a second run that claimed
   the same number is refused at its first commit, having changed nothing (``ConcurrentWriteError``,
   exit 1, a retry starts from the beginning on the new state). A run that claimed a higher number
   (it started after this run's quarantine commit) supersedes it: this run checks before its
   second commit and stops, and its scores could not land anyway once the successor's have.
3. **Roll back on failure.** A run that fails between the two commits restores the quarantine
   partition to the rows of the run whose scores are published, under the next number.

A run killed between the two commits (``kill -9``) leaves the quarantine of one run beside the
scores of another: the commits say so (``lakescore.run_id``, ``lakescore.partition`` in both), the
resume check (``jobs.run.selection``) does not trust such a partition, and the next run of it
replaces both. Every commit also names the run, so an independent reader can check the invariant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pyspark.sql import DataFrame

from jobs.faults import reach
from jobs.run.context import RunContext
from jobs.run.partition_spec import partition_label
from jobs.run.selection import published_metadata
from jobs.tables import (
    ConcurrentWriteError,
    WriteResult,
    app_transaction_version,
    commit_metadata,
    read_table,
    write_table,
)
from jobs.tables.orphans import sweep_partition

log = logging.getLogger("lakescore.run")


@dataclass(frozen=True)
class Claim:
    """A run's claim on publishing one partition: the app transaction both commits carry, and when
    it was read (files written before then by other writers of the partition are dead)."""

    app_id: str
    number: int
    at: float  # epoch seconds


def claim(ctx: RunContext, spec: Mapping[str, Any]) -> Claim:
    """The next publication number of ``spec``, one above the higher of the two tables' (a run
    that died between its two commits left them unequal)."""
    cfg = ctx.cfg
    app_id = f"lakescore/{cfg.name}/{partition_label(spec)}"
    started = time.time()
    numbers = [app_transaction_version(path, app_id) or 0 for path in (cfg.output.quarantine, cfg.output.scored)]
    reach("claimed")
    return Claim(app_id, max(numbers) + 1, started)


def replace_partition(
    df: DataFrame,
    path: str,
    engine: str,
    partition_by: Sequence[str],
    spec: Mapping[str, Any],
    txn: tuple[str, int],
    metadata: Mapping[str, str],
    merge_schema: bool = False,
) -> WriteResult:
    """One transaction that replaces partition ``spec`` of ``path`` with ``df`` (which may be empty),
    if the table has not yet committed app transaction ``txn`` at its version or later."""
    return write_table(
        df,
        path,
        engine,
        mode="overwrite",
        partition_by=partition_by,
        replace_partitions=[spec],
        commit_metadata=dict(metadata),
        app_transaction=txn,
        merge_schema=merge_schema,
    )


def _taken(path: str, label: str, claim: Claim, cause: BaseException | None = None) -> ConcurrentWriteError:
    how = f" ({cause})" if cause is not None else ""
    return ConcurrentWriteError(
        f"partition {label}: another run published it in {path} meanwhile (publication {claim.number} or later "
        f"was committed after this run claimed it); this run published nothing of it{how}"
    )


def publish(ctx: RunContext, spec: Mapping[str, Any], claim: Claim, quarantined: DataFrame, scored: DataFrame) -> int | None:
    """Commit the partition's quarantined rows, then its scores; return the scored table's version.

    Raises:
        ConcurrentWriteError: another run claimed the partition; the tables hold that run's rows.
    """
    cfg = ctx.cfg
    label = partition_label(spec)
    txn = (claim.app_id, claim.number)
    metadata = published_metadata(
        ctx.run_id, ctx.model.uri, label, ctx.model.version, cfg.config_hash, ctx.input_version, claim.number, cfg.config_hashes
    )
    partition_by = cfg.input.partition_by
    # input columns the contract does not name reach the quarantine table as new nullable columns
    try:
        q = replace_partition(
            quarantined, cfg.output.quarantine, ctx.engine, partition_by, spec, txn, metadata, merge_schema=True
        )
    except ConcurrentWriteError as err:  # delta-spark: the same app transaction committed meanwhile
        raise _taken(cfg.output.quarantine, label, claim, err) from err
    if not q.committed:
        raise _taken(cfg.output.quarantine, label, claim)
    reach("quarantine_committed")
    try:
        if app_transaction_version(cfg.output.quarantine, claim.app_id) != claim.number:
            raise _taken(cfg.output.quarantine, label, claim)  # superseded: its scores must win
        s = replace_partition(scored, cfg.output.scored, ctx.engine, partition_by, spec, txn, metadata)
        if not s.committed:
            raise _taken(cfg.output.scored, label, claim)
    except BaseException:
        _roll_back_quarantine(ctx, spec, claim, q.version)
        raise
    reach("scores_committed")
    for path in (cfg.output.quarantine, cfg.output.scored):
        sweep_partition(path, spec, claim.at)
    return s.version


def publish_shadow(ctx: RunContext, spec: Mapping[str, Any], claim: Claim, rows: DataFrame) -> str | None:
    """Replace the partition of the shadow table with the challengers' ``rows``, after the scores
    and under the same app transaction. Its failure is the challengers' alone: the champion's
    partition stays published; the reason is logged and returned (None: committed)."""
    cfg = ctx.cfg
    label = partition_label(spec)
    path = cast(str, cfg.output.shadow)  # parse_config fills it in
    metadata = published_metadata(
        ctx.run_id, ctx.model.uri, label, ctx.model.version, cfg.config_hash, ctx.input_version, claim.number, cfg.config_hashes
    )
    try:
        replace_partition(
            rows,
            path,
            ctx.engine,
            cfg.input.partition_by,
            spec,
            (claim.app_id, claim.number),
            metadata,
            merge_schema=True,
        )
        sweep_partition(path, spec, claim.at)
    except Exception as exc:
        log.warning("partition %s: the challengers' rows could not be written to %s: %s", label, path, exc)
        return f"{type(exc).__name__}: {exc}"
    return None


def _previous_run(path: str, label: str, before: int) -> str:
    """The run whose commit of partition ``label`` preceded version ``before`` ("" when none)."""
    from deltalake import DeltaTable

    for entry in DeltaTable(path).history():  # newest first
        commit = commit_metadata(entry)
        if int(commit["version"]) < before and commit.get("lakescore.partition") == label:
            return str(commit.get("lakescore.run_id") or "")
    return ""


def _roll_back_quarantine(ctx: RunContext, spec: Mapping[str, Any], claim: Claim, committed: int | None) -> None:
    """Put back the quarantine partition as it was before this run's commit, unless a later run has
    replaced it already (then that run's protocol answers for the partition)."""
    cfg = ctx.cfg
    path, label = cfg.output.quarantine, partition_label(spec)
    if committed is None or app_transaction_version(path, claim.app_id) != claim.number:
        return
    try:
        if committed > 0:
            rows = read_table(ctx.spark, path, ctx.engine, [dict(spec)], version=committed - 1)
        else:  # this run created the table: before it there were no rows
            rows = read_table(ctx.spark, path, ctx.engine, [dict(spec)], version=committed).limit(0)
        metadata = {"lakescore.run_id": _previous_run(path, label, committed), "lakescore.partition": label}
        metadata["lakescore.restored_by"] = ctx.run_id
        txn = (claim.app_id, claim.number + 1)
        replace_partition(rows, path, ctx.engine, cfg.input.partition_by, spec, txn, metadata, merge_schema=True)
        log.warning("partition %s: its scores were not published; quarantine restored to the previous run's rows", label)
    except Exception:
        log.exception(
            "partition %s: could not restore the quarantine partition after a failed publication; the next run "
            "of the partition replaces both tables' rows",
            label,
        )


def hold_quarantine(ctx: RunContext, quarantined: DataFrame) -> None:
    """A gate-failed partition's quarantined rows, appended to the held table (not the published
    quarantine, whose partition must stay with the published scores): the operator sees why."""
    cfg = ctx.cfg
    if cfg.output.held is None:
        return
    write_table(
        quarantined,
        cfg.output.held,
        ctx.engine,
        mode="append",
        partition_by=cfg.input.partition_by,
        commit_metadata={"lakescore.run_id": ctx.run_id},
        merge_schema=True,
    )
