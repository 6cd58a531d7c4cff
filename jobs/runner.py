"""One scoring run: read, check, validate, preprocess, score, write, profile, record.

Each partition is its own unit with its own transactions, so a rerun of one partition replaces
exactly that partition in the scored and quarantine tables.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pyspark import SparkContext, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import ConfigError, JobConfig, StepConfig, diff_steps
from jobs.ledger import RunRecord, append_run
from jobs.logs import set_run_id
from jobs.models import ModelError, ResolvedModel, resolve_model
from jobs.partitions import PartitionError, parse_partition, partition_label
from jobs.progress import progress
from jobs.quality import Check, check_gate, drift_rows, previous_partition
from jobs.reference import fitted_values, profile
from jobs.report import log_to_mlflow, render, report_path, write_report
from jobs.tables import (
    UnsupportedFeatureError,
    WriteResult,
    read_table,
    resolve_engine,
    table_exists,
    table_schema,
    table_version,
    write_table,
)
from transforms.contract import ContractError, check_contract, conform
from transforms.preprocess import PipelineError, input_columns, output_columns, pipeline
from transforms.scoring import score
from transforms.stats import Bins, category_profile, fixed_bins, input_profile, prediction_profile, reference_bins
from transforms.validation import REASONS, is_quarantined, rule_columns, validate

log = logging.getLogger("lakescore.run")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_GATE = 0, 1, 2, 3
USAGE_ERRORS = (ConfigError, ContractError, PartitionError, ModelError, PipelineError, UnsupportedFeatureError)

LINEAGE = ("model_name", "model_version", "run_id", "scored_at")


@dataclass
class PartitionResult:
    partition: str
    rows_in: int
    rows_scored: int
    rows_quarantined: int


@dataclass
class RunResult:
    record: RunRecord
    partitions: list[PartitionResult] = field(default_factory=list)
    stats_rows: list[dict[str, Any]] = field(default_factory=list)
    report: str | None = None  # the run report's path

    @property
    def exit_code(self) -> int:
        return self.record.exit_code


def describe_error(exc: BaseException) -> str:
    """One line for the ledger: the error's first line, plus the innermost Python error when
    Spark wrapped a worker's traceback in its own message."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    inner = next((line for line in reversed(lines[1:]) if re.match(r"^[\w.]+(Error|Exception): ", line)), None)
    return (f"{text} ... {inner}" if inner else text)[:2000]


@contextlib.contextmanager
def _timed(timings: dict[str, float], step: str, what: str) -> Iterator[None]:
    log.info("%s ...", what)
    start = time.perf_counter()
    sc = SparkContext._active_spark_context
    with progress(sc, what) if sc is not None else contextlib.nullcontext():
        yield
    took = time.perf_counter() - start
    timings[step] = round(timings.get(step, 0.0) + took, 3)
    log.info("%s done in %.1fs", what, took)


# a contract's type names (jobs.config.CONTRACT_TYPES values) as Spark types
SPARK_TYPES: dict[str, T.DataType] = {
    "boolean": T.BooleanType(),
    "tinyint": T.ByteType(),
    "smallint": T.ShortType(),
    "int": T.IntegerType(),
    "bigint": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "string": T.StringType(),
    "binary": T.BinaryType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}


@dataclass(frozen=True)
class Plan:
    """What a run does to every partition, settled once before the first one is read."""

    steps: tuple[StepConfig, ...]
    fitted: dict[int, Any]
    reasons_with_code: bool = True  # False while the quarantine table predates the reason's code field
    feature_bins: dict[str, Bins] = field(default_factory=dict)  # from the reference: what drift is measured in
    prediction_bins: dict[str, Bins] = field(default_factory=dict)


class GateFailed(Exception):
    """A partition failed the quality gate (mode fail): its scores were not published."""

    def __init__(self, partition: PartitionResult, stats_rows: list[dict[str, Any]], checks: list[Check]) -> None:
        super().__init__(f"partition {partition.partition}: quality gate failed: " + "; ".join(
            f"{c.name}({c.column}) {c.observed:.4g} > {c.limit:g}" if c.name != "min_rows" else f"min_rows {c.observed:.0f} < {c.limit:g}"
            for c in checks if c.outcome == "fail"
        ))
        self.partition, self.stats_rows, self.checks = partition, stats_rows, checks


