"""Window roll-ups (issue 15 point 4, ``--window 7d``): the metrics of a window of partitions from the
evaluation table's sufficient statistics summed, without reading a scored row again, written to the
windows table (``evaluation.windows``), a window's rows replaced when it is rolled up again."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import JobConfig
from jobs.quality.evaluation import CHALLENGER, EVALUATION, FINAL, MODEL, PAIRED, PROVISIONAL, TABLE, partition_date
from jobs.quality.metrics import MetricValue, Row, is_regression, merge_statistics, metric_rows, model_metrics, paired_metrics
from jobs.run.partition_spec import partition_label, partition_sort_key
from jobs.tables import read_table, table_exists, write_table
from transforms.evaluation import BOOT, CONSTANTS, STATISTICS

KEY = (*MODEL, "scope", "column", "metric", "bucket")
PARTITION_BY = ("window_size", "window_end")
WINDOW_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("window_start", T.DateType(), False),  # the first day in it (inclusive)
        T.StructField("partitions", T.LongType(), False),  # the version's partitions in the window
        T.StructField("model_version", T.StringType(), True),
        T.StructField("model_name", T.StringType(), True),
        T.StructField("role", T.StringType(), False),
        T.StructField("scope", T.StringType(), False),
        T.StructField("column", T.StringType(), False),
        T.StructField("metric", T.StringType(), False),
        T.StructField("bucket", T.StringType(), True),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("maturity", T.StringType(), False),  # final when every partition in it is
        T.StructField("label_coverage", T.DoubleType(), True),
        T.StructField("computed_at", T.TimestampType(), False),
        T.StructField("window_size", T.StringType(), False),  # "7d" (not "window": a reserved word in DuckDB's SQL)
        T.StructField("window_end", T.DateType(), False),  # the last day in it (inclusive)
    ]
)
_WINDOW = re.compile(r"(\d+)d")
_LOW, _HIGH, _FINAL = "_window_low", "_window_high", "_window_final"


class WindowError(ValueError):
    """A window that cannot be rolled up: a bad ``--window``, no evaluated partition in it."""


def parse_window(text: str, option: str = "--window") -> int:
    """``"7d"`` -> 7: a window is a whole number of days, at least one."""
    match = _WINDOW.fullmatch(text.strip())
    if not match or int(match.group(1)) < 1:
        raise WindowError(f"{option} {text!r}: a window is a number of days, at least 1, such as 7d")
    return int(match.group(1))


@dataclass
class WindowModel:
    """One model version's metrics over a window: how many of its partitions were in it, its maturity
    (final when every one of them is) and label coverage, the paired comparison for a challenger."""

    role: str
    model_name: str | None
    model_version: str | None
    partitions: int
    maturity: str
    coverage: float | None
    metrics: list[MetricValue]
    paired: list[MetricValue] = field(default_factory=list)

    def metric(self, name: str) -> MetricValue | None:
        return next((m for m in (*self.metrics, *self.paired) if m.name == name), None)


@dataclass
class WindowResult:
    """A window rolled up: its days (inclusive), the versions' metrics, the table version written."""

    window: str
    start: dt.date
    end: dt.date
    partitions: list[str]  # the evaluation table's partitions in it
    models: list[WindowModel]
    version: int | None = None


def _statistic(metric: F.Column) -> F.Column:
    return metric.isin(*STATISTICS, *CONSTANTS) | metric.startswith(BOOT)


def window_statistics(rows: DataFrame) -> list[Row]:
    """The evaluation table's counts and statistics rows of a window summed per model version, scope,
    column, metric and bucket in one aggregation (a constant taken once), collected; each with how
    many partitions of its version and scope the window holds (``partitions``) and whether all of
    them are final (``maturity``).

    Raises:
        ValueError: partitions disagree on a constant (bins, ε, R): their statistics do not add.
    """
    wanted = rows.where((F.col("column") == TABLE) | _statistic(F.col("metric"))).persist()
    try:
        constant = F.col("metric").isin(*CONSTANTS)
        summed = wanted.groupBy(*KEY).agg(F.sum("value").alias("value"), F.min("value").alias(_LOW), F.max("value").alias(_HIGH))
        out = summed.select(*KEY, F.when(constant, F.col(_LOW)).otherwise(F.col("value")).alias("value"), _LOW, _HIGH)
        collected = [r.asDict() for r in out.collect()]
        scopes = wanted.groupBy(*MODEL, "scope").agg(
            F.countDistinct("partition").alias("partitions"),
            F.min(F.when(F.col("maturity") == FINAL, 1).otherwise(0)).alias(_FINAL),
        )
        state = {
            (*_model(r), r["scope"]): (r["partitions"], FINAL if r[_FINAL] else PROVISIONAL)
            for r in (x.asDict() for x in scopes.collect())
        }
    finally:
        wanted.unpersist()
    for r in collected:
        if r["metric"] in CONSTANTS and r[_LOW] != r[_HIGH]:
            raise ValueError(
                f"{r['role']} {r['model_name']} version {r['model_version']}, {r['scope']} {r['column']}: "
                f"{r['metric']} is {r[_LOW]} in one partition and {r[_HIGH]} in another; their statistics cannot be summed"
            )
        r["partitions"], r["maturity"] = state[(*_model(r), r["scope"])]
    return collected


