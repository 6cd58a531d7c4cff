"""Evaluation metrics from the sufficient statistics of :mod:`transforms.evaluation` (issue 15): point
values with 95% intervals, McNemar's test and the paired ΔAUC, in pure Python over collected rows.

Statistics are sums, so a window's metrics (several partitions, a version's whole life) come from
:func:`merge_statistics` over its rows, never from averaging the partitions' metrics. Intervals: Wilson
for proportions, Poisson-bootstrap percentiles (the replicates in the statistics) for the rest. A
metric that cannot be computed has value None and a reason, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from transforms.evaluation import BOOT, CONSTANTS, SCOPE

Row = dict[str, Any]
Array = np.ndarray
MIN_DEFINED = 0.5  # share of replicates the metric must be defined in to give an interval
EXACT_BELOW = 25  # McNemar: exact binomial below this many discordant pairs, chi-square from it
NO_ROWS = "no labelled rows"


@dataclass(frozen=True)
class MetricValue:
    """One metric: ``value`` None when undefined, ``reason`` then says why (or, for a value without
    its interval, why there is none); ``error_bound``: the most binning can move a histogram metric."""

    name: str
    value: float | None
    lower: float | None = None
    upper: float | None = None
    reason: str | None = None
    error_bound: float | None = None

    def __post_init__(self) -> None:
        for x in (self.value, self.lower, self.upper, self.error_bound):
            if x is not None and not math.isfinite(x):
                raise ValueError(f"metric {self.name}: {x} is no finite number")


class Statistics:
    """The summed statistics of one target: scalars, histograms and their replicates."""

    def __init__(self, values: Mapping[tuple[str, str | None], float], constants: Mapping[str, float]) -> None:
        self.values, self.constants = dict(values), dict(constants)

    def get(self, metric: str, bucket: str | None = None) -> float:
        return self.values.get((metric, bucket), 0.0)

    @property
    def replicates(self) -> int:
        return int(self.constants.get("replicates", 0))

    def bins(self, name: str) -> int:
        return int(self.constants.get(name, 0))  # 0: no statistics at all

    def hist(self, metric: str, bins: int) -> Array:
        return np.array([self.get(metric, str(b)) for b in range(bins)], dtype=float)

    def boot(self, metric: str) -> Array:
        return np.array([self.get(BOOT + metric, str(r)) for r in range(self.replicates)], dtype=float)

    def boot_hist(self, metric: str, bins: int) -> Array:
        cells = [self.get(BOOT + metric, f"{r}:{b}") for r in range(self.replicates) for b in range(bins)]
        return np.array(cells, dtype=float).reshape(self.replicates, bins)


def merge_statistics(rows: Iterable[Mapping[str, Any]], column: str, scope: str = SCOPE) -> Statistics:
    """The statistics of ``column`` summed over ``rows`` (the long rows of the partitions and version of
    a window; other scopes and columns are skipped), the constants checked equal.

    Raises:
        ValueError: two rows disagree on a constant (bins, ε or R): their statistics do not add.
    """
    values: dict[tuple[str, str | None], float] = {}
    constants: dict[str, float] = {}
    for r in rows:
        if r["scope"] != scope or r["column"] != column or r["value"] is None:
            continue
        metric, value = r["metric"], float(r["value"])
        if metric in CONSTANTS:
            if constants.setdefault(metric, value) != value:
                raise ValueError(f"statistics of {column}: {metric} is {constants[metric]} and {value}; they cannot be summed")
        else:
            values[metric, r["bucket"]] = values.get((metric, r["bucket"]), 0.0) + value
    return Statistics(values, constants)


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``successes / n`` (n > 0)."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_p_value(n01: float, n10: float) -> float:
    """Two-sided McNemar p-value from the discordant counts: exact binomial (p = 0.5) when
    n01 + n10 < 25, else chi-square with continuity correction, (|n01 - n10| - 1)² / (n01 + n10), 1 dof.
    No discordant pair: 1."""
    b, c = round(n01), round(n10)
    if b + c == 0:
        return 1.0
    if b + c < EXACT_BELOW:
        return float(scipy_stats.binomtest(b, b + c, 0.5).pvalue)
    return float(scipy_stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1))


def _ratio(num: Array, den: Array) -> Array:
    """num / den, NaN where den is 0 (a replicate where the metric is undefined; never returned)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def histogram_auc(pos: Array, neg: Array) -> tuple[Array, Array]:
    """ROC AUC from per-class counts in ascending score bins (last axis), pairs in one bin as ties
    (half): Σ_b Q_b (P_{>b} + P_b / 2) / (P·Q); and its error bound, the most the exact AUC can differ
    by, Σ_b P_b·Q_b / (2·P·Q) (a same-bin pair counts ½ here, 0 or 1 exactly). NaN where P·Q = 0."""
    n_pos, n_neg = pos.sum(-1), neg.sum(-1)
    above = n_pos[..., None] - np.cumsum(pos, -1)
    pairs = n_pos * n_neg
    return _ratio((neg * (above + pos / 2)).sum(-1), pairs), _ratio((pos * neg).sum(-1) / 2, pairs)


