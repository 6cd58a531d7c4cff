"""Publishing a partition: one transaction that replaces it in the scored or quarantine table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame

from jobs.run.context import RunContext
from jobs.run.partition_spec import partition_label
from jobs.run.selection import published_metadata
from jobs.tables import WriteResult, write_table


def replace_partition(
    df: DataFrame,
    path: str,
    engine: str,
    job: str,
    partition_by: Sequence[str],
    spec: dict[str, Any],
    run_id: str,
    metadata: Mapping[str, str],
) -> WriteResult:
    """One transaction that replaces partition ``spec`` of ``path`` with ``df`` (which may be empty).

    The Delta app transaction (job, run and partition) makes a retried commit of the same run a
    no-op, while any other run still replaces the partition. The run id, not a clock, tells runs
    apart: a run started on a host whose clock is behind must not be skipped as already done.
    """
    txn = (f"lakescore/{job}/{run_id}/{partition_label(spec)}", 0)
    return write_table(
        df,
        path,
        engine,
        mode="overwrite",
        partition_by=partition_by,
        replace_partitions=[spec],
        commit_metadata=dict(metadata),
        app_transaction=txn,
    )


def publish_quarantine(ctx: RunContext, spec: dict[str, Any], quarantined: DataFrame) -> WriteResult:
    cfg = ctx.cfg
    return replace_partition(
        quarantined,
        cfg.output.quarantine,
        ctx.engine,
        cfg.name,
        cfg.input.partition_by,
        spec,
        ctx.run_id,
        {"lakescore.run_id": ctx.run_id},
    )


def publish_scores(ctx: RunContext, spec: dict[str, Any], scored: DataFrame) -> WriteResult:
    """The scored rows, with the commit metadata ``jobs.run.selection`` reads back (resume, ``--since-last-run``)."""
    cfg, model = ctx.cfg, ctx.model
    metadata = published_metadata(ctx.run_id, model.uri, partition_label(spec), model.version, cfg.config_hash, ctx.input_version)
    return replace_partition(scored, cfg.output.scored, ctx.engine, cfg.name, cfg.input.partition_by, spec, ctx.run_id, metadata)
