"""Drift rows and the quality gate, from a partition's collected statistics rows.

Baseline drift compares a partition with the model's training reference; consecutive drift with
the partition before it, whose binned counts are read back from the stats table (the old data is
never scanned again). The gate turns the statistics into pass/fail checks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config import ALL_COLUMNS, ConfigError, GateConfig
from jobs.tables import partition_predicate, read_table, table_exists
from transforms.drift import compare
from transforms.stats import Bins

log = logging.getLogger("lakescore.quality")

Row = dict[str, Any]
BASELINE, CONSECUTIVE, GATE = "drift_baseline", "drift_consecutive", "gate"
# where a column's binned counts and mean live in the stats table: (scope, metric of the counts)
BINNED = {"model_input": "bin_count", "prediction": "histogram"}


def _binned(rows: Sequence[Row], scope: str, column: str) -> tuple[dict[str, float], float | None]:
    counts = {r["bucket"]: r["value"] for r in rows if r["scope"] == scope and r["column"] == column and r["metric"] == BINNED[scope]}
    mean = next((r["value"] for r in rows if r["scope"] == scope and r["column"] == column and r["metric"] == "mean"), None)
    return counts, mean


def _metrics(reference: Sequence[float], current: Sequence[float], ordered: bool) -> dict[str, float] | None:
    if sum(current) <= 0 or sum(reference) <= 0:
        return None  # nothing to compare: no finite value on one side
    return compare(reference, current, ordered)


def drift_rows(
    rows: Sequence[Row],
    feature_bins: Mapping[str, Bins],
    prediction_bins: Mapping[str, Bins],
    previous: Sequence[Row] = (),
    previous_label: str | None = None,
) -> list[Row]:
    """Drift of one partition: ``psi``, ``js_distance``, ``ks`` (ordered bins) and ``mean_diff``
    (current minus reference) per binned feature and prediction.

    Args:
        rows: the partition's statistics rows (from ``transforms.stats``).
        feature_bins, prediction_bins: the bins the counts were taken in; their ``reference``
            shares give baseline drift (absent for fixed prediction bins).
        previous: the statistics rows of the partition before, for consecutive drift (bucket =
            its label); only columns whose bins are the same on both sides are compared.
    """
    out: list[Row] = []

    def add(scope: str, column: str, metrics: Mapping[str, float | None], bucket: str | None) -> None:
        out.extend({"scope": scope, "column": column, "metric": m, "bucket": bucket, "value": v} for m, v in metrics.items() if v is not None)

    for scope, bins_by_column in (("model_input", feature_bins), ("prediction", prediction_bins)):
        for column, bins in bins_by_column.items():
            counts, mean = _binned(rows, scope, column)
            if not counts:
                continue
            current = [counts.get(label, 0.0) for label in bins.labels]
            if bins.reference is not None and (m := _metrics(bins.reference, current, bins.ordered)) is not None:
                diff = mean - bins.reference_mean if mean is not None and bins.reference_mean is not None else None
                add(BASELINE, column, {**m, "mean_diff": diff}, None)
            if previous:
                before, before_mean = _binned(previous, scope, column)
                if set(before) != set(bins.labels):
                    if before:
                        log.info("consecutive drift of %s skipped: %s was binned differently (another reference?)", column, previous_label)
                    continue
                if (m := _metrics([before[label] for label in bins.labels], current, bins.ordered)) is not None:
                    diff = mean - before_mean if mean is not None and before_mean is not None else None
                    add(CONSECUTIVE, column, {**m, "mean_diff": diff}, previous_label)
    # an output without bins (a label): its mean still moves
    if previous:
        binned = {c for c in prediction_bins}
        for r in rows:
            if r["scope"] == "prediction" and r["metric"] == "mean" and r["column"] not in binned and r["value"] is not None:
                before = next((p["value"] for p in previous if p["scope"] == "prediction" and p["column"] == r["column"] and p["metric"] == "mean"), None)
                if before is not None:
                    add(CONSECUTIVE, r["column"], {"mean_diff": r["value"] - before}, previous_label)
    return out


def previous_partition(
    spark: SparkSession, stats_path: str, engine: str, job: str, partition_by: Sequence[str], spec: Mapping[str, Any], this_run: Sequence[Row]
) -> tuple[str | None, list[Row]]:
    """The partition before ``spec`` (the greatest smaller one in partition-column order) that this
    job has statistics for, and its binned counts and means from the latest run that scored it.

    This run's own earlier partitions count too (their statistics are not written yet). Two small
    queries over the stats table, never over the input.
    """
    key = tuple(spec[c] for c in partition_by)
    wanted = lambda r: r["scope"] in BINNED and r["metric"] in (*BINNED.values(), "mean")  # noqa: E731
    candidates = [r for r in this_run if tuple(r[c] for c in partition_by) < key]
    best: tuple[Any, ...] | None = max((tuple(r[c] for c in partition_by) for r in candidates), default=None)
    table_best = None
    if table_exists(stats_path, engine):
        stats = read_table(spark, stats_path, engine)
        if len(partition_by) == 1:  # a plain comparison the reader can prune partitions with
            before = F.col(partition_by[0]) < F.lit(key[0])
        else:
            before = F.struct(*[F.col(c) for c in partition_by]) < F.struct(*[F.lit(v) for v in key])
        stats = stats.where(before & (F.col("job") == job) & F.col("scope").isin(list(BINNED)) & F.col("metric").isin([*BINNED.values(), "mean"]))
        latest = stats.orderBy(*[F.col(c).desc() for c in partition_by], F.col("computed_at").desc()).select(*partition_by, "run_id").first()
        if latest is not None:
            table_best = tuple(latest[c] for c in partition_by)
    if best is not None and (table_best is None or best >= table_best):
        rows = [r for r in candidates if tuple(r[c] for c in partition_by) == best and wanted(r)]
        return rows[0]["partition"], rows
    if table_best is None:
        return None, []
    match = partition_predicate([dict(zip(partition_by, table_best, strict=True))])
    rows = [r.asDict() for r in stats.where(match & (F.col("run_id") == latest["run_id"])).collect()]
    return (rows[0]["partition"] if rows else None), rows


@dataclass(frozen=True)
class Check:
    """One gate check of one partition: ``observed`` against ``limit`` (``None`` observed: not measurable, skipped)."""

    name: str
    column: str
    observed: float | None
    limit: float
    passed: bool

    @property
    def outcome(self) -> str:
        return "skipped" if self.observed is None else ("pass" if self.passed else "fail")

    def row(self) -> Row:
        return {"scope": GATE, "column": self.column, "metric": self.name, "bucket": self.outcome, "value": self.observed}


def _per_column(limits: Sequence[tuple[str, float]], columns: Sequence[str], what: str, source: str) -> dict[str, float]:
    """Column -> limit, ``*`` filling in the columns not named.

    Raises:
        ConfigError: a limit names a column the run does not have (it would never fire).
    """
    named = dict(limits)
    unknown = sorted(set(named) - {ALL_COLUMNS} - set(columns))
    if unknown:
        raise ConfigError(f"{source}: gate.{what}: {unknown} not among the columns checked ({', '.join(columns)})")
    default = named.get(ALL_COLUMNS)
    return {c: named.get(c, default) for c in columns if named.get(c, default) is not None}


def check_gate(gate: GateConfig, rows: Sequence[Row], features: Sequence[str], outputs: Sequence[str], source: str) -> list[Check]:
    """The gate's checks for one partition's statistics rows (counts, null rates, drift).

    ``max_psi`` takes the PSI against the training reference, or, for a column that has none
    there (e.g. the predictions of a model whose reference did not profile them), against the
    previous partition; neither gives a ``skipped`` check.
    """
    def value(scope: str, column: str, metric: str) -> float | None:
        return next((r["value"] for r in rows if (r["scope"], r["column"], r["metric"]) == (scope, column, metric)), None)

    checks = []
    rows_in = value("rows", "*", "rows_in") or 0.0
    if gate.min_rows is not None:
        checks.append(Check("min_rows", "*", rows_in, gate.min_rows, rows_in >= gate.min_rows))
    if gate.max_quarantine_rate is not None:
        rate = (value("rows", "*", "rows_quarantined") or 0.0) / rows_in if rows_in else 0.0
        checks.append(Check("max_quarantine_rate", "*", rate, gate.max_quarantine_rate, rate <= gate.max_quarantine_rate))
    for column, limit in _per_column(gate.max_null_rate, features, "max_null_rate", source).items():
        rate = value("input", column, "null_rate")
        checks.append(Check("max_null_rate", column, rate, limit, rate is None or rate <= limit))
    for column, limit in _per_column(gate.max_psi, [*features, *outputs], "max_psi", source).items():
        psi = value(BASELINE, column, "psi")
        if psi is None:
            psi = value(CONSECUTIVE, column, "psi")
        unbinned = not any(r["column"] == column and r["metric"] == "histogram" for r in rows)
        if psi is None and column in outputs and unbinned and column not in dict(gate.max_psi):
            continue  # "*" does not reach an output without a distribution (a label); naming it does
        checks.append(Check("max_psi", column, psi, limit, psi is None or psi <= limit))
    return checks
