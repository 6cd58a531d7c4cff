"""The evaluation's HTML report (issue 15): each metric over partitions with its 95% interval, per
model version, the estimate made before the labels beside the realized value; one self-contained
file (inline SVG, no script, no external CSS or font, nothing fetched)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from jobs.report.html import COLORS, CSS, _esc, _fmt

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.config import JobConfig

Row = Mapping[str, Any]
Model = tuple[str, str | None, str | None]  # role, model name, model version
EVALUATION, PAIRED, ESTIMATE = "evaluation", "paired", "estimate"
SCOPES = (EVALUATION, PAIRED, ESTIMATE)
# the metrics a chart is drawn for, in the report's order (the evaluation table's other rows of these
# scopes are the sufficient statistics and the counts: no chart)
METRICS = (
    *("label_coverage", "prevalence", "accuracy", "precision", "recall", "specificity", "f1", "roc_auc"),
    *("average_precision", "log_loss", "brier", "ece", "mae", "rmse", "bias", "r2", "mape"),
    *("delta_roc_auc", "mcnemar_p_value"),
)
BUCKETS = ("lower", "upper", "error_bound", "estimated", "realized", "error")
REASON = "reason: "
W, H, LEFT, RIGHT, TOP, BOTTOM = 760, 230, 60, 16, 12, 46  # a chart's size and margins, px
EXTRA_CSS = """
.chart { width: 100%; max-width: 760px; height: auto; } .chart text { font: 10px system-ui, sans-serif; fill: #555; }
.chart .grid { stroke: #eee; } .chart .axis { stroke: #bbb; } .legend { font-size: 12px; color: #555; margin: 2px 0 0; }
.legend span { margin-right: 14px; white-space: nowrap; } .legend svg { vertical-align: middle; margin-right: 3px; }
"""


@dataclass(frozen=True)
class Point:
    """One model version's metric on one partition; ``value`` None: undefined (``reason`` says why)."""

    value: float | None
    lower: float | None = None
    upper: float | None = None
    reason: str | None = None
    maturity: str | None = None
    coverage: float | None = None
    bound: float | None = None  # the histogram's error bound (AUC, AP)
    estimated: float | None = None  # the confidence-based estimate made before the labels
    error: float | None = None  # estimated - realized, as the evaluation wrote it


def _natural(label: str) -> list[Any]:
    """``ds=2024-06-01`` before ``ds=2024-06-02``, ``hour=9`` before ``hour=10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", label)]


def _model_name(model: Model) -> str:
    role, name, version = model
    return f"{' '.join(filter(None, (role, name)))} v{version}" if version is not None else f"{role} (scored no row)"


class _Evaluation:
    """The rows indexed: (scope, metric, model, partition) -> Point, in partition and model order."""

    def __init__(self, rows: Sequence[Row]) -> None:
        cells: dict[tuple[str, str, Model, str], dict[str | None, Any]] = defaultdict(dict)
        self.meta: dict[tuple[str, Model, str], Row] = {}  # (scope, model, partition) -> a row: maturity, coverage
        for r in rows:
            model: Model = (r["role"], r.get("model_name"), r.get("model_version"))
            cells[(r["scope"], r["metric"], model, r["partition"])][r["bucket"]] = r["value"]
            self.meta.setdefault((r["scope"], model, r["partition"]), r)
        self.partitions = sorted({k[3] for k in cells}, key=_natural)
        self.models = sorted({k[2] for k in cells}, key=lambda m: (m[0] != "champion", str(m[1]), _natural(str(m[2]))))
        present = {(EVALUATION if s == ESTIMATE else s, m) for s, m, _, _ in cells if m in METRICS}
        self.metrics = sorted(present, key=lambda sm: METRICS.index(sm[1]))
        self.points: dict[tuple[str, str, Model, str], Point] = {}
        for (scope, metric, model, partition), b in cells.items():
            if scope == ESTIMATE:
                continue
            est = cells.get((ESTIMATE, metric, model, partition), {})
            reason = next((k.removeprefix(REASON) for k in b if k and k.startswith(REASON)), None)
            self.points[(scope, metric, model, partition)] = self._point(b, est, reason, self.meta[(scope, model, partition)])
        for (scope, metric, model, partition), est in cells.items():  # an estimate without evaluation rows
            if scope == ESTIMATE and (EVALUATION, metric, model, partition) not in self.points:
                meta = self.meta.get((EVALUATION, model, partition), self.meta[(scope, model, partition)])
                self.points[(EVALUATION, metric, model, partition)] = self._point({}, est, "not evaluated yet", meta)

    @staticmethod
    def _point(b: Mapping[str | None, Any], est: Mapping[str | None, Any], reason: str | None, meta: Row) -> Point:
        """A metric's buckets (``b``) and its estimate's, with the maturity and coverage of ``meta``."""
        return Point(
            b.get(None, est.get("realized")), b.get("lower"), b.get("upper"), reason, meta.get("maturity"),
            meta.get("label_coverage"), b.get("error_bound"), est.get("estimated"), est.get("error"),
        )  # fmt: skip

    def point(self, scope: str, metric: str, model: Model, partition: str) -> Point | None:
        return self.points.get((scope, metric, model, partition))

    def series(self, scope: str, metric: str) -> list[tuple[Model, list[Point | None]]]:
        """Each model version with a point of the metric, its points in partition order."""
        out = [(m, [self.point(scope, metric, m, p) for p in self.partitions]) for m in self.models]
        return [(m, pts) for m, pts in out if any(pts)]


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """A padded domain around [lo, hi] and four or so round ticks inside it."""
    span = hi - lo or max(abs(hi) * 0.1, 0.05)
    lo, hi = lo - span * 0.08, hi + span * 0.08
    raw = (hi - lo) / 4
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    first = math.ceil(lo / step) * step
    return lo, hi, [round(first + i * step, 12) for i in range(int((hi - first) / step) + 1)]


def _title(name: str, partition: str, p: Point) -> str:
    text = f"{name}, {partition}: "
    if p.value is None:
        text += f"undefined: {p.reason or 'no value'}"
    else:
        text += _fmt(p.value, 4)
        if p.lower is not None and p.upper is not None:
            text += f", 95% interval [{_fmt(p.lower, 4)}, {_fmt(p.upper, 4)}]"
        if p.bound is not None:
            text += f", binning error bound {_fmt(p.bound, 3)}"
    if p.maturity:
        text += f", {p.maturity}"
    if p.coverage is not None:
        text += f", label coverage {p.coverage:.1%}"
    if p.estimated is not None:
        text += f"; estimated before labels {_fmt(p.estimated, 4)}"
        text += f" (error {_fmt(p.error, 3)})" if p.error is not None else ""
    return text  # escaped where it is written


def _polylines(cls: str, color: str, xy: Sequence[tuple[float, float] | None], dash: str = "") -> list[str]:
    """One polyline per run of consecutive defined points: an undefined value is a gap."""
    runs: list[list[tuple[float, float]]] = [[]]
    for p in xy:
        if p is None:
            runs.append([])
        else:
            runs[-1].append(p)
    style = f" stroke-dasharray='{dash}'" if dash else ""
    return [
        f"<polyline class='{cls}' fill='none' stroke='{color}' stroke-width='1.5'{style} "
        f"points='{' '.join(f'{x:.1f},{y:.1f}' for x, y in run)}'/>"
        for run in runs
        if len(run) > 1
    ]


def _series(
    partitions: Sequence[str],
    name: str,
    color: str,
    pts: Sequence[Point | None],
    xs: Sequence[float],
    y: Callable[[float], float],
) -> list[str]:
    """One model version's line, whiskers and points, its estimates (a dashed line of diamonds) and its
    undefined values (a cross on the axis), each mark's facts in its tooltip."""
    values = [(xs[i], y(v)) if p and (v := _number(p.value)) is not None else None for i, p in enumerate(pts)]
    estimates = [(xs[i] + 3, y(v)) if p and (v := _number(p.estimated)) is not None else None for i, p in enumerate(pts)]
    out = [*_polylines("line", color, values), *_polylines("estimate-line", color, estimates, dash="4 3")]
    for x, p, at, est, partition in zip(xs, pts, values, estimates, partitions, strict=True):
        if p is None:
            continue
        tip = f"<title>{_esc(_title(name, partition, p))}</title>"
        lower, upper = _number(p.lower), _number(p.upper)
        if lower is not None and upper is not None:
            y1, y2 = y(lower), y(upper)
            whisker = f"M{x:.1f},{y1:.1f}V{y2:.1f}M{x - 3:.1f},{y1:.1f}H{x + 3:.1f}M{x - 3:.1f},{y2:.1f}H{x + 3:.1f}"
            out.append(f"<path class='interval' d='{whisker}' stroke='{color}' stroke-opacity='0.6' fill='none'/>")
        if est is not None:
            diamond = f"M{est[0]:.1f},{est[1] - 4.5:.1f}l4.5,4.5l-4.5,4.5l-4.5,-4.5z"
            out.append(f"<path class='estimate' d='{diamond}' fill='{color}' fill-opacity='0.45' stroke='{color}'>{tip}</path>")
        if at is not None:
            hollow = p.maturity == "provisional"
            out.append(
                f"<circle class='point {'provisional' if hollow else 'final'}' cx='{x:.1f}' cy='{at[1]:.1f}' r='3.5' "
                f"fill='{'#fff' if hollow else color}' stroke='{color}' stroke-width='1.5'>{tip}</circle>"
            )
        elif p.value is None:  # undefined: a cross on the axis, the reason in its tooltip
            cross = f"M{x - 3:.1f},{H - BOTTOM - 8:.1f}l6,6m0,-6l-6,6"
            out.append(f"<path class='undefined' d='{cross}' stroke='{color}' stroke-width='1.5'>{tip}</path>")
    return out


def _chart(ev: _Evaluation, scope: str, metric: str, colors: Mapping[Model, str]) -> str:
    """The metric over the partitions as inline SVG, with the legend of what it draws."""
    series = ev.series(scope, metric)
    numbers = [_number(x) for _, pts in series for p in pts if p for x in (p.value, p.lower, p.upper, p.estimated)]
    found = [x for x in numbers if x is not None]
    n, plot_w, plot_h = len(ev.partitions), W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [f"<svg class='chart' data-metric='{_esc(metric)}' viewBox='0 0 {W} {H}' role='img'><title>{_esc(metric)}</title>"]
    lo, hi, ticks = _ticks(min(found), max(found)) if found else (0.0, 1.0, [0.0, 0.5, 1.0])

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    for t in ticks:
        out.append(f"<line class='grid' x1='{LEFT}' x2='{W - RIGHT}' y1='{y(t):.1f}' y2='{y(t):.1f}'/>")
        out.append(f"<text x='{LEFT - 6}' y='{y(t) + 3:.1f}' text-anchor='end'>{_fmt(t, 4)}</text>")
    out.append(f"<line class='axis' x1='{LEFT}' x2='{W - RIGHT}' y1='{TOP + plot_h}' y2='{TOP + plot_h}'/>")
    every, slot = max(1, math.ceil(n / 12)), plot_w / max(n, 1)
    tilt = n > 6
    for i, label in enumerate(ev.partitions):
        if i % every == 0:
            x, ty = LEFT + (i + 0.5) * slot, TOP + plot_h + 14
            turn = f" transform='rotate(-25 {x:.1f} {ty})'" if tilt else ""
            out.append(f"<text x='{x:.1f}' y='{ty}' text-anchor='{'end' if tilt else 'middle'}'{turn}>{_esc(label)}</text>")
    dodge = min(8.0, slot / (len(series) + 1))
    for j, (model, pts) in enumerate(series):
        xs = [LEFT + (i + 0.5) * slot + (j - (len(series) - 1) / 2) * dodge for i in range(n)]
        out += _series(ev.partitions, _model_name(model), colors[model], pts, xs, y)
    if not found:
        out.append(f"<text x='{LEFT + plot_w / 2:.1f}' y='{TOP + plot_h / 2:.1f}' text-anchor='middle'>no defined value</text>")
    out.append("</svg>")
    return "".join(out) + _legend(series, colors)


def _swatch(kind: str, color: str) -> str:
    shapes = {
        "final": f"<circle cx='7' cy='7' r='3.5' fill='{color}' stroke='{color}'/>",
        "provisional": f"<circle cx='7' cy='7' r='3.5' fill='#fff' stroke='{color}' stroke-width='1.5'/>",
        "estimate": f"<path d='M7,2.5l4.5,4.5l-4.5,4.5l-4.5,-4.5z' fill='{color}' fill-opacity='0.45' stroke='{color}'/>",
        "undefined": f"<path d='M4,4l6,6m0,-6l-6,6' stroke='{color}' stroke-width='1.5'/>",
        "line": f"<line x1='0' x2='14' y1='7' y2='7' stroke='{color}' stroke-width='2'/>",
    }
    return f"<svg width='14' height='14' viewBox='0 0 14 14'>{shapes[kind]}</svg>"


def _legend(series: Sequence[tuple[Model, Sequence[Point | None]]], colors: Mapping[Model, str]) -> str:
    items = [f"<span>{_swatch('line', colors[m])}{_esc(_model_name(m))}</span>" for m, _ in series]
    points = [p for _, pts in series for p in pts if p]
    kinds = {
        "final": ("final (labels complete)", any(p.value is not None and p.maturity != "provisional" for p in points)),
        "provisional": ("provisional (labels still arriving)", any(p.value is not None and p.maturity == "provisional" for p in points)),
        "estimate": ("estimated before labels (dashed)", any(p.estimated is not None for p in points)),
        "undefined": ("undefined (hover for the reason)", any(p.value is None for p in points)),
    }  # fmt: skip
    items += [f"<span class='legend-{k}'>{_swatch(k, '#555')}{text}</span>" for k, (text, shown) in kinds.items() if shown]
    return f"<p class='legend'>{''.join(items)}</p>"


def _cell(p: Point | None) -> str:
    if p is None:
        return "<td>–</td><td>–</td>"
    if p.value is None:
        return f"<td class='muted' title='{_esc(p.reason or '')}'>undefined</td><td class='l muted'>{_esc(p.reason or '')}</td>"
    interval = f"[{_fmt(p.lower, 4)}, {_fmt(p.upper, 4)}]" if p.lower is not None and p.upper is not None else "–"
    return f"<td>{_fmt(p.value, 4)}</td><td>{interval}</td>"


def _newest(ev: _Evaluation, colors: Mapping[Model, str]) -> list[str]:
    """The newest partition's metrics, a column group per model version."""
    newest = ev.partitions[-1]
    models = [m for m in ev.models if any(ev.point(s, k, m, newest) for s, k in ev.metrics)]
    estimated = any(p.estimated is not None for (_, _, _, q), p in ev.points.items() if q == newest)
    span = 3 if estimated else 2
    out = [f"<h2>Newest partition: {_esc(newest)}</h2><table><tr><th class='l'>metric</th>"]
    for m in models:
        meta = ev.meta.get((EVALUATION, m, newest), {})
        coverage = meta.get("label_coverage")
        facts = f"{meta.get('maturity', '–')}, coverage {coverage:.1%}" if coverage is not None else meta.get("maturity", "–")
        out.append(f"<th colspan='{span}' style='border-bottom: 3px solid {colors[m]}'>{_esc(_model_name(m))}<br>")
        out.append(f"<span class='muted'>{_esc(facts)}</span></th>")
    heads = "<th>value</th><th>95% interval</th>" + ("<th>estimate</th>" if estimated else "")
    out.append(f"</tr><tr><th></th>{heads * len(models)}</tr>")
    for scope, metric in ev.metrics:
        cells = [f"<tr><td class='l'>{_esc(metric)}{' (vs champion)' if scope == PAIRED else ''}</td>"]
        for m in models:
            p = ev.point(scope, metric, m, newest)
            cells.append(_cell(p))
            if estimated:
                est = f"{_fmt(p.estimated, 4)} (error {_fmt(p.error, 3)})" if p and p.estimated is not None else "–"
                cells.append(f"<td>{est}</td>")
        out.append("".join(cells) + "</tr>")
    out.append("</table>")
    return out


def _partitions(ev: _Evaluation) -> list[str]:
    """Each partition's labels version and, per model version, its maturity and label coverage."""
    out = ["<h3>Partitions</h3><table><tr><th class='l'>partition</th><th>labels version</th>"]
    out += [f"<th class='l'>{_esc(_model_name(m))}</th>" for m in ev.models] + ["</tr>"]
    for p in ev.partitions:
        versions = sorted({int(v) for (_, _, q), r in ev.meta.items() if q == p and (v := r.get("labels_version")) is not None})
        out.append(f"<tr><td class='l'>{_esc(p)}</td><td>{_esc(', '.join(map(str, versions)) or '–')}</td>")
        for m in ev.models:
            meta = ev.meta.get((EVALUATION, m, p))
            coverage = meta.get("label_coverage") if meta else None
            text = (
                "–"
                if meta is None
                else f"{meta.get('maturity')}" + (f", {coverage:.1%} labelled" if coverage is not None else "")
            )
            out.append(f"<td class='l'>{_esc(text)}</td>")
        out.append("</tr>")
    return [*out, "</table>"]


def _signals(signals: Sequence[Row]) -> list[str]:
    """The retraining signals raised, one row each, every field they carry."""
    if not signals:
        return []
    keys = list(dict.fromkeys(k for s in signals for k in s))
    out = ["<h2>Retraining signals</h2><table><tr>" + "".join(f"<th class='l'>{_esc(k)}</th>" for k in keys) + "</tr>"]
    for s in signals:
        cells = (", ".join(map(str, v)) if isinstance(v, list | tuple) else v for v in (s.get(k) for k in keys))
        out.append("<tr>" + "".join(f"<td class='l'>{_fmt(v)}</td>" for v in cells) + "</tr>")
    return [*out, "</table>"]


def evaluation_report(
    rows: Sequence[Row], job: str, run_id: str, labels: str, signals: Sequence[Row] = (), labels_version: int | None = None
) -> str:
    """The evaluation report's HTML.

    Args:
        rows: the evaluation table's metric rows (:func:`evaluation_rows`): scopes ``evaluation``,
            ``paired`` and, when the scoring job estimated before the labels, ``estimate``.
        labels: the labels table; ``labels_version`` the Delta version this run joined.
        signals: the retraining signals this run raised (rows of the signals table).
    """
    ev = _Evaluation(rows)
    colors = {m: COLORS[i % len(COLORS)] for i, m in enumerate(ev.models)}
    at = "" if labels_version is None else f" @ Delta version {labels_version}"
    meta = [("job", job), ("run id", run_id), ("labels", f"{labels}{at}"), ("partitions", len(ev.partitions))]
    out = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>LakeScore {_esc(job)} evaluation {_esc(run_id)}</title>",
        f"<style>{CSS}{EXTRA_CSS}</style></head><body><h1>LakeScore evaluation report: {_esc(job)}</h1>",
        "<table class='meta'>" + "".join(f"<tr><td class='muted'>{k}</td><td>{_esc(v)}</td></tr>" for k, v in meta) + "</table>",
    ]
    if not ev.partitions:
        out.append("<p class='muted'>No evaluation rows: no partition has been evaluated yet.</p>")
    else:
        out += [*_newest(ev, colors), *_partitions(ev), "<h2>Metrics over partitions</h2>"]
        out.append(
            "<p class='muted'>Per model version, the metric on each partition with its 95% interval (whiskers); hollow "
            "points are provisional (the partition is younger than the label horizon or too few of its rows are labelled "
            "yet), diamonds on a dashed line the estimate made before the labels; a cross on the axis is an undefined value "
            "(hover for the reason).</p>"
        )
        for scope, metric in ev.metrics:
            title = f"{metric}: challenger against the champion" if scope == PAIRED else metric
            out.append(f"<h3>{_esc(title)}</h3><div class='metric'>{_chart(ev, scope, metric, colors)}</div>")
    out += _signals(signals)
    out.append(f"<p class='muted'>Generated by LakeScore at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC.</p></body></html>")
    return "\n".join(out)


def evaluation_rows(spark: SparkSession, path: str, engine: str) -> list[dict[str, Any]]:
    """The evaluation table's rows the report draws (the metrics' values, intervals, reasons and
    estimates; not the sufficient statistics), filtered by Spark and collected; [] when the table
    does not exist yet."""
    from pyspark.sql import functions as F

    from jobs.tables import read_table, table_exists

    if not table_exists(path, engine):
        return []
    bucket = F.col("bucket")
    wanted = F.col("scope").isin(*SCOPES) & F.col("metric").isin(*METRICS)
    wanted &= bucket.isNull() | bucket.isin(*BUCKETS) | bucket.startswith(REASON)
    columns = ["partition", "model_name", "model_version", "role", "scope", "column", "metric", "bucket", "value"]
    columns += ["maturity", "label_coverage", "labels_version"]
    return [r.asDict() for r in read_table(spark, path, engine).where(wanted).select(*columns).collect()]


def report_path(cfg: JobConfig, run_id: str) -> str:
    """``<output.reports>/evaluation-<run id>.html``."""
    return f"{cast(str, cfg.output.reports).rstrip('/')}/evaluation-{run_id}.html"


def write_evaluation_report(
    spark: SparkSession, cfg: JobConfig, engine: str, run_id: str, labels_version: int, signals: Sequence[Row] = ()
) -> str:
    """Read the evaluation table, render its report and write it beside the scoring job's reports
    (a local folder or object storage); returns the path. Raises when it cannot be written."""
    from jobs.report.publish import write_report

    e = cfg.evaluation
    rows = evaluation_rows(spark, cast(str, e.output), engine)
    text = evaluation_report(rows, cfg.name, run_id, cast(str, e.labels), signals, labels_version=labels_version)
    path = report_path(cfg, run_id)
    write_report(path, text)
    return path