def choose_pipeline(cfg: JobConfig, model: ResolvedModel) -> tuple[StepConfig, ...]:
    """The preprocessing to run: the one the model was trained with, unless the config says otherwise.

    Raises:
        PipelineError: the config declares steps that differ from the model's, without
            ``preprocessing_override: true``. The message lists every difference.
    """
    if model.pipeline is None:
        if cfg.preprocessing is not None:
            log.info("preprocessing: %d step(s) from the job config (model %s logged no pipeline)", len(cfg.preprocessing), model.uri)
        return cfg.preprocessing or ()
    if cfg.preprocessing is None or cfg.preprocessing == model.pipeline:
        log.info("preprocessing: %d step(s) from model %s (lakescore/pipeline.json)", len(model.pipeline), model.uri)
        return model.pipeline
    diffs = diff_steps(model.pipeline, cfg.preprocessing, "the model", "the config")
    if cfg.preprocessing_override:
        log.warning(
            "preprocessing_override: scoring with the config's preprocessing, not the one model %s was trained with: %s",
            model.uri, "; ".join(diffs),
        )
        return cfg.preprocessing
    raise PipelineError(
        f"{cfg.source}: preprocessing differs from the pipeline model {model.uri} was trained with "
        f"(lakescore/pipeline.json): {'; '.join(diffs)}. Remove preprocessing from the config to use the model's, "
        "or set preprocessing_override: true to score with the config's anyway"
    )


def _required_columns(cfg: JobConfig, model: ResolvedModel, steps: Sequence[StepConfig]) -> dict[str, T.DataType | None]:
    """Columns the input must have: the declared contract with its types, then, of any type, what
    the rules and steps read and the features the steps do not create (their types are checked
    after preprocessing)."""
    needed: dict[str, T.DataType | None] = {c: SPARK_TYPES[t] for c, t in cfg.contract.columns}
    created = output_columns(steps)
    features = [f for f in model.features if f not in created]
    for c in (*cfg.keys, *cfg.output.passthrough, *sorted(rule_columns(cfg.rules)), *input_columns(steps), *features):
        needed.setdefault(c, None)
    return needed


def _feature_types(model: ResolvedModel, passthrough: Sequence[str]) -> dict[str, T.DataType | None]:
    """What scoring needs after preprocessing: the features with the signature's types, and the
    pass-through columns (a ``select`` or ``rename`` step must keep them)."""
    declared = {f.name: f.dataType for f in model.inputs.fields}
    return {c: declared.get(c) for c in model.features} | {c: None for c in passthrough if c not in model.features}


def _scored_columns(cfg: JobConfig) -> list[str]:
    return list(dict.fromkeys([*cfg.keys, *cfg.output.passthrough, *cfg.input.partition_by]))


def _replace_partition(
    df: DataFrame, path: str, engine: str, cfg: JobConfig, spec: dict[str, Any], record: RunRecord, metadata: dict[str, str]
) -> WriteResult:
    """One transaction that replaces partition ``spec`` of ``path`` with ``df`` (which may be empty).

    The Delta app transaction (job, run and partition) makes a retried commit of the same run a
    no-op, while any other run still replaces the partition. The run id, not a clock, tells runs
    apart: a run started on a host whose clock is behind must not be skipped as already done.
    """
    txn = (f"lakescore/{cfg.name}/{record.run_id}/{partition_label(spec)}", 0)
    return write_table(
        df,
        path,
        engine,
        mode="overwrite",
        partition_by=cfg.input.partition_by,
        replace_partitions=[spec],
        commit_metadata=metadata,
        app_transaction=txn,
    )


