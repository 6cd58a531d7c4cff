"""Drift of a partition: against the model's training reference (baseline) and against the
partition before it (consecutive), whose binned counts are read back from the stats table (the old
data is never scanned again). Also where a model without a training reference takes its baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from transforms.drift import compare
from transforms.stats import Bins

log = logging.getLogger("lakescore.quality")

Row = dict[str, Any]
BASELINE, CONSECUTIVE = "drift_baseline", "drift_consecutive"
# where a column's binned counts and mean live in the stats table: (scope, metric of the counts)
BINNED = {"model_input": "bin_count", "prediction": "histogram"}


def _binned(rows: Sequence[Row], scope: str, column: str) -> tuple[dict[str, float], float | None]:
    counts = {
        r["bucket"]: r["value"] for r in rows if r["scope"] == scope and r["column"] == column and r["metric"] == BINNED[scope]
    }
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
        out.extend(
            {"scope": scope, "column": column, "metric": m, "bucket": bucket, "value": v}
            for m, v in metrics.items()
            if v is not None
        )

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
                        log.info(
                            "consecutive drift of %s skipped: %s was binned differently (another reference?)",
                            column,
                            previous_label,
                        )
                    continue
                if (m := _metrics([before[label] for label in bins.labels], current, bins.ordered)) is not None:
                    diff = mean - before_mean if mean is not None and before_mean is not None else None
                    add(CONSECUTIVE, column, {**m, "mean_diff": diff}, previous_label)
    # an output without bins (a label): its mean still moves
    if previous:
        binned = {c for c in prediction_bins}
        for r in rows:
            if r["scope"] == "prediction" and r["metric"] == "mean" and r["column"] not in binned and r["value"] is not None:
                prior = next(
                    (
                        p["value"]
                        for p in previous
                        if p["scope"] == "prediction" and p["column"] == r["column"] and p["metric"] == "mean"
                    ),
                    None,
                )
                if prior is not None:
                    add(CONSECUTIVE, r["column"], {"mean_diff": r["value"] - prior}, previous_label)
    return out
