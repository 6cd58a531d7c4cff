"""CBPE on the driver (issue 15): the champion's quality estimated from the collected sums of
:mod:`transforms.cbpe` before the labels arrive, and, once they have, the estimate beside what was
realized.

With p̂ the calibrated probability of a row and d its 0/1 decision, the expected confusion matrix is
TP = Σ d·p̂, FP = Σ d·(1 - p̂), FN = Σ (1 - d)·p̂, TN = Σ (1 - d)·(1 - p̂); accuracy, precision, recall
and F1 follow from it as from counted cells. ROC AUC is that of the expected positive and negative
mass per raw-score bin (:func:`jobs.quality.metrics.histogram_auc`, pairs in a bin as ties), with its
binning bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.quality.metrics import MetricValue, Row, histogram_auc, metric_rows
from transforms.cbpe import BINS_CONSTANT, ESTIMATE, MASSES, SUMS

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
ESTIMATED, REALIZED, ERROR = "estimated", "realized", "error"
LONG = ("scope", "column", "metric", "bucket", "value")


def _value(name: str, num: float, den: float, reason: str) -> MetricValue:
    return MetricValue(name, num / den) if den > 0 else MetricValue(name, None, reason=reason)


def estimate_metrics(rows: Iterable[Mapping[str, Any]], column: str) -> list[MetricValue]:
    """The estimated accuracy, precision, recall, F1 and ROC AUC of ``column`` from the ``estimate``
    rows (summed over every row given: one partition's, or a window's)."""
    sums = dict.fromkeys(SUMS, 0.0)
    masses: dict[str, dict[int, float]] = {m: {} for m in MASSES}
    bins = 0
    for r in rows:
        if r["scope"] != ESTIMATE or r["column"] != column or r["value"] is None:
            continue
        metric, value = r["metric"], float(r["value"])
        if metric == BINS_CONSTANT:
            bins = max(bins, int(value))
        elif metric in sums and r["bucket"] is None:
            sums[metric] += value
        elif metric in masses and r["bucket"] is not None:
            b = int(r["bucket"])
            masses[metric][b] = masses[metric].get(b, 0.0) + value
    n, tp, decided, expected = (sums[m] for m in SUMS)
    fp, fn = decided - tp, expected - tp
    none = "no scored rows with a score and a 0/1 decision"
    out = [
        _value("accuracy", n - decided - expected + 2 * tp, n, none),
        _value("precision", tp, tp + fp, none if n == 0 else "no positive decisions"),
        _value("recall", tp, tp + fn, none if n == 0 else "no expected positives"),
        _value("f1", 2 * tp, 2 * tp + fp + fn, none if n == 0 else "no positive decisions and no expected positives"),
    ]
    size = max([bins, *[b + 1 for m in masses.values() for b in m]])
    pos, neg = (np.array([masses[m].get(b, 0.0) for b in range(size)]) for m in MASSES)
    if n == 0 or pos.sum() <= 0 or neg.sum() <= 0:
        why = none if n == 0 else "one class only: no expected " + ("positives" if pos.sum() <= 0 else "negatives")
        return [*out, MetricValue("roc_auc", None, reason=why)]
    auc, bound = histogram_auc(pos, neg)
    return [*out, MetricValue("roc_auc", float(auc), error_bound=float(bound))]


def derive_estimates(rows: Sequence[Row]) -> list[Row]:
    """The collected statistics rows with, per partition (the keys beside the long ones) and
    ``estimate`` column, the estimated metrics as :func:`jobs.quality.metrics.metric_rows` writes
    them (bucket None; ``error_bound`` for ROC AUC; ``reason: ...`` for an undefined one)."""
    groups: dict[tuple[tuple[str, Any], ...], list[Row]] = {}
    for r in rows:
        if r["scope"] == ESTIMATE:
            groups.setdefault(tuple(sorted((k, v) for k, v in r.items() if k not in LONG)), []).append(r)
    derived: list[Row] = []
    for key, members in groups.items():
        for column in sorted({r["column"] for r in members}):
            derived += metric_rows(estimate_metrics(members, column), column, ESTIMATE, dict(key))
    return [*rows, *derived]


def _latest(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of the latest scoring run among them (a partition scored twice has both runs' rows)."""
    stamped = [r for r in rows if r.get("computed_at") is not None]
    if not stamped:
        return list(rows)
    newest = max(stamped, key=lambda r: (r["computed_at"], str(r.get("run_id"))))
    return [r for r in rows if r.get("run_id") == newest.get("run_id")]


def wanted_rows(job: str) -> Column:
    """The stats table's rows :func:`estimate_rows` reads: ``job``'s champion estimates (scope
    ``estimate``, no ``model_version``, the :data:`METRICS`, bucket null), not the sums."""
    metric = F.col("metric").isin(list(METRICS)) & F.col("bucket").isNull()
    return (F.col("job") == F.lit(job)) & (F.col("scope") == F.lit(ESTIMATE)) & F.col("model_version").isNull() & metric


def estimate_rows(stats: Sequence[Mapping[str, Any]], realized: Sequence[MetricValue], column: str) -> list[Row]:
    """The champion's estimate beside its realized metrics: per metric of :data:`METRICS` rows with
    scope ``estimate``, ``column``, bucket ``estimated``, ``realized`` and ``error`` (estimated -
    realized; None when either is). ``stats``: the stats table's ``estimate`` rows of the partition
    (the latest run's are taken); none: no rows (the model carries no calibration)."""
    mine = [r for r in _latest(stats) if r["scope"] == ESTIMATE and r["column"] == column and r["bucket"] is None]
    if not mine:
        return []
    estimated = {r["metric"]: r["value"] for r in mine if r["metric"] in METRICS}
    real = {m.name: m.value for m in realized}
    out: list[Row] = []
    for metric in METRICS:
        e, r = estimated.get(metric), real.get(metric)
        values = {ESTIMATED: e, REALIZED: r, ERROR: None if e is None or r is None else e - r}
        out += [{"scope": ESTIMATE, "column": column, "metric": metric, "bucket": b, "value": v} for b, v in values.items()]
    return out