def score_partition(
    spark: SparkSession,
    cfg: JobConfig,
    engine: str,
    model: ResolvedModel,
    model_location: str,
    plan: Plan,
    spec: dict[str, Any],
    input_version: int,
    record: RunRecord,
    scored_at: dt.datetime,
    earlier: Sequence[dict[str, Any]] = (),
) -> tuple[PartitionResult, list[dict[str, Any]]]:
    """Score one input partition; returns its counts and its statistics rows.

    The statistics, drift and quality gate come before the scored write: a partition that fails
    the gate (mode fail) raises :class:`GateFailed` and its scores are not published (its
    quarantined rows are: they say why). ``earlier``: this run's statistics rows so far.
    """
    label = partition_label(spec)
    timings = record.timings
    raw = read_table(spark, cfg.input.path, engine, [spec], input_version, cfg.scoring.batch_size)
    input_casts = check_contract(raw.schema, _required_columns(cfg, model, plan.steps), cfg.input.path)
    prepare = pipeline(plan.steps, plan.fitted)
    passthrough = _scored_columns(cfg)
    # Feature types are a contract on what the model receives, so they are checked after preprocessing;
    # Spark analyses the plan here, so a step that cannot run fails before any row is read.
    prepared_schema = raw.transform(conform(input_casts)).transform(prepare).schema
    feature_casts = check_contract(prepared_schema, _feature_types(model, passthrough), f"{cfg.input.path} (after preprocessing)")

    checked = raw.transform(validate(cfg.rules)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with _timed(timings, "quarantine_write", f"partition {label}: validating and writing quarantined rows"):
            reasons = F.col(REASONS)
            if not plan.reasons_with_code:
                reasons = F.transform(reasons, lambda r: F.struct(r["rule"].alias("rule"), r["column"].alias("column"), r["message"].alias("message")))
            quarantined = checked.where(is_quarantined()).select(  # the quarantine table's contract: the rows as they came
                *raw.columns, reasons.alias(REASONS), F.lit(record.run_id).alias("run_id"), F.lit(scored_at).alias("quarantined_at")
            )
            _replace_partition(quarantined, cfg.output.quarantine, engine, cfg, spec, record, {"lakescore.run_id": record.run_id})

        good = checked.where(~is_quarantined()).drop(REASONS)
        # the binned features ride along in the cached frame, so one aggregation profiles what the model saw and said
        binned = [f for f in plan.feature_bins if f in model.features and f not in passthrough]
        model_view = (
            good.transform(conform(input_casts))
            .transform(prepare)
            .transform(conform(feature_casts))
            .transform(score(model_location, model.features, model.outputs, [*passthrough, *binned]))
            .select(  # the scored table's contract: keys and pass-through, outputs, lineage, partition columns
                *[c for c in passthrough if c not in cfg.input.partition_by],
                *model.outputs.fieldNames(),
                F.lit(model.name).alias("model_name"),
                F.lit(model.version).cast("string").alias("model_version"),
                F.lit(record.run_id).alias("run_id"),
                F.lit(scored_at).alias("scored_at"),
                *cfg.input.partition_by,
                *binned,
            )
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        scored = model_view.drop(*binned)
        try:
            before = timings.get("score", 0.0)
            with _timed(timings, "score", f"partition {label}: scoring with {model.uri} and profiling"):
                stats_rows = _profile(cfg, model, plan, checked, model_view, [f for f in model.features if f in raw.columns])
            stats_rows, checks = _quality(spark, cfg, engine, model, plan, spec, stats_rows, earlier, timings.get("score", 0.0) - before)
            for row in stats_rows:
                row.update(run_id=record.run_id, job=cfg.name, partition=label, computed_at=scored_at, **spec)
            if cfg.gate.mode == "fail" and any(c.outcome == "fail" for c in checks):
                raise GateFailed(_partition_result(label, stats_rows), stats_rows, checks)
            with _timed(timings, "score_write", f"partition {label}: writing the scores"):
                # what jobs.selection reads back to know this partition is done (resume, --since-last-run)
                metadata = {
                    "lakescore.run_id": record.run_id,
                    "lakescore.model": model.uri,
                    "lakescore.partition": label,
                    "lakescore.model_version": str(model.version),
                    "lakescore.config_hash": cfg.config_hash,
                    "lakescore.input_version": str(input_version),
                }
                result = _replace_partition(scored, cfg.output.scored, engine, cfg, spec, record, metadata)
                record.scored_version = result.version
        finally:
            model_view.unpersist()
    finally:
        checked.unpersist()

    result = _partition_result(label, stats_rows)
    if result.rows_in != result.rows_scored + result.rows_quarantined:
        raise RuntimeError(
            f"partition {label}: rows in ({result.rows_in}) != scored ({result.rows_scored}) + "
            f"quarantined ({result.rows_quarantined}); refusing to report success"
        )
    log.info(
        "partition %s: %d rows in, %d scored, %d quarantined", label, result.rows_in, result.rows_scored, result.rows_quarantined
    )
    return result, stats_rows


def _profile(
    cfg: JobConfig, model: ResolvedModel, plan: Plan, checked: DataFrame, model_view: DataFrame, profiled: Sequence[str]
) -> list[dict[str, Any]]:
    """The partition's statistics: three queries over the two cached frames (the first to touch
    ``model_view`` scores it). ``profiled``: the features the raw input has (derived ones appear
    only after preprocessing)."""
    group = list(cfg.input.partition_by)
    categorical = [f for f in profiled if not isinstance(checked.schema[f].dataType, T.NumericType)]
    known = {c: b.categories for c, b in plan.feature_bins.items() if b.categories and c in categorical}
    profile = (
        checked.transform(input_profile(profiled, [r.name for r in cfg.rules], group))
        .unionByName(checked.transform(category_profile(categorical, group, cfg.stats.top_k, known)))
        .unionByName(model_view.transform(prediction_profile(model.outputs, group, plan.feature_bins, plan.prediction_bins)))
    )
    # The aggregates are a few rows per feature and metric: small enough for the driver.
    return [r.asDict() for r in profile.collect()]


def _quality(
    spark: SparkSession,
    cfg: JobConfig,
    engine: str,
    model: ResolvedModel,
    plan: Plan,
    spec: dict[str, Any],
    rows: list[dict[str, Any]],
    earlier: Sequence[dict[str, Any]],
    score_seconds: float,
) -> tuple[list[dict[str, Any]], list[Check]]:
    """``rows`` plus the scoring speed, drift (baseline and against the previous partition) and the gate checks."""
    def row(scope: str, column: str, metric: str, value: float | None, bucket: str | None = None) -> dict[str, Any]:
        return {"scope": scope, "column": column, "metric": metric, "bucket": bucket, "value": value}

    scored = next((r["value"] for r in rows if (r["scope"], r["column"], r["metric"]) == ("rows", "*", "rows_scored")), 0)
    rows = [*rows, row("timing", "*", "score_seconds", score_seconds), row("timing", "*", "rows_per_second", scored / score_seconds if score_seconds > 0 else None)]
    before, before_rows = previous_partition(spark, cfg.output.stats, engine, cfg.name, cfg.input.partition_by, spec, earlier)
    if before is None:
        log.info("partition %s: no earlier partition has statistics; no consecutive drift", partition_label(spec))
    rows += drift_rows(rows, plan.feature_bins, plan.prediction_bins, before_rows, before)
    outputs = [f.name for f in model.outputs.fields]
    checks = check_gate(cfg.gate, rows, [f for f in model.features if any(r["column"] == f for r in rows)], outputs, cfg.source)
    for c in checks:
        if c.outcome == "fail":
            log.warning("partition %s: gate check %s(%s) failed: %s against a limit of %g", partition_label(spec), c.name, c.column, c.observed, c.limit)
    return rows + [c.row() for c in checks], checks


def _partition_result(label: str, stats_rows: Sequence[dict[str, Any]]) -> PartitionResult:
    counts = {r["metric"]: int(r["value"]) for r in stats_rows if r["scope"] == "rows" and r["column"] == "*"}
    return PartitionResult(label, counts.get("rows_in", 0), counts.get("rows_scored", 0), counts.get("rows_quarantined", 0))


def _drift_reference(
    spark: SparkSession, cfg: JobConfig, engine: str, model: ResolvedModel, plan: Plan, input_schema: T.StructType, version: int | None
) -> dict[str, Any] | None:
    """What baseline drift compares with: the model's training reference, else the input partition
    named by ``drift.reference.partition`` (same snapshot), profiled as the model would see it: the
    rows that pass the rules, after preprocessing. None: no baseline drift (consecutive still runs)."""
    configured = cfg.drift.reference_partition
    if model.reference is not None:
        if configured:
            log.warning("drift.reference.partition %s is not used: model %s carries its training reference", configured, model.uri)
        return model.reference
    if not configured:
        log.info("model %s has no training reference and drift.reference is not set: no baseline drift", model.uri)
        return None
    spec = parse_partition(configured, input_schema, cfg.input.partition_by)
    raw = read_table(spark, cfg.input.path, engine, [spec], version)
    casts = check_contract(raw.schema, _required_columns(cfg, model, plan.steps), cfg.input.path)
    prepared = (
        raw.transform(validate(cfg.rules)).where(~is_quarantined()).drop(REASONS)
        .transform(conform(casts))
        .transform(pipeline(plan.steps, plan.fitted))
    )
    reference = profile(prepared, [f for f in model.features if f in prepared.columns])
    if not reference["rows"]:
        raise ContractError(f"{cfg.source}: drift.reference.partition: {configured} of {cfg.input.path} has no rows that pass the rules")
    log.info("baseline drift against %s of %s (%d rows): model %s carries no training reference", configured, cfg.input.path, reference["rows"], model.uri)
    return reference


def _report(cfg: JobConfig, record: RunRecord, rows: list[dict[str, Any]], plan: Plan, model: ResolvedModel) -> str | None:
    """Write the run's HTML report and log it to MLflow; a failure here is logged, not fatal (the
    scores, stats and ledger row are what the run is for)."""
    path = report_path(cfg, record)
    try:
        text = render(cfg, record, rows, plan.feature_bins, plan.prediction_bins, model.features)
        write_report(path, text)
    except Exception:
        log.exception("could not write the run report %s", path)
        return None
    try:
        mlflow_run = log_to_mlflow(cfg, record, rows, path, text)
        log.info("report logged to MLflow experiment lakescore-%s, run %s", cfg.name, mlflow_run)
    except Exception as exc:
        log.warning("could not log the run to MLflow (experiment lakescore-%s): %s", cfg.name, exc)
    return path


STATS_SCHEMA_TAIL = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("partition", T.StringType(), False),
        T.StructField("scope", T.StringType(), False),
        T.StructField("column", T.StringType(), False),
        T.StructField("metric", T.StringType(), False),
        T.StructField("bucket", T.StringType(), True),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("computed_at", T.TimestampType(), False),
    ]
)


