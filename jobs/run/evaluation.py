"""An evaluation run (``jobs/evaluate.py``): the plan settled from the Delta logs before Spark starts
(the partitions, the labels table's version, every column the join needs), then each partition
evaluated and written on its own (a failed one does not stop the others), and the outcome."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from jobs.config import EvaluationConfig, JobConfig
from jobs.logs import set_run_id
from jobs.quality import evaluation as ev
from jobs.quality.estimates import LONG, wanted_rows
from jobs.quality.evaluation_table import write_evaluation
from jobs.report.evaluation import write_evaluation_report
from jobs.run.outcome import EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, describe_error, is_usage_error
from jobs.run.partition_spec import PartitionError, parse_partition, partition_label, partition_sort_key
from jobs.run.signals import Raised, judge
from jobs.tables import read_table, resolve_engine, table_exists, table_schema, table_version
from jobs.tables.embedded.snapshot import open_table
from transforms.evaluation import Settings

log = logging.getLogger("lakescore.evaluate")
LINEAGE = ("model_name", "model_version")
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)


class EvaluationError(ValueError):
    """The evaluation cannot run as configured (exit 2): no ``evaluation`` section, a missing table
    or column. The message names the file, the table and the column."""


@dataclass(frozen=True)
class EvaluationPlan:
    """What a run evaluates, settled before Spark starts."""

    partitions: tuple[dict[str, Any], ...]  # typed specs of the evaluation's partition columns, oldest first
    labels_version: int  # the labels table's snapshot every partition is joined with
    as_of: dt.date  # the day maturity is judged on
    partition_fields: tuple[T.StructField, ...]  # the scored table's fields of the partition columns


def _columns(path: str, schema: T.StructType, wanted: Mapping[str, str], what: str) -> None:
    """Refuse a table that lacks a column the evaluation needs, naming it and the key it comes from."""
    names = schema.fieldNames()
    for column, key in wanted.items():
        if column not in names:
            raise EvaluationError(f"{what} {path} has no column {column!r} ({key}); its columns: {', '.join(names)}")


def _check_types(labels: str, labels_schema: T.StructType, scored_schema: T.StructType, e: EvaluationConfig) -> None:
    label = labels_schema[cast(str, e.label)].dataType
    if not isinstance(label, (T.BooleanType, T.NumericType)):
        raise EvaluationError(
            f"labels table {labels}: label column {e.label!r} is {label.simpleString()}; expected 0/1 numbers or booleans"
        )
    for column in (*e.keys, *e.partition_by):
        a, b = labels_schema[column].dataType, scored_schema[column].dataType
        if a != b and not (isinstance(a, _INTEGRAL) and isinstance(b, _INTEGRAL)):
            raise EvaluationError(
                f"labels table {labels}: column {column!r} is {a.simpleString()}, the scored table's is {b.simpleString()}"
            )


def _scored_partitions(path: str, schema: T.StructType, partition_by: Sequence[str]) -> dict[str, dict[str, Any]]:
    """label -> typed spec of every partition of the scored table (by the evaluation's columns)."""
    import pyarrow as pa

    adds = pa.table(open_table(path).get_add_actions(flatten=True)).to_pylist()
    labels = {partition_label({c: add.get(f"partition.{c}") for c in partition_by}) for add in adds}
    return {label: parse_partition(label, schema, partition_by) for label in labels}


def _select(
    cfg: JobConfig, schema: T.StructType, partitions: Sequence[str], start: str | None, end: str | None
) -> list[dict[str, Any]]:
    e, scored = cfg.evaluation, cfg.output.scored
    there = _scored_partitions(scored, schema, e.partition_by)
    if partitions:
        specs = [parse_partition(p, schema, e.partition_by) for p in partitions]
        missing = [partition_label(s) for s in specs if partition_label(s) not in there]
        if missing:
            raise PartitionError(f"scored table {scored} has no partition {', '.join(missing)}: score it first")
    else:
        if len(e.partition_by) != 1:
            raise PartitionError(f"--from/--to need one partition column; the evaluation has {list(e.partition_by)}")
        column = e.partition_by[0]
        low, high = (parse_partition(f"{column}={b}", schema, e.partition_by)[column] if b else None for b in (start, end))
        if low is not None and high is not None and low > high:
            raise PartitionError(f"--from {start} is after --to {end}")
        specs = [
            s
            for s in there.values()
            if s[column] is not None and (low is None or s[column] >= low) and (high is None or s[column] <= high)
        ]
    return sorted({partition_label(s): s for s in specs}.values(), key=partition_sort_key)


def plan_evaluation(
    cfg: JobConfig, partitions: Sequence[str], start: str | None, end: str | None, as_of: dt.date
) -> EvaluationPlan:
    """Settle the run from the Delta logs (delta-rs; no Spark).

    Raises:
        EvaluationError, PartitionError: what must change before the evaluation can run (exit 2).
    """
    e = cfg.evaluation
    if not e.enabled:
        raise EvaluationError(f"{cfg.source}: evaluation: no evaluation section (labels, label, ...): nothing to evaluate")
    labels, scored = cast(str, e.labels), cfg.output.scored
    if not table_exists(labels):
        raise EvaluationError(f"{cfg.source}: evaluation.labels: {labels} does not exist or is not a Delta table")
    if not table_exists(scored):
        raise EvaluationError(f"{cfg.source}: output.scored: {scored} does not exist: run the scoring job first")
    labels_schema, scored_schema = table_schema(labels), table_schema(scored)
    joined = {k: "evaluation.keys" for k in e.keys} | {p: "evaluation.partition_by" for p in e.partition_by}
    _columns(labels, labels_schema, {cast(str, e.label): "evaluation.label", **joined}, "labels table")
    outputs = {e.output_column: "evaluation.output_column"}
    if e.task == "binary":
        outputs[e.decision_column] = "evaluation.decision_column"
    _columns(scored, scored_schema, {**joined, **outputs, **dict.fromkeys(LINEAGE, "lineage")}, "scored table")
    _check_types(labels, labels_schema, scored_schema, e)
    specs = _select(cfg, scored_schema, partitions, start, end)
    if not specs:
        raise PartitionError(f"scored table {scored} has no partition in the range given")
    version = cast(int, table_version(labels))
    return EvaluationPlan(tuple(specs), version, as_of, tuple(scored_schema[p] for p in e.partition_by))


@dataclass
class PartitionEvaluation:
    partition: str
    models: list[ev.ModelEvaluation]
    counts: dict[str, float]  # the labels' partition (LABEL_COUNTS)
    version: int | None  # the evaluation table's version its rows landed in


@dataclass
class EvaluationResult:
    run_id: str
    exit_code: int = EXIT_OK
    partitions: list[PartitionEvaluation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    judged: tuple[str, str] | None = None  # the model version the retraining rule judged
    signals: list[Raised] = field(default_factory=list)
    report: str | None = None  # the evaluation report's path


def _read(spark: SparkSession, path: str, engine: str, spec: Mapping[str, Any], version: int | None = None) -> DataFrame:
    return read_table(spark, path, engine, [dict(spec)], version=version)


def evaluate_partition(
    spark: SparkSession, cfg: JobConfig, engine: str, plan: EvaluationPlan, spec: Mapping[str, Any]
) -> tuple[list[ev.ModelEvaluation], dict[str, float]]:
    """The partition's labels (at the plan's version) joined to the champion's scores and the
    challengers' (the shadow table's partition, when there is one): counts, one aggregation of
    statistics, the metrics; beside the champion's, its estimate from before the labels (the stats
    table's scope ``estimate`` rows of the partition, a handful)."""
    e = cfg.evaluation
    keys = tuple(k for k in e.keys if k not in e.partition_by)
    c = ev.Columns(keys, cast(str, e.label), e.output_column, e.decision_column, regression=e.task == "regression")
    labels = _read(spark, cast(str, e.labels), engine, spec, plan.labels_version)
    models = ev.model_rows(_read(spark, cfg.output.scored, engine, spec), ev.CHAMPION, c)
    shadow = cast(str, cfg.output.shadow)
    if table_exists(shadow, engine):
        models = models.unionByName(ev.model_rows(_read(spark, shadow, engine, spec), ev.CHALLENGER, c))
    counts, label_totals, stats = ev.joined_statistics(models, labels, c, Settings())
    judgement = ev.Judgement(ev.partition_date(spec), plan.as_of, e.horizon_days, e.min_labelled)
    estimated: list[dict[str, Any]] = []
    if not c.regression and table_exists(cfg.output.stats, engine):  # CBPE estimates a classifier
        found = _read(spark, cfg.output.stats, engine, spec)
        if "model_version" in found.columns:  # a stats table from before it has no estimates either
            estimated = [r.asDict() for r in found.where(wanted_rows(cfg.name)).select("run_id", "computed_at", *LONG).collect()]
    return ev.evaluations(counts, label_totals, stats, e.output_column, judgement, estimated), label_totals


def _age_rows(m: ev.ModelEvaluation, spec: Mapping[str, Any], as_of: dt.date) -> list[dict[str, Any]]:
    """``label_age_days``: how long the labels had to arrive, from the partition's day to the day
    judged (none for a partition without a day)."""
    day = ev.partition_date(spec)
    if day is None:
        return []
    model = {"role": m.role, "model_name": m.model_name, "model_version": m.model_version}
    cell = {"scope": ev.EVALUATION, "column": ev.TABLE, "metric": "label_age_days", "bucket": None}
    return [{**cell, **model, "value": float((as_of - day).days), "maturity": m.maturity, "label_coverage": m.coverage}]


def evaluate(spark: SparkSession, cfg: JobConfig, plan: EvaluationPlan) -> EvaluationResult:
    """Evaluate and write each planned partition; never raises for a failed partition (its error is
    in the result, exit 1, or 2 when a person must change something)."""
    run_id = uuid.uuid4().hex[:16]
    set_run_id(run_id)
    result = EvaluationResult(run_id)
    engine = resolve_engine(spark, cfg.engine)
    e = cfg.evaluation
    paths = (cast(str, e.output), cast(str, e.history))
    computed_at = dt.datetime.now(dt.UTC)
    usage = failed = False
    log.info("evaluation of job %s: labels %s@v%d, as of %s", cfg.name, e.labels, plan.labels_version, plan.as_of)
    for spec in plan.partitions:
        label = partition_label(spec)
        try:
            models, counts = evaluate_partition(spark, cfg, engine, plan, spec)
            common = {
                "run_id": run_id,
                "job": cfg.name,
                "partition": label,
                "labels_version": plan.labels_version,
                "as_of": plan.as_of,
                "computed_at": computed_at,
                **spec,
            }
            rows = [{**r, **common} for m in models for r in (*m.rows, *_age_rows(m, spec, plan.as_of))]
            written = write_evaluation(spark, paths, engine, rows, plan.partition_fields, spec, label, run_id)
            result.partitions.append(PartitionEvaluation(label, models, counts, written.version))
        except Exception as exc:  # each partition is its own unit
            if is_usage_error(exc):
                usage = True
                result.errors.append(f"partition {label}: {exc}")
                log.error("partition %s: %s", label, exc)
            else:
                failed = True
                result.errors.append(f"partition {label}: {describe_error(exc)}")
                log.error("partition %s failed", label, exc_info=exc)
    if not failed and e.degradation.enabled:
        failed = not _judge(spark, cfg, engine, result, computed_at)
    _report(spark, cfg, engine, plan, result)
    exit_degraded = EXIT_DEGRADED if result.signals else EXIT_OK
    result.exit_code = EXIT_FAILED if failed else EXIT_USAGE if usage else exit_degraded
    return result


def _report(spark: SparkSession, cfg: JobConfig, engine: str, plan: EvaluationPlan, result: EvaluationResult) -> None:
    """The evaluation report over every partition the table has; one that cannot be written is a
    warning, not another exit code (the tables hold everything it shows)."""
    signals = [{**r.signal.record(), "description": r.signal.describe(), "new": r.new} for r in result.signals]
    try:
        result.report = write_evaluation_report(spark, cfg, engine, result.run_id, plan.labels_version, signals)
        log.info("evaluation report %s", result.report)
    except Exception as exc:
        log.warning("could not write the evaluation report: %s", describe_error(exc))


def serving_model(result: EvaluationResult) -> tuple[str, str] | None:
    """The champion version of the run's newest partition that has one: the version serving now."""
    for p in reversed(result.partitions):
        champion = p.models[0] if p.models else None
        if champion is not None and champion.model_name and champion.model_version:
            return champion.model_name, champion.model_version
    return None


def _judge(spark: SparkSession, cfg: JobConfig, engine: str, result: EvaluationResult, computed_at: dt.datetime) -> bool:
    """Apply the retraining rule to the serving version; False when it could not be applied (a
    registry that does not answer, a table that cannot be read: exit 1, the rerun judges again)."""
    result.judged = serving_model(result)
    if result.judged is None:
        log.info("no partition of this run has a champion version to judge")
        return True
    try:
        result.signals = judge(spark, cfg, engine, result.judged, result.run_id, computed_at)
    except Exception as exc:
        result.errors.append(f"retraining rule for {result.judged[0]} version {result.judged[1]}: {describe_error(exc)}")
        log.error("could not apply the retraining rule", exc_info=exc)
        return False
    return True