def histogram_average_precision(pos: Array, neg: Array) -> tuple[Array, Array]:
    """Average precision Σ (R_k - R_{k-1}) Prec_k with the thresholds at the bins' edges (descending);
    and its error bound: a positive of bin b counts Prec_b here, but exactly a precision between
    (T+1)/(T+1+F+Q_b) and (T+P_b)/(T+P_b+F) (T, F: positives, negatives in higher bins), so each bin
    adds P_b/P times the farther of the two from Prec_b. NaN where there is no positive."""
    p, q = pos[..., ::-1], neg[..., ::-1]
    tp, fp = np.cumsum(p, -1), np.cumsum(q, -1)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
    t, f = tp - p, fp - q
    lowest = (t + 1) / (t + 1 + f + q)
    highest = np.divide(t + p, t + p + f, out=np.ones_like(tp), where=t + p + f > 0)
    spread = np.maximum(highest - precision, precision - lowest)
    n_pos = pos.sum(-1)
    return _ratio((p * precision).sum(-1), n_pos), _ratio((p * np.where(p > 0, spread, 0.0)).sum(-1), n_pos)


def _interval(replicates: Array, confidence: float, shift: float = 0.0) -> tuple[float | None, float | None, str | None]:
    if replicates.size == 0:
        return None, None, "no bootstrap replicates"
    defined = replicates[~np.isnan(replicates)]
    if defined.size < max(2, MIN_DEFINED * replicates.size):
        return None, None, f"interval: defined in {defined.size} of {replicates.size} bootstrap replicates"
    alpha = 1 - confidence
    lower, upper = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return float(lower) + shift, float(upper) + shift, None


def _number(x: Array | float) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _boot(name: str, value: float | None, reason: str | None, replicates: Array, confidence: float, **kw: Any) -> MetricValue:
    """A metric with a bootstrap interval; ``shift`` (in kw) moves the replicates' percentiles."""
    if value is None:
        return MetricValue(name, None, reason=reason)
    lower, upper, why = _interval(replicates, confidence, kw.pop("shift", 0.0))
    return MetricValue(name, value, lower, upper, why, **kw)


def _debias(value: float | None, replicates: Array) -> float:
    defined = replicates[~np.isnan(replicates)] if replicates.size else replicates
    return 0.0 if value is None or defined.size == 0 else value - float(np.median(defined))


def _proportion(name: str, k: float, n: float, reason: str, confidence: float) -> MetricValue:
    if n <= 0:
        return MetricValue(name, None, reason=reason)
    lower, upper = wilson_interval(k, n, confidence)
    return MetricValue(name, k / n, lower, upper)


def _class_reason(n_pos: float, n_neg: float, none: str) -> str | None:
    if n_pos + n_neg == 0:
        return none
    if n_neg == 0:
        return "one class only: no negatives"
    if n_pos == 0:
        return "one class only: no positives"
    return None


def _coarse(hist: Array, bins: int) -> Array:
    return hist.reshape(bins, -1).sum(-1)


def _ranking(s: Statistics, pos: str, neg: str, none: str, confidence: float) -> list[MetricValue]:
    """ROC AUC and average precision of one model's histograms, intervals from the coarse replicates
    shifted by the fine minus the coarse point value (what the coarser binning moves)."""
    fine, coarse = s.bins("score_bins"), s.bins("boot_bins")
    p, q = s.hist(pos, fine), s.hist(neg, fine)
    out = []
    for name, fn, reason in (
        ("roc_auc", histogram_auc, _class_reason(p.sum(), q.sum(), none)),
        # with no negative every precision is 1, and so is AP (as scikit-learn has it)
        ("average_precision", histogram_average_precision, none if p.sum() + q.sum() == 0 else _class_reason(p.sum(), 1, none)),
    ):
        if reason:
            out.append(MetricValue(name, None, reason=reason))
            continue
        value, bound = fn(p, q)
        shift = float(value) - float(fn(_coarse(p, coarse), _coarse(q, coarse))[0])
        replicates = fn(s.boot_hist(pos, coarse), s.boot_hist(neg, coarse))[0] if s.replicates else np.array([])
        out.append(_boot(name, _number(value), None, replicates, confidence, shift=shift, error_bound=_number(bound)))
    return out