def _write_stats(spark: SparkSession, cfg: JobConfig, engine: str, rows: list[dict[str, Any]], input_schema: T.StructType, run_id: str) -> None:
    schema = T.StructType(list(STATS_SCHEMA_TAIL.fields) + [input_schema[c] for c in cfg.input.partition_by])
    df = spark.createDataFrame([tuple(r.get(f.name) for f in schema.fields) for r in rows], schema)
    write_table(df, cfg.output.stats, engine, mode="append", partition_by=cfg.input.partition_by, commit_metadata={"lakescore.run_id": run_id})


def _reasons_with_code(cfg: JobConfig, engine: str) -> bool:
    """Whether quarantine reasons carry ``code``: a table created before the field existed keeps its
    schema (the engines do not evolve schemas), so its rows are written without it."""
    if not table_exists(cfg.output.quarantine, engine):
        return True
    schema = table_schema(cfg.output.quarantine, engine=engine)
    reasons = schema[REASONS].dataType if REASONS in schema.fieldNames() else None
    if isinstance(reasons, T.ArrayType) and isinstance(reasons.elementType, T.StructType) and "code" not in reasons.elementType.fieldNames():
        log.warning("quarantine table %s predates the reasons' code field; writing reasons without it (recreate the table to get it)", cfg.output.quarantine)
        return False
    return True


