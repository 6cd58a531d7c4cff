"""One scoring run from start to ledger row: settle the context, score each partition, write the
statistics and the report, record the outcome. It decides what happens next; the stages do the work."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Any, cast

from pyspark.sql import SparkSession

from jobs.config import JobConfig
from jobs.logs import set_run_id
from jobs.model.resolve import resolve_model
from jobs.model.ship import ship_model
from jobs.quality.stats_table import write_stats
from jobs.report.publish import publish_report
from jobs.run.context import RunContext
from jobs.run.ledger import RunRecord, append_run
from jobs.run.outcome import (
    EXIT_FAILED,
    EXIT_GATE,
    EXIT_OK,
    EXIT_USAGE,
    USAGE_ERRORS,
    PartitionOutcome,
    RunResult,
    describe_error,
)
from jobs.run.partition import score_partition
from jobs.run.partition_spec import parse_partition, partition_label
from jobs.run.plan import plan_run
from jobs.run.timing import timed
from jobs.tables import resolve_engine, table_exists, table_schema, table_version
from transforms.contract import ContractError

log = logging.getLogger("lakescore.run")


def _start(
    spark: SparkSession, cfg: JobConfig, partitions: Sequence[str], record: RunRecord, input_version: int | None
) -> tuple[RunContext, list[dict[str, Any]]]:
    """Resolve the engine, the input snapshot, the partitions and the model, and plan the run."""
    engine = record.engine = resolve_engine(spark, cfg.engine)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.scoring.batch_size))
    if not table_exists(cfg.input.path, engine):
        raise ContractError(f"input table {cfg.input.path} does not exist or is not a Delta table")
    # the input table exists (checked above): it has a version
    version = cast(int, table_version(cfg.input.path, engine)) if input_version is None else input_version
    record.input_version = version
    input_schema = table_schema(cfg.input.path, version, engine)
    # oldest first, whatever order they were named in: consecutive drift compares with the one before
    specs = sorted(
        (parse_partition(p, input_schema, cfg.input.partition_by) for p in partitions), key=lambda s: tuple(s.values())
    )
    record.partitions = [partition_label(s) for s in specs]
    log.info("job %s: engine=%s input=%s@v%s partitions=%s", cfg.name, engine, cfg.input.path, version, record.partitions)

    with timed(record.timings, "resolve_model", f"resolving model {cfg.model.uri}"):
        model = resolve_model(cfg.model)
    record.model_resolved_uri, record.model_name, record.model_version = model.uri, model.name, model.version
    plan = plan_run(spark, cfg, engine, model, input_schema, version)
    ctx = RunContext(
        spark, cfg, engine, record.run_id, version, input_schema, model, ship_model(spark, model), plan, dt.datetime.now(dt.UTC)
    )
    return ctx, specs


def _record(record: RunRecord, outcome: PartitionOutcome) -> None:
    for step, seconds in outcome.timings.items():
        record.timings[step] = round(record.timings.get(step, 0.0) + seconds, 3)
    if outcome.scored_version is not None:
        record.scored_version = outcome.scored_version


def _settle(record: RunRecord, result: RunResult, gate_failures: Sequence[str]) -> None:
    """The run's counts and status once every partition is done."""
    record.rows_in = sum(p.rows_in for p in result.partitions)
    record.rows_scored = sum(p.rows_scored for p in result.partitions)
    record.rows_quarantined = sum(p.rows_quarantined for p in result.partitions)
    record.status, record.exit_code = "succeeded", EXIT_OK
    if gate_failures:
        record.status, record.exit_code = "gate_failed", EXIT_GATE
        record.error = "; ".join(gate_failures)[:2000]
    elif any(r["scope"] == "gate" and r["bucket"] == "fail" for r in result.stats_rows):
        log.warning("quality gate breached (gate.mode: warn): published anyway; see the gate rows of run %s", record.run_id)


def run(spark: SparkSession, cfg: JobConfig, partitions: Sequence[str], input_version: int | None = None) -> RunResult:
    """Score ``partitions`` of the configured input; never raises for a failed run.

    ``input_version`` pins the input's Delta snapshot (a replay); by default the latest is read.

    The outcome is in the returned record's ``status`` and ``exit_code`` and in the runs ledger.
    """
    run_id = uuid.uuid4().hex[:16]
    set_run_id(run_id)
    started = dt.datetime.now(dt.UTC)
    record = RunRecord(run_id, cfg.name, cfg.input.path, cfg.model.uri, cfg.config_hash, cfg.output.scored, started)
    result = RunResult(record)
    try:
        ctx, specs = _start(spark, cfg, partitions, record, input_version)
        gate_failures: list[str] = []
        for spec in specs:  # each partition is its own unit: one that fails the gate does not stop the others
            outcome = score_partition(ctx, spec, result.stats_rows)
            if outcome.gate_failure:
                log.error("%s; not published", outcome.gate_failure)
                gate_failures.append(outcome.gate_failure)
            _record(record, outcome)
            result.partitions.append(outcome.result)
            result.stats_rows.extend(outcome.stats_rows)
        with timed(record.timings, "stats_write", "writing statistics"):
            partition_fields = [ctx.input_schema[c] for c in cfg.input.partition_by]
            write_stats(spark, cfg.output.stats, ctx.engine, result.stats_rows, partition_fields, run_id)
        _settle(record, result, gate_failures)
        bins = (ctx.plan.feature_bins, ctx.plan.prediction_bins)
        result.report = record.report = publish_report(cfg, record, result.stats_rows, bins, ctx.model.features)
    except USAGE_ERRORS as exc:
        record.status, record.exit_code, record.error = "rejected", EXIT_USAGE, str(exc)
        log.error("%s", exc)
    except Exception as exc:  # the scheduler needs an exit code and the ledger a row, whatever broke
        record.status, record.exit_code, record.error = "failed", EXIT_FAILED, describe_error(exc)
        log.exception("run failed")
    finally:
        _finish(spark, cfg, record, started, result)
    return result


def _finish(spark: SparkSession, cfg: JobConfig, record: RunRecord, started: dt.datetime, result: RunResult) -> None:
    """The ledger row, whatever happened before; a run whose row cannot be written has failed."""
    record.finished_at = dt.datetime.now(dt.UTC)
    record.timings["total"] = round((record.finished_at - started).total_seconds(), 3)
    try:
        append_run(spark, record, cfg.output.runs, record.engine or "embedded")
    except Exception:
        log.exception("could not append to the runs ledger %s", cfg.output.runs)
        if record.exit_code == EXIT_OK:
            record.status, record.exit_code = "failed", EXIT_FAILED
    if result.report:
        log.info("run %s %s (exit %d); report %s", record.run_id, record.status, record.exit_code, result.report)
