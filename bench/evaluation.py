"""What evaluating labelled rows costs (issue 15 point 12): the evaluation job's join and statistics
against a bare ``join + groupBy`` of the same rows, in one run on the same Parquet files.

* ``bare join + groupBy``: the model rows left-joined to the labels on the key, then one
  aggregation by version and score bin (1000 bins) of the confusion counts and the per-class
  histogram: what any evaluation must at least do;
* ``lakescore``: what ``jobs/run/evaluation.py::evaluate_partition`` runs (``model_rows``, then
  ``jobs.quality.evaluation.joined_statistics`` with the default settings: 1000 bins, 50 bootstrap
  replicates over 1000 key buckets), then the metrics in Python;
* ``lakescore, no replicates``: the same with ``replicates=0``, to show what the bootstrap costs.

Each case runs with the champion alone and with one challenger (a shadow table of the same keys).
Besides wall and CPU seconds (JVM and Python workers, bench/measure.py) it reports the Spark jobs,
stages (run and skipped) and tasks each ran, and its passes over the input: the rows its Parquet
scans returned, from the Spark UI's REST API (the SQL executions' ``number of output rows``), over
the input's rows; the labels table has 0.5% more rows (keys never scored) than the scores, so a
scan says which file it read. ``python -m bench.evaluation --rows 1000000``
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.measure import timed
from jobs.config import SparkConfig
from jobs.logs import setup_logging
from jobs.quality import evaluation as ev
from jobs.session import spark_session
from transforms.evaluation import Settings

BINS = 1000
UNSCORED = 0.005  # label rows whose key was never scored, as a share of the scored rows
COLUMNS = ev.Columns(("customer_id",), "churned", "probability", "label")


def write_inputs(spark: SparkSession, rows: int, home: str) -> dict[str, str]:
    """Scores (champion), shadow scores (a challenger) and labels of one day as Parquet files; the
    label is drawn with probability = the champion's score, so the model is calibrated."""
    base = spark.range(rows).select(
        F.col("id").alias("customer_id"), F.lit("2024-06-01").cast("date").alias("ds"), F.rand(1).alias("probability")
    )
    champion = base.select("*", F.lit("churn").alias("model_name"), F.lit("1").alias("model_version"))
    shadow = base.select(
        "customer_id",
        "ds",
        F.least(F.greatest(F.col("probability") + (F.rand(2) - 0.5) / 4, F.lit(0.0)), F.lit(1.0)).alias("probability"),
        F.lit("churn_rival").alias("model_name"),
        F.lit("1").alias("model_version"),
    )
    truth = base.select("customer_id", "ds", (F.rand(3) < F.col("probability")).cast("long").alias("churned"))
    never = spark.range(rows, rows + int(rows * UNSCORED)).select(
        F.col("id").alias("customer_id"), F.lit("2024-06-01").cast("date").alias("ds"), F.lit(1).cast("long").alias("churned")
    )
    paths = {name: f"{home}/{name}" for name in ("scored", "shadow", "labels")}
    for name, df in (("scored", champion), ("shadow", shadow), ("labels", truth.unionByName(never))):
        if name != "labels":
            df = df.withColumn("label", (F.col("probability") >= 0.5).cast("long"))
        df.repartition(4).write.mode("overwrite").parquet(paths[name])
    return paths


def _models(spark: SparkSession, paths: dict[str, str], challenger: bool) -> DataFrame:
    models = ev.model_rows(spark.read.parquet(paths["scored"]), ev.CHAMPION, COLUMNS)
    if challenger:
        models = models.unionByName(ev.model_rows(spark.read.parquet(paths["shadow"]), ev.CHALLENGER, COLUMNS))
    return models


def bare(spark: SparkSession, paths: dict[str, str], challenger: bool) -> None:
    """The least an evaluation does: the join, then one aggregation of confusion counts and histogram."""
    labels = spark.read.parquet(paths["labels"])
    rows = _models(spark, paths, challenger).join(labels, on=["customer_id"], how="left")
    y, d = F.col("churned"), F.col("_lakescore_decision")
    cell = lambda cond: F.sum(F.when(cond, 1).otherwise(0))  # noqa: E731
    rows.groupBy("role", "model_version", F.least(F.floor(F.col("_lakescore_score") * BINS), F.lit(BINS - 1)).alias("bin")).agg(
        cell((y == 1) & (d == 1)).alias("tp"),
        cell((y == 0) & (d == 1)).alias("fp"),
        cell((y == 1) & (d == 0)).alias("fn"),
        cell((y == 0) & (d == 0)).alias("tn"),
        cell(y == 1).alias("pos"),
        cell(y == 0).alias("neg"),
    ).collect()


def lakescore(settings: Settings) -> Callable[[SparkSession, dict[str, str], bool], None]:
    """evaluate_partition's Spark work on the files (the partition already pruned: one day), then
    the metrics from the collected statistics."""

    def run(spark: SparkSession, paths: dict[str, str], challenger: bool) -> None:
        labels = spark.read.parquet(paths["labels"])
        counts, totals, stats = ev.joined_statistics(_models(spark, paths, challenger), labels, COLUMNS, settings)
        judgement = ev.Judgement(None, dt.date(2024, 7, 1), 30, 0.9)  # no day: judged on coverage
        ev.evaluations(counts, totals, stats, COLUMNS.score, judgement)

    return run