def _ship_model(spark: SparkSession, model: ResolvedModel) -> str:
    """Send the model's files to every executor once; workers load it by this name.

    As a zip through ``addArchive``: ``addFile`` refuses a local directory off local mode, and
    the executors unpack an archive once, where ``SparkFiles.get(name)`` finds it.
    """
    if spark.sparkContext.master.startswith("local"):
        return model.local_path  # same filesystem: load it in place
    import shutil
    import tempfile

    name = f"lakescore-model-{uuid.uuid4().hex[:12]}"  # unique: a session may ship several models
    archive = shutil.make_archive(f"{tempfile.mkdtemp(prefix='lakescore-ship-')}/{name}", "zip", model.local_path)
    spark.sparkContext.addArchive(archive)
    return f"{name}.zip"


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
    engine = "embedded"
    try:
        engine = record.engine = resolve_engine(spark, cfg.engine)
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.scoring.batch_size))
        if not table_exists(cfg.input.path, engine):
            raise ContractError(f"input table {cfg.input.path} does not exist or is not a Delta table")
        record.input_version = table_version(cfg.input.path, engine) if input_version is None else input_version
        input_schema = table_schema(cfg.input.path, record.input_version, engine)
        # oldest first, whatever order they were named in: consecutive drift compares with the one before
        specs = sorted((parse_partition(p, input_schema, cfg.input.partition_by) for p in partitions), key=lambda s: tuple(s.values()))
        record.partitions = [partition_label(s) for s in specs]
        log.info("job %s: engine=%s input=%s@v%s partitions=%s", cfg.name, engine, cfg.input.path, record.input_version, record.partitions)

        with _timed(record.timings, "resolve_model", f"resolving model {cfg.model.uri}"):
            model = resolve_model(cfg.model)
        record.model_resolved_uri, record.model_name, record.model_version = model.uri, model.name, model.version
        steps = choose_pipeline(cfg, model)
        plan = Plan(steps, fitted_values(steps, model.reference, f"model {model.uri} lakescore/reference.json"), _reasons_with_code(cfg, engine))
        feature_bins, prediction_bins = reference_bins(_drift_reference(spark, cfg, engine, model, plan, input_schema, record.input_version))
        # a floating output the reference did not profile is counted in ten bins over [0, 1]: drift against the previous partition
        fixed = {f.name: fixed_bins(f.name) for f in model.outputs.fields if isinstance(f.dataType, (T.DoubleType, T.FloatType))}
        plan = replace(plan, feature_bins=feature_bins, prediction_bins=fixed | prediction_bins)
        failed_gate: list[GateFailed] = []
        location = _ship_model(spark, model)
        scored_at = dt.datetime.now(dt.UTC)
        for spec in specs:
            try:
                part, stats_rows = score_partition(spark, cfg, engine, model, location, plan, spec, record.input_version, record, scored_at, result.stats_rows)
            except GateFailed as exc:  # the other partitions are still scored: each is its own unit
                log.error("%s; not published", exc)
                failed_gate.append(exc)
                part, stats_rows = exc.partition, exc.stats_rows
            result.partitions.append(part)
            result.stats_rows.extend(stats_rows)
        with _timed(record.timings, "stats_write", "writing statistics"):
            _write_stats(spark, cfg, engine, result.stats_rows, input_schema, run_id)
        record.rows_in = sum(p.rows_in for p in result.partitions)
        record.rows_scored = sum(p.rows_scored for p in result.partitions)
        record.rows_quarantined = sum(p.rows_quarantined for p in result.partitions)
        record.status, record.exit_code = "succeeded", EXIT_OK
        if failed_gate:
            record.status, record.exit_code = "gate_failed", EXIT_GATE
            record.error = "; ".join(str(e) for e in failed_gate)[:2000]
        elif any(r["scope"] == "gate" and r["bucket"] == "fail" for r in result.stats_rows):
            log.warning("quality gate breached (gate.mode: warn): published anyway; see the gate rows of run %s", run_id)
        result.report = record.report = _report(cfg, record, result.stats_rows, plan, model)
    except USAGE_ERRORS as exc:
        record.status, record.exit_code, record.error = "rejected", EXIT_USAGE, str(exc)
        log.error("%s", exc)
    except Exception as exc:  # the scheduler needs an exit code and the ledger a row, whatever broke
        record.status, record.exit_code, record.error = "failed", EXIT_FAILED, describe_error(exc)
        log.exception("run failed")
    finally:
        record.finished_at = dt.datetime.now(dt.UTC)
        record.timings["total"] = round((record.finished_at - started).total_seconds(), 3)
        try:
            append_run(spark, record, cfg.output.runs, engine)
        except Exception:
            log.exception("could not append to the runs ledger %s", cfg.output.runs)
            if record.exit_code == EXIT_OK:
                record.status, record.exit_code = "failed", EXIT_FAILED
        if result.report:
            log.info("run %s %s (exit %d); report %s", run_id, record.status, record.exit_code, result.report)
    return result