def binary_metrics(s: Statistics, confidence: float = 0.95) -> list[MetricValue]:
    """Label coverage, prevalence, accuracy, precision, recall, specificity (Wilson intervals); F1,
    ROC AUC, average precision, log loss, Brier, ECE (bootstrap); AUC and AP with their error bounds."""
    n, tp, fp, fn, tn = (s.get(m) for m in ("n", "tp", "fp", "fn", "tn"))
    labelled = n + s.get("missing_score") + s.get("invalid_label")
    none = NO_ROWS if labelled == 0 else "no labelled rows with a score"
    total = labelled + s.get("unlabelled")
    b = {m: s.boot(m) for m in ("tp", "fp", "fn", "tn", "log_loss_sum", "brier_sum")}
    bn = b["tp"] + b["fp"] + b["fn"] + b["tn"]
    calib = s.bins("calib_bins")
    gap = float(np.abs(s.hist("calib_score_sum", calib) - s.hist("calib_label_sum", calib)).sum())
    boot_gap = np.abs(s.boot_hist("calib_score_sum", calib) - s.boot_hist("calib_label_sum", calib)).sum(-1)
    f1_den = 2 * tp + fp + fn
    value = lambda num, den: None if den == 0 else num / den  # noqa: E731
    return [
        MetricValue("label_coverage", value(labelled, total), reason=None if total else "no rows"),
        _proportion("prevalence", tp + fn, n, none, confidence),
        _proportion("accuracy", tp + tn, n, none, confidence),
        _proportion("precision", tp, tp + fp, none if n == 0 else "no positive decisions", confidence),
        _proportion("recall", tp, tp + fn, none if n == 0 else "one class only: no positives", confidence),
        _proportion("specificity", tn, tn + fp, none if n == 0 else "one class only: no negatives", confidence),
        _boot(
            "f1",
            value(2 * tp, f1_den),
            none if n == 0 else "no positives and no positive decisions",
            _ratio(2 * b["tp"], 2 * b["tp"] + b["fp"] + b["fn"]),
            confidence,
        ),
        *_ranking(s, "score_hist_pos", "score_hist_neg", none, confidence),
        _boot("log_loss", value(s.get("log_loss_sum"), n), none, _ratio(b["log_loss_sum"], bn), confidence),
        _boot("brier", value(s.get("brier_sum"), n), none, _ratio(b["brier_sum"], bn), confidence),
        # ECE sums absolute gaps, which resampling noise only widens: its replicates sit above it, and
        # their percentiles are shifted by the bootstrap's bias (median - value) to centre on it
        _boot("ece", value(gap, n), none, _ratio(boot_gap, bn), confidence, shift=_debias(value(gap, n), _ratio(boot_gap, bn))),
    ]


def regression_metrics(s: Statistics, confidence: float = 0.95) -> list[MetricValue]:
    """MAE, RMSE, bias (mean of prediction - label), R², MAPE (over nonzero labels, a fraction), each
    with a bootstrap interval. R² is undefined for a constant label (its spread, from the sums, within
    1e-12 of its mean square: the sums' rounding)."""
    n = s.get("n")
    none = NO_ROWS if n + s.get("missing_score") == 0 else "no labelled rows with a prediction"
    sums = ("n", "abs_err_sum", "sq_err_sum", "err_sum", "label_sum", "label_sq_sum", "ape_sum", "ape_n")
    b = {m: s.boot(m) for m in sums}

    def ss_tot(ls: Any, lsq: Any, count: Any) -> Any:
        spread = lsq - _ratio(ls * ls, count)
        return np.where(spread > 1e-12 * np.abs(lsq), spread, 0.0)

    tot, boot_tot = (
        ss_tot(s.get("label_sum"), s.get("label_sq_sum"), np.float64(n)),
        ss_tot(b["label_sum"], b["label_sq_sum"], b["n"]),
    )
    value = lambda num, den: None if den == 0 else _number(num / den)  # noqa: E731
    rmse = value(s.get("sq_err_sum"), n)
    r2_reason = none if n == 0 else "constant label"
    return [
        _boot("mae", value(s.get("abs_err_sum"), n), none, _ratio(b["abs_err_sum"], b["n"]), confidence),
        _boot("rmse", None if rmse is None else math.sqrt(rmse), none, np.sqrt(_ratio(b["sq_err_sum"], b["n"])), confidence),
        _boot("bias", value(s.get("err_sum"), n), none, _ratio(b["err_sum"], b["n"]), confidence),
        _boot(
            "r2",
            None if tot == 0 else 1 - s.get("sq_err_sum") / float(tot),
            r2_reason,
            1 - _ratio(b["sq_err_sum"], boot_tot),
            confidence,
        ),
        _boot(
            "mape",
            value(s.get("ape_sum"), s.get("ape_n")),
            none if n == 0 else "no nonzero labels",
            _ratio(b["ape_sum"], b["ape_n"]),
            confidence,
        ),
    ]


