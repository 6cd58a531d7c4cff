"""One scoring run from start to ledger row: settle the context, score each partition, write the
statistics and the report, record the outcome. It decides what happens next; the stages do the work."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from jobs.config import JobConfig
from jobs.faults import reach
from jobs.logs import set_run_id
from jobs.model.resolve import ResolvedModel, release_model, resolve_model
from jobs.model.ship import ship_model
from jobs.report.publish import publish_report
from jobs.run.challengers import Challenger, ChallengerStatus, resolve_challengers
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
    is_usage_error,
    worker_error_line,
)
from jobs.run.partition import score_partition
from jobs.run.partition_spec import parse_partition, partition_label, partition_sort_key
from jobs.run.plan import Plan, contract_casts, plan_run
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
    specs = sorted((parse_partition(p, input_schema, cfg.input.partition_by) for p in partitions), key=partition_sort_key)
    record.partitions = [partition_label(s) for s in specs]
    log.info("job %s: engine=%s input=%s@v%s partitions=%s", cfg.name, engine, cfg.input.path, version, record.partitions)

    with timed(record.timings, "resolve_model", f"resolving model {cfg.model.uri}"):
        model = resolve_model(cfg.model)
    record.model_resolved_uri, record.model_name, record.model_version = model.uri, model.name, model.version
    try:
        plan = plan_run(spark, cfg, engine, model, input_schema, version)
        location = ship_model(spark, model)
    except BaseException:
        release_model(model)  # the run ends here: its copy of the model goes with it
        raise
    challengers, statuses = _challengers(spark, cfg, model, plan, input_schema)
    record.challengers = list(statuses)
    ctx = RunContext(
        spark,
        cfg,
        engine,
        record.run_id,
        version,
        input_schema,
        model,
        location,
        plan,
        dt.datetime.now(dt.UTC),
        challengers,
        tuple(statuses),
    )
    return ctx, specs


def _challengers(
    spark: SparkSession, cfg: JobConfig, model: ResolvedModel, plan: Plan, input_schema: T.StructType
) -> tuple[tuple[Challenger, ...], list[ChallengerStatus]]:
    """The configured challengers, resolved; none when the champion's own contract does not hold
    (the partitions then say why, as without challengers)."""
    if not cfg.model.challengers:
        return (), []
    try:
        _, _, prepared = contract_casts(cfg, model, plan, spark.createDataFrame([], input_schema))
    except Exception as exc:
        statuses = [ChallengerStatus(reference) for reference in cfg.model.challengers]
        for status in statuses:
            status.fail(f"not scored: the champion's input contract does not hold: {exc}")
        return (), statuses
    with timed({}, "resolve_challengers", f"resolving {len(cfg.model.challengers)} challenger(s)"):
        return resolve_challengers(spark, cfg, model, plan, input_schema, prepared)


def _record(record: RunRecord, outcome: PartitionOutcome) -> None:
    for step, seconds in outcome.timings.items():
        record.timings[step] = round(record.timings.get(step, 0.0) + seconds, 3)
    if outcome.scored_version is not None:
        record.scored_version = outcome.scored_version


@dataclass
class Failures:
    """What went wrong, partition by partition: each fails alone, the others are still scored."""

    gate: list[str] = field(default_factory=list)
    usage: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, label: str, exc: Exception) -> None:
        if is_usage_error(exc):
            self.usage.append(f"partition {label}: {worker_error_line(exc) or exc}")
            log.error("partition %s: %s; not published", label, exc)
        else:
            self.failed.append(f"partition {label}: {describe_error(exc)}")
            log.error("partition %s failed; not published", label, exc_info=exc)


def _settle(record: RunRecord, result: RunResult, failures: Failures, published: set[str]) -> None:
    """The run's counts and status once every partition is done.

    A retry can mend a failed partition (exit 1) and skips those already published, so it comes
    first; then what needs a person: a usage error (2), a failed gate (3).
    """
    record.rows_in = sum(p.rows_in for p in result.partitions)
    # what the tables hold: a partition that was not published scored and quarantined nothing
    record.rows_scored = sum(p.rows_scored for p in result.partitions if p.partition in published)
    record.rows_quarantined = sum(p.rows_quarantined for p in result.partitions if p.partition in published)
    record.rows_held = sum(p.rows_quarantined for p in result.partitions if p.partition not in published)
    errors = [*failures.failed, *failures.usage, *failures.gate]
    record.error = "; ".join(errors)[:2000] or None
    if failures.failed:
        record.status, record.exit_code = "failed", EXIT_FAILED
    elif failures.usage:
        record.status, record.exit_code = "rejected", EXIT_USAGE
    elif failures.gate:
        record.status, record.exit_code = "gate_failed", EXIT_GATE
    else:
        record.status, record.exit_code = "succeeded", EXIT_OK
    if not failures.gate and any(r["scope"] == "gate" and r["bucket"] == "fail" for r in result.stats_rows):
        log.warning("quality gate breached (gate.mode: warn): published anyway; see the gate rows of run %s", record.run_id)


def _score_all(ctx: RunContext, specs: Sequence[dict[str, Any]], record: RunRecord, result: RunResult) -> None:
    failures, published = Failures(), set()
    for spec in specs:  # each partition is its own unit: one that fails does not stop the others
        label = partition_label(spec)
        try:
            outcome = score_partition(ctx, spec, result.stats_rows)
        except Exception as exc:
            failures.add(label, exc)
            continue
        if outcome.gate_failure:
            log.error("%s; not published", outcome.gate_failure)
            failures.gate.append(outcome.gate_failure)
        else:
            published.add(label)
        _record(record, outcome)
        result.partitions.append(outcome.result)
        result.stats_rows.extend(outcome.stats_rows)
    reach("partitions_done")
    _settle(record, result, failures, published)


def run(spark: SparkSession, cfg: JobConfig, partitions: Sequence[str], input_version: int | None = None) -> RunResult:
    """Score ``partitions`` of the configured input; never raises for a failed run.

    ``input_version`` pins the input's Delta snapshot (a replay); by default the latest is read.

    The outcome is in the returned record's ``status`` and ``exit_code`` and in the runs ledger:
    a ``running`` row once the run is planned, the final row when it ends (a run killed in between
    keeps its ``running`` row).
    """
    run_id = uuid.uuid4().hex[:16]
    set_run_id(run_id)
    started = dt.datetime.now(dt.UTC)
    record = RunRecord(run_id, cfg.name, cfg.input.path, cfg.model.uri, cfg.config_hash, cfg.output.scored, started)
    result = RunResult(record)
    ctx: RunContext | None = None
    try:
        ctx, specs = _start(spark, cfg, partitions, record, input_version)
        append_run(spark, record, cfg.output.runs, ctx.engine)  # the running row: a killed run stays visible
        reach("planned")
        _score_all(ctx, specs, record, result)
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
        if ctx is not None:
            for used in (ctx.model, *[ch.model for ch in ctx.challengers]):
                release_model(used)
    return result


def _finish(spark: SparkSession, cfg: JobConfig, record: RunRecord, started: dt.datetime, result: RunResult) -> None:
    """The final ledger row, whatever happened before; a run whose row cannot be written has failed."""
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
