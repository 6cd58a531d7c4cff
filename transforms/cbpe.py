"""Confidence-based performance estimation (CBPE, issue 15): a classifier's quality estimated from
its calibrated scores alone, before any label arrives.

The trainer fits an isotonic map of held-out labels on held-out scores (``lakescore/calibration.json``,
:class:`Calibration`); scoring applies it (:func:`calibrated`) to get p̂, the probability that a row
is positive, and sums what the expected confusion matrix and the expected ROC curve need:

* in the profile's one wide aggregation (:func:`estimate_sums`): ``n`` (rows with a usable score and
  a 0/1 decision), ``decision_calibrated_sum`` Σ d·p̂, ``decision_sum`` Σ d, ``calibrated_sum`` Σ p̂;
* per fine bin of the raw score (:func:`estimate_bins`, bucket = bin index from 0 of ``bins`` equal
  bins over [0, 1], min(floor(s·B), B - 1) of the score clipped to [0, 1]): ``positive_mass`` Σ p̂ and
  ``negative_mass`` Σ (1 - p̂), only bins with rows. Not as ``sum(when(bin = k))`` entries of the wide
  aggregation: 2,000 of those took 20-40 s to plan and run on 20,000 rows (measured), the same
  sums keyed by bin 0.5 s, so the bins are a small keyed aggregation of the same cached frame,
  collected in the same Spark job.

All are sums, so a window's estimate is its partitions' rows added up. The metrics are derived on the
driver (``jobs.quality.estimates``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.numeric import not_finite

ESTIMATE = "estimate"  # the scope of the estimate's rows
SCORE_BINS = 1000
SUMS = ("n", "decision_calibrated_sum", "decision_sum", "calibrated_sum")
MASSES = ("positive_mass", "negative_mass")
BINS_CONSTANT = "score_bins"  # a row beside the sums: the bins' count (never summed)
Key = tuple[str, str, str, str | None]


@dataclass(frozen=True)
class Calibration:
    """The calibration map: p̂ = np.interp(score, x, y) (clipped to y's ends outside x), for the
    model output ``score``, whose 0/1 decision is the output ``decision``. ``rows``: how many
    held-out rows it was fitted on."""

    score: str
    decision: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    rows: int | None = None

    @classmethod
    def from_map(cls, raw: Any) -> Calibration:
        """The map as the trainer stores it (``{"score", "decision", "x", "y", "rows"}``), checked.

        Raises:
            ValueError: naming what is wrong (not a mapping, a missing key, x not strictly
                increasing, a y outside [0, 1], lengths that differ).
        """
        if not isinstance(raw, Mapping):
            raise ValueError(f"expected a mapping, got {type(raw).__name__}")
        for key in ("score", "decision"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ValueError(f"{key}: expected the name of a model output, got {raw.get(key)!r}")
        points = {}
        for key in ("x", "y"):
            values = raw.get(key)
            if not isinstance(values, list) or not values:
                raise ValueError(f"{key}: expected a non-empty list of numbers")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise ValueError(f"{key}: every value must be a finite number")
            points[key] = tuple(float(v) for v in values)
        x, y = points["x"], points["y"]
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} values and y {len(y)}")
        if any(b <= a for a, b in pairwise(x)):
            raise ValueError("x must be strictly increasing")
        if any(not 0.0 <= v <= 1.0 for v in y):
            raise ValueError("y must be probabilities, in [0, 1]")
        rows = raw.get("rows")
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
            raise ValueError(f"rows: expected a count, got {rows!r}")
        return cls(raw["score"], raw["decision"], x, y, rows)


def thinned(x: Sequence[float], y: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The map without the points inside a run of equal y (the interpolation there is y either
    way, exactly): isotonic maps are mostly flat steps."""
    keep = [i for i in range(len(x)) if i in (0, len(x) - 1) or not (y[i - 1] == y[i] == y[i + 1])]
    return tuple(x[i] for i in keep), tuple(y[i] for i in keep)


def _piece(s: Column, x: Sequence[float], y: Sequence[float], region: int) -> Column:
    """p̂ in region ``region``: -1 below x[0], r in [x[r], x[r+1]), the last from x[-1] on; as numpy's
    interp computes it, slope·(s - x[r]) + y[r]."""
    if region < 0 or region >= len(x) - 1:
        return F.lit(y[0] if region < 0 else y[-1])
    slope = (y[region + 1] - y[region]) / (x[region + 1] - x[region])
    if slope == 0.0:
        return F.lit(y[region])
    return F.lit(slope) * (s - F.lit(x[region])) + F.lit(y[region])


def _tree(s: Column, x: Sequence[float], y: Sequence[float], first: int, last: int) -> Column:
    """Regions ``first..last`` as a balanced CASE: log2(n) comparisons per row, not n."""
    if first == last:
        return _piece(s, x, y, first)
    mid = (first + last + 1) // 2  # region mid starts at x[mid]
    return F.when(s < F.lit(x[mid]), _tree(s, x, y, first, mid - 1)).otherwise(_tree(s, x, y, mid, last))


def calibrated(score: Column, x: Sequence[float], y: Sequence[float]) -> Column:
    """``np.interp(score, x, y)`` as a Spark column (x strictly increasing): y[0] below x[0], y[-1]
    from x[-1] on, linear between; null for a null or NaN score."""
    xs, ys = thinned(x, y)
    s = score.cast("double")
    return F.when(s.isNotNull() & ~F.isnan(s), _tree(s, xs, ys, -1, len(xs) - 1)).cast("double")


def _usable(cal: Calibration) -> Column:
    s, d = F.col(cal.score).cast("double"), F.col(cal.decision)
    return s.isNotNull() & ~F.coalesce(not_finite(s), F.lit(False)) & F.coalesce(d.isin(0, 1), F.lit(False))


def _sum_where(condition: Column, value: Column) -> Column:
    return F.coalesce(F.sum(F.when(condition, value)), F.lit(0.0))


def estimate_sums(cal: Calibration) -> list[tuple[Key, Column]]:
    """The wide aggregation's entries: ``n`` and the three sums (module docstring), column = the score."""
    ok, p, d = _usable(cal), calibrated(F.col(cal.score), cal.x, cal.y), F.col(cal.decision).cast("double")
    return [
        ((ESTIMATE, cal.score, "n", None), _sum_where(ok, F.lit(1.0))),
        ((ESTIMATE, cal.score, "decision_calibrated_sum", None), _sum_where(ok, d * p)),
        ((ESTIMATE, cal.score, "decision_sum", None), _sum_where(ok, d)),
        ((ESTIMATE, cal.score, "calibrated_sum", None), _sum_where(ok, p)),
        ((ESTIMATE, cal.score, BINS_CONSTANT, None), F.lit(float(SCORE_BINS))),
    ]


def estimate_bins(cal: Calibration, group_by: Sequence[str], bins: int = SCORE_BINS) -> Callable[[DataFrame], DataFrame]:
    """Per group and raw-score bin with rows: ``positive_mass`` and ``negative_mass`` (module
    docstring), as long rows (``group_by..., scope, column, metric, bucket, value``)."""

    def _(df: DataFrame) -> DataFrame:
        s = F.least(F.greatest(F.col(cal.score).cast("double"), F.lit(0.0)), F.lit(1.0))
        p = calibrated(F.col(cal.score), cal.x, cal.y)
        summed = (
            df.where(_usable(cal))
            .select(*group_by, F.least(F.floor(s * F.lit(bins)), F.lit(bins - 1)).alias("_cbpe_bin"), p.alias("_cbpe_p"))
            .groupBy(*group_by, "_cbpe_bin")
            .agg(F.sum("_cbpe_p").alias("_cbpe_pos"), F.sum(F.lit(1.0) - F.col("_cbpe_p")).alias("_cbpe_neg"))
        )
        entries = [
            F.struct(
                F.lit(ESTIMATE).alias("scope"),
                F.lit(cal.score).alias("column"),
                F.lit(metric).alias("metric"),
                F.col("_cbpe_bin").cast("string").alias("bucket"),
                F.col(value).cast("double").alias("value"),
            )
            for metric, value in zip(MASSES, ("_cbpe_pos", "_cbpe_neg"), strict=True)
        ]
        return summed.select(*group_by, F.inline(F.array(*entries)))

    return _