def _model(row: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    return (row["role"], row["model_name"], row["model_version"])


def window_models(summed: Sequence[Mapping[str, Any]], column: str) -> tuple[list[WindowModel], list[Row]]:
    """Each version's metrics from its summed statistics (champion first), and the long rows to write:
    the summed counts, the statistics without buckets (n, tp, ..., the constants), the metrics."""
    by_model: dict[tuple[str, str | None, str | None], list[Mapping[str, Any]]] = {}
    for r in summed:
        by_model.setdefault(_model(r), []).append(r)
    models, out = [], []
    for model in sorted(by_model, key=lambda m: (m[0] != "champion", str(m[1]), str(m[2]))):
        mine = by_model[model]
        own = merge_statistics(mine, column, EVALUATION)
        metrics = model_metrics(own)
        paired = (
            paired_metrics(merge_statistics(mine, column, PAIRED)) if model[0] == CHALLENGER and not is_regression(own) else []
        )
        coverage = next(m.value for m in metrics if m.name == "label_coverage")
        scopes = {EVALUATION: (0, PROVISIONAL), PAIRED: (0, PROVISIONAL)} | {
            r["scope"]: (r["partitions"], r["maturity"]) for r in mine
        }
        parts, state = scopes[EVALUATION]
        models.append(WindowModel(*model, parts, state, coverage, metrics, paired))
        kept: list[Row] = [
            {k: r[k] for k in ("scope", "column", "metric", "bucket", "value")}
            for r in mine
            if r["column"] == TABLE or (r["bucket"] is None and not r["metric"].startswith(BOOT))
        ]
        kept += metric_rows(metrics, column, EVALUATION) + metric_rows(paired, column, PAIRED)
        names = dict(zip(MODEL, model, strict=True))
        for r in kept:
            n, maturity = scopes[r["scope"]]
            out.append({**r, **names, "partitions": n, "maturity": maturity, "label_coverage": coverage})
    return models, out


def _in_window(spark: SparkSession, path: str, engine: str, columns: Sequence[str], start: dt.date, end: dt.date):
    """The evaluation table's partitions (typed specs) whose day lies in [start, end]."""
    specs = [r.asDict() for r in read_table(spark, path, engine).select(*columns).distinct().collect()]
    return [s for s in specs if (day := partition_date(s)) is not None and start <= day <= end]


def roll_up(
    spark: SparkSession, cfg: JobConfig, engine: str, days: int, end: dt.date, run_id: str, computed_at: dt.datetime
) -> WindowResult:
    """Roll up the ``days`` days ending at ``end`` (the partitions whose day is in (end - days, end])
    from the evaluation table and replace that window's rows of the windows table with the result.

    Raises:
        WindowError: no evaluation table, or no evaluated partition in the window.
        ValueError: the partitions' statistics disagree on a constant (nothing written).
    """
    e = cfg.evaluation
    source, target = cast(str, e.output), cast(str, e.windows)
    start, name = end - dt.timedelta(days=days - 1), f"{days}d"
    if not table_exists(source, engine):
        raise WindowError(f"window {name}: the evaluation table {source} does not exist: evaluate a partition first")
    specs = _in_window(spark, source, engine, e.partition_by, start, end)
    if not specs:
        raise WindowError(f"window {name}: no evaluated partition from {start} to {end} in {source}")
    rows = read_table(spark, source, engine, specs)
    models, out = window_models(window_statistics(rows), e.output_column)
    common = {"run_id": run_id, "job": cfg.name, "window_size": name, "window_start": start, "window_end": end}
    values = [tuple({**r, **common, "computed_at": computed_at}.get(f.name) for f in WINDOW_SCHEMA.fields) for r in out]
    written = write_table(
        spark.createDataFrame(values, WINDOW_SCHEMA).repartition(1),
        target,
        engine,
        mode="overwrite",
        partition_by=PARTITION_BY,
        replace_partitions=[{"window_size": name, "window_end": end}],
        commit_metadata={"lakescore.run_id": run_id, "lakescore.window": f"{name} to {end}"},
    )
    labels = [partition_label(s) for s in sorted(specs, key=partition_sort_key)]
    return WindowResult(name, start, end, labels, models, written.version)
