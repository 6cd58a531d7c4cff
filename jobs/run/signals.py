"""The retraining signal of an evaluation run (issue 15): the judged version's final partitions
(the evaluation table) and drift (the stats table, the partitions it scored) against the rule
(``evaluation.degradation``), its validation baseline (the trainer's ``validation.<metric>`` in
the version's MLflow run), each signal appended once to the signals table and tagged on the
version in the registry. The job then exits 4.

The version judged is the champion that scored the newest partition of the run: the one serving
now. Older versions' partitions do not raise a signal for it, and its own keep raising the same
signal (exit 4, no new row) until it is retrained and replaced.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import JobConfig
from jobs.model.resolve import bounded_registry
from jobs.model.training import validation_metrics
from jobs.quality.degradation import Observation, Signal, drift_signals, performance_signals
from jobs.quality.evaluation import CHAMPION, EVALUATION, FINAL
from jobs.tables import read_table, table_exists, write_table

log = logging.getLogger("lakescore.evaluate")
TAG_RETRAINING, TAG_SIGNAL = "lakescore.retraining", "lakescore.signal"
DRIFT_SCOPE = "drift_baseline"

SIGNALS_SCHEMA = T.StructType(
    [
        T.StructField("signal_id", T.StringType(), False),  # a hash of the evidence: raised once
        T.StructField("job", T.StringType(), False),
        T.StructField("model_name", T.StringType(), True),
        T.StructField("model_version", T.StringType(), True),
        T.StructField("kind", T.StringType(), False),  # performance or drift
        T.StructField("column", T.StringType(), False),  # the score column, or the drifting feature
        T.StructField("metric", T.StringType(), False),
        T.StructField("observed", T.DoubleType(), True),  # on the newest partition that broke the rule
        T.StructField("lower", T.DoubleType(), True),
        T.StructField("upper", T.DoubleType(), True),
        T.StructField("baseline", T.DoubleType(), True),  # the version's validation value (performance)
        T.StructField("limit", T.DoubleType(), False),  # max_drop, or drift_psi
        T.StructField("k", T.IntegerType(), False),
        T.StructField("n", T.IntegerType(), False),
        T.StructField("partitions", T.ArrayType(T.StringType()), False),  # those that broke the rule
        T.StructField("window", T.ArrayType(T.StringType()), False),  # the last n judged
        T.StructField("label_coverage", T.DoubleType(), True),
        T.StructField("description", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),  # the evaluation run that raised it
        T.StructField("created_at", T.TimestampType(), False),
    ]
)


@dataclass(frozen=True)
class Raised:
    """A signal of this run; ``new``: it was appended now (else the table had it from an earlier run)."""

    signal: Signal
    new: bool


def _registry(cfg: JobConfig):
    from mlflow import MlflowClient
    from mlflow.environment_variables import MLFLOW_TRACKING_URI

    uri = cfg.model.tracking_uri or MLFLOW_TRACKING_URI.get()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def baselines(cfg: JobConfig, name: str, version: str) -> dict[str, float]:
    """The version's validation metrics (``validation.<metric>`` of the MLflow run that logged it,
    :func:`jobs.model.training.validation_metrics`); empty when the trainer logged none (then no
    performance signal is raised for it)."""
    client = _registry(cfg)
    with bounded_registry(dataclasses.replace(cfg.model, uri=f"models:/{name}/{version}")):
        run_id = client.get_model_version(name, version).run_id
        logged = validation_metrics(client, run_id) if run_id else {}
    return {metric: value for metric, (value, _, _) in logged.items()}


def _sorted_observations(rows: Sequence[Mapping[str, Any]], by: str, columns: Sequence[str]) -> dict[str, list[Observation]]:
    """``by`` -> observations oldest first, from long rows (bucket null / lower / upper)."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        cell = cells.setdefault((r[by], r["partition"]), {"order": tuple(r[c] for c in columns)})
        cell[r["bucket"] or "value"] = r["value"]
        cell["label_coverage"] = r.get("label_coverage")
    out: dict[str, list[tuple[tuple, Observation]]] = {}
    for (key, partition), c in cells.items():
        o = Observation(partition, c.get("value"), c.get("lower"), c.get("upper"), c.get("label_coverage"))
        out.setdefault(key, []).append((c["order"], o))
    return {
        key: [o for _, o in sorted(pairs, key=lambda p: tuple((v is not None, v) for v in p[0]))] for key, pairs in out.items()
    }