def is_regression(s: Statistics) -> bool:
    """Whether ``s`` are a regressor's statistics (its sums, no score bins)."""
    return s.bins("score_bins") == 0 and any(metric == "sq_err_sum" for metric, _ in s.values)


def model_metrics(s: Statistics, confidence: float = 0.95) -> list[MetricValue]:
    """A model's metrics by what its statistics are: a regressor's (with its label coverage) or a
    binary classifier's (:func:`binary_metrics`, also for no statistics at all)."""
    if not is_regression(s):
        return binary_metrics(s, confidence)
    labelled = s.get("n") + s.get("missing_score")
    total = labelled + s.get("unlabelled")
    coverage = MetricValue("label_coverage", labelled / total if total else None, reason=None if total else "no rows")
    return [coverage, *regression_metrics(s, confidence)]


def paired_metrics(s: Statistics, confidence: float = 0.95) -> list[MetricValue]:
    """Champion against challenger on the rows both scored: ``mcnemar_p_value`` (:func:`mcnemar_p_value`)
    and ``delta_roc_auc`` = challenger's AUC - champion's, with a paired-bootstrap interval (the same
    replicate weights for both) and the sum of both histograms' error bounds."""
    none = "no labelled rows scored by both models"
    if s.get("paired_n") == 0:
        return [MetricValue("mcnemar_p_value", None, reason=none), MetricValue("delta_roc_auc", None, reason=none)]
    mcnemar = MetricValue("mcnemar_p_value", mcnemar_p_value(s.get("mcnemar_n01"), s.get("mcnemar_n10")))
    fine, coarse = s.bins("score_bins"), s.bins("boot_bins")
    hists = {m: (s.hist(f"{m}_hist_pos", fine), s.hist(f"{m}_hist_neg", fine)) for m in ("champion", "challenger")}
    champion, challenger = hists["champion"], hists["challenger"]
    reason = _class_reason(champion[0].sum(), champion[1].sum(), none)
    if reason:
        return [mcnemar, MetricValue("delta_roc_auc", None, reason=reason)]
    (a, bound_a), (b, bound_b) = histogram_auc(*champion), histogram_auc(*challenger)
    delta = float(b - a)
    coarse_delta = (
        histogram_auc(*(_coarse(h, coarse) for h in challenger))[0] - histogram_auc(*(_coarse(h, coarse) for h in champion))[0]
    )
    boot = {m: histogram_auc(s.boot_hist(f"{m}_hist_pos", coarse), s.boot_hist(f"{m}_hist_neg", coarse))[0] for m in hists}
    replicates = boot["challenger"] - boot["champion"] if s.replicates else np.array([])
    shift = delta - float(coarse_delta)
    return [
        mcnemar,
        _boot("delta_roc_auc", delta, None, replicates, confidence, shift=shift, error_bound=float(bound_a + bound_b)),
    ]


def metric_rows(
    metrics: Sequence[MetricValue], column: str, scope: str = SCOPE, partition: Mapping[str, Any] | None = None
) -> list[Row]:
    """Metrics as long rows for the stats table: per metric the value (bucket None; value None when
    undefined), and when they exist rows with bucket ``lower``, ``upper``, ``error_bound``, and
    ``reason: <text>`` (value None). ``partition``: the keys every row gets (partition columns,
    ``model_version``)."""
    out = []
    for m in metrics:
        cells: list[tuple[str | None, float | None]] = [(None, m.value)]
        cells += [(b, v) for b, v in (("lower", m.lower), ("upper", m.upper), ("error_bound", m.error_bound)) if v is not None]
        if m.reason:
            cells.append((f"reason: {m.reason}", None))
        out += [
            {**(partition or {}), "scope": scope, "column": column, "metric": m.name, "bucket": b, "value": v} for b, v in cells
        ]
    return out