@dataclass
class Work:
    jobs: int
    stages: int
    skipped: int
    tasks: int
    passes: dict[str, float]


def _get(spark: SparkSession, what: str) -> list[dict]:
    app = spark.sparkContext.applicationId
    with urllib.request.urlopen(f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{app}/{what}", timeout=30) as r:
        return json.load(r)


def _number(text: str) -> int:
    return int(str(text).split(" ")[0].replace(",", ""))


def work(spark: SparkSession, group: str, sizes: dict[int, str], tables: int) -> Work:
    """What the job group ran: jobs, stages (skipped apart), tasks, and rows scanned per input (the
    score tables' over ``tables`` of them: the champion's and the shadow table are as long)."""
    jobs = [j for j in _get(spark, "jobs") if j.get("jobGroup") == group]
    ids = {j["jobId"] for j in jobs}
    scanned = dict.fromkeys(sizes.values(), 0)
    for execution in _get(spark, "sql?details=true&planDescription=false&length=100000"):
        if not ids & set(execution.get("successJobIds", [])):
            continue
        for node in execution.get("nodes", []):
            if node["nodeName"].startswith("Scan"):
                out = next((m["value"] for m in node["metrics"] if m["name"] == "number of output rows"), "0")
                n = _number(out)
                if n:
                    name = sizes.get(n, "other")
                    scanned[name] = scanned.get(name, 0) + n
    inverse = {v: k for k, v in sizes.items()}
    return Work(
        len(jobs),
        sum(j["numCompletedStages"] for j in jobs),
        sum(j["numSkippedStages"] for j in jobs),
        sum(j["numCompletedTasks"] for j in jobs),
        {name: n / inverse.get(name, 1) / (tables if name == "scored" else 1) for name, n in scanned.items()},
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.evaluation", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args(argv)
    setup_logging()
    logging.getLogger("lakescore").setLevel(logging.WARNING)
    home = tempfile.mkdtemp(prefix="lakescore-bench-evaluation-")
    conf = (("spark.driver.memory", "4g"), ("spark.ui.enabled", "true"), ("spark.driver.bindAddress", "127.0.0.1"))
    cases = (
        ("bare join + groupBy", bare),
        ("lakescore", lakescore(Settings())),
        ("lakescore, no replicates", lakescore(Settings(replicates=0))),
    )
    results: dict[tuple[str, bool], tuple[float, float | None, Work]] = {}
    try:
        with spark_session(SparkConfig(master=args.master, app_name="lakescore-bench-evaluation", conf=conf)) as spark:
            small = write_inputs(spark, 20_000, f"{home}/warm")
            paths = write_inputs(spark, args.rows, home)
            sizes = {args.rows: "scored", args.rows + int(args.rows * UNSCORED): "labels"}
            for challenger in (False, True):
                for name, fn in cases:
                    fn(spark, small, challenger)  # the JIT's and the workers' warm-up
                    best: tuple[float, float | None, Work] | None = None
                    for r in range(args.rounds):
                        group = f"{name}|{challenger}|{r}"
                        spark.sparkContext.setJobGroup(group, group)
                        wall, cpu = timed(functools.partial(fn, spark, paths, challenger))
                        if best is None or (cpu or wall) < (best[1] or best[0]):
                            best = (wall, cpu, work(spark, group, sizes, 2 if challenger else 1))
                    assert best is not None
                    results[name, challenger] = best
    finally:
        shutil.rmtree(home, ignore_errors=True)
    _print(args, results)
    return 0


def _print(args: argparse.Namespace, results: dict[tuple[str, bool], tuple[float, float | None, Work]]) -> None:
    print(f"\nevaluation benchmark: {args.rows:,} labelled rows, {args.master}, best of {args.rounds}")
    print(f"{'case':<40}{'wall s':>8}{'CPU s':>8}{'CPU ratio':>10}{'jobs':>6}{'stages':>8}{'tasks':>7}  passes (scores, labels)")
    for (name, challenger), (wall, cpu, w) in results.items():
        base = results["bare join + groupBy", challenger][1]
        ratio = f"{cpu / base:>9.2f}x" if cpu and base else f"{'':>10}"
        label = f"{name}{' + challenger' if challenger else ''}"
        stages = f"{w.stages}+{w.skipped}s"
        passes = f"{w.passes.get('scored', 0):.2f}, {w.passes.get('labels', 0):.2f}"
        print(f"{label:<40}{wall:>8.2f}{(cpu or 0):>8.2f}{ratio}{w.jobs:>6}{stages:>8}{w.tasks:>7}  {passes}")
    print(
        "(CPU ratio: against the bare join + groupBy of the same rows; stages: run + skipped (s); passes: rows the "
        "scans returned over the rows of each input, the score tables' averaged)"
    )
    for challenger in (False, True):
        (_, cpu, w), (_, base, b) = results["lakescore", challenger], results["bare join + groupBy", challenger]
        more = {k: v for k, v in w.passes.items() if v > b.passes.get(k, 0) + 1e-9}
        verdict = "PASS" if not more else "MISS (" + ", ".join(f"{k} read {v:.2f}x" for k, v in more.items()) + ")"
        who = "champion + challenger" if challenger else "champion alone"
        ratio = f"{cpu / base:.2f}x its CPU" if cpu and base else "CPU unknown"
        print(f"target (issue 15): no more passes over the input than the join + one aggregation, {who} -> {verdict}; {ratio}")


if __name__ == "__main__":
    sys.exit(main())