def final_observations(spark: SparkSession, cfg: JobConfig, engine: str, name: str, version: str) -> dict[str, list[Observation]]:
    """metric -> the version's final partitions (the evaluation table), oldest first."""
    e = cfg.evaluation
    metrics = [m for m, _ in e.degradation.max_drop]
    rows = (
        read_table(spark, cast(str, e.output), engine)
        .where(
            (F.col("role") == CHAMPION)
            & (F.col("model_name") == name)
            & (F.col("model_version") == version)
            & (F.col("scope") == EVALUATION)
            & (F.col("column") == e.output_column)
            & F.col("metric").isin(metrics)
            & (F.col("bucket").isNull() | F.col("bucket").isin("lower", "upper"))
            & (F.col("maturity") == FINAL)
        )
        .select("partition", *e.partition_by, "metric", "bucket", "value", "label_coverage")
        .collect()  # a few rows per partition: the metrics, not the data
    )
    return _sorted_observations([r.asDict() for r in rows], "metric", e.partition_by)


def drift_observations(spark: SparkSession, cfg: JobConfig, engine: str, name: str, version: str) -> dict[str, list[Observation]]:
    """column -> its PSI against the training reference on each partition the version published
    (the stats table's rows of the runs the ledger says scored with it), oldest first."""
    runs = (
        read_table(spark, cfg.output.runs, engine)
        .where((F.col("model_name") == name) & (F.col("model_version") == version))
        .select("run_id")
        .distinct()
    )
    stats = read_table(spark, cfg.output.stats, engine).where(
        (F.col("scope") == DRIFT_SCOPE) & (F.col("metric") == "psi") & F.col("bucket").isNull() & F.col("model_version").isNull()
    )
    partition_by = cfg.input.partition_by
    rows = stats.join(runs, "run_id").select("partition", *partition_by, "column", "bucket", "value").collect()
    return _sorted_observations([r.asDict() for r in rows], "column", partition_by)


def _known(spark: SparkSession, path: str, engine: str, ids: Sequence[str]) -> set[str]:
    if not ids or not table_exists(path, engine):
        return set()
    rows = read_table(spark, path, engine).where(F.col("signal_id").isin(list(ids))).select("signal_id").distinct().collect()
    return {r["signal_id"] for r in rows}


def record_signals(
    spark: SparkSession, path: str, engine: str, signals: Sequence[Signal], run_id: str, created_at: dt.datetime
) -> list[Raised]:
    """Append the signals the table does not hold yet (by ``signal_id``), in one commit."""
    known = _known(spark, path, engine, [s.signal_id for s in signals])
    fresh = [s for s in signals if s.signal_id not in known]
    if fresh:
        values = [{**s.record(), "description": s.describe(), "run_id": run_id, "created_at": created_at} for s in fresh]
        rows = [tuple(v.get(f.name) for f in SIGNALS_SCHEMA.fields) for v in values]
        df = spark.createDataFrame(rows, SIGNALS_SCHEMA).coalesce(1)
        write_table(df, path, engine, mode="append", commit_metadata={"lakescore.run_id": run_id})
    return [Raised(s, s.signal_id not in known) for s in signals]


def tag_version(cfg: JobConfig, raised: Sequence[Raised]) -> None:
    """Tag the version in the registry: ``lakescore.retraining=recommended`` and what the newest
    signals say (``lakescore.signal``), so the registry's UI and API show it too."""
    first = raised[0].signal
    name, version = cast(str, first.model_name), cast(str, first.model_version)
    said = json.dumps([{"signal_id": r.signal.signal_id, "kind": r.signal.kind, "why": r.signal.describe()} for r in raised])
    client = _registry(cfg)
    with bounded_registry(dataclasses.replace(cfg.model, uri=f"models:/{name}/{version}")):
        client.set_model_version_tag(name, version, TAG_RETRAINING, "recommended")
        client.set_model_version_tag(name, version, TAG_SIGNAL, said[:5000])


def judge(
    spark: SparkSession, cfg: JobConfig, engine: str, model: tuple[str, str], run_id: str, created_at: dt.datetime
) -> list[Raised]:
    """The signals of ``model`` (name, version) by the rule; recorded and tagged when there are any."""
    e = cfg.evaluation
    rule, name, version = e.degradation, *model
    signals: list[Signal] = []
    if rule.max_drop:
        base = baselines(cfg, name, version)
        missing = sorted({m for m, _ in rule.max_drop} - set(base))
        if missing:
            log.warning(
                "model %s version %s: its run logged no validation metric %s: those are not judged",
                name,
                version,
                ", ".join(missing),
            )
        final = final_observations(spark, cfg, engine, name, version)
        signals += performance_signals(cfg.name, model, e.output_column, final, base, rule)
    if rule.drift_psi is not None:
        signals += drift_signals(cfg.name, model, drift_observations(spark, cfg, engine, name, version), rule)
    if not signals:
        log.info("model %s version %s: no degradation (rule: %d of the last %d partitions)", name, version, rule.k, rule.n)
        return []
    raised = record_signals(spark, cast(str, e.signals), engine, signals, run_id, created_at)
    tag_version(cfg, raised)
    for r in raised:
        log.warning(
            "model %s version %s degraded: %s (signal %s%s)",
            name,
            version,
            r.signal.describe(),
            r.signal.signal_id,
            "" if r.new else ", already raised",
        )
    return raised
