"""The run report's HTML: one self-contained file per run (inline SVG plots, no external CSS or JS),
built from the run's statistics rows."""

from __future__ import annotations

import datetime as dt
import html
import io
import logging
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from jobs.config import ALL_COLUMNS, GateConfig, JobConfig
from jobs.redact import redact
from transforms.stats import Bins

if TYPE_CHECKING:  # jobs.run imports the report: a type-only import keeps the report importable on its own
    from jobs.run.ledger import RunRecord

log = logging.getLogger("lakescore.report")

Row = Mapping[str, Any]
PSI_MODERATE, PSI_SHIFTED = 0.1, 0.25  # the usual reading of PSI: below 0.1 stable, above 0.25 shifted
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
REFERENCE_COLOR = "#9e9e9e"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
table { border-collapse: collapse; margin: 8px 0 16px; } th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f6f6f6; font-weight: 600; } td.l, th.l { text-align: left; }
.status { display: inline-block; padding: 2px 10px; border-radius: 10px; font-weight: 600; color: #fff; }
.ok { background: #2e7d32; } .bad { background: #c62828; } .warn { background: #ef6c00; }
.pass { color: #2e7d32; font-weight: 600; } .fail { color: #c62828; font-weight: 600; } .skipped { color: #777; }
.psi-moderate { background: #fff3e0; } .psi-shifted { background: #ffebee; font-weight: 600; }
.meta td { text-align: left; border: none; padding: 2px 12px 2px 0; } .muted { color: #777; }
.feature { display: grid; grid-template-columns: 560px 1fr; gap: 16px; align-items: start; border-bottom: 1px solid #eee; padding: 8px 0; }
.feature svg { width: 100%; height: auto; } .plot svg { width: 100%; max-width: 760px; height: auto; }
"""


# C0 and C1 controls (NUL included; not tab, newline, carriage return) and the bidirectional
# marks, embeddings, overrides and isolates (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069): a
# data value must not reorder or hide the text around it in the report
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every control and bidirectional-formatting character shown as its ``\\uXXXX``
    escape instead of acting on the text around it."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def _esc(value: Any) -> str:
    """Any text that goes into the report: credentials masked, controls made visible, HTML escaped."""
    return html.escape(visible(redact(str(value))))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    return _esc(value)


def _psi_class(psi: float | None) -> str:
    if psi is None:
        return ""
    return "psi-shifted" if psi > PSI_SHIFTED else "psi-moderate" if psi > PSI_MODERATE else ""


class _Stats:
    """The run's statistics rows, indexed by (partition, scope, column, metric) -> {bucket: value}."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.by: dict[tuple[str, str, str, str], dict[str | None, float | None]] = defaultdict(dict)
        self.partitions: list[str] = []
        for r in rows:
            self.by[(r["partition"], r["scope"], r["column"], r["metric"])][r["bucket"]] = r["value"]
            if r["partition"] not in self.partitions:
                self.partitions.append(r["partition"])

    def value(self, partition: str, scope: str, column: str, metric: str, bucket: str | None = None) -> float | None:
        return self.by.get((partition, scope, column, metric), {}).get(bucket)

    def buckets(self, partition: str, scope: str, column: str, metric: str) -> dict[str | None, float | None]:
        return self.by.get((partition, scope, column, metric), {})

    def columns(self, scope: str) -> list[str]:
        return list(dict.fromkeys(c for (_, s, c, _) in self.by if s == scope))


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: inline SVG needs neither


def _bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], xlabel: str, drop_empty: bool = True
) -> str:
    """Grouped bars of shares per bin, one series per source (reference, each partition)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller files, searchable names
    import matplotlib.pyplot as plt
    import numpy as np

    keep = [i for i in range(len(labels)) if not drop_empty or any(shares[i] > 0 for _, shares, _ in series)]
    labels = [labels[i] for i in keep]  # a bin empty on every side (a repeated decile edge) says nothing
    series = [(name, [shares[i] for i in keep], color) for name, shares, color in series]
    fig, ax = plt.subplots(figsize=(7.2, 2.9))
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, shares, color) in enumerate(series):
        ax.bar(x - 0.4 + width * (i + 0.5), shares, width, label=visible(name), color=color)
    ax.set_xticks(
        x,
        [visible(_short(lb)) for lb in labels],
        rotation=35 if len(labels) > 5 else 0,
        ha="right" if len(labels) > 5 else "center",
        fontsize=8,
    )
    ax.set_ylabel("share of rows")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=11, loc="left", pad=22)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(series))
    return _svg(fig)


def _short(label: str) -> str:
    """``03 [12.5,40)`` -> ``[12.5,40)``: the index only keeps labels unique and sortable."""
    head, _, rest = label.partition(" ")
    return rest if head.isdigit() and rest else label


def _shares(counts: Mapping[str | None, float | None], labels: Sequence[str]) -> list[float]:
    values = [counts.get(lb) or 0.0 for lb in labels]
    total = sum(values)
    return [v / total if total else 0.0 for v in values]


def _limit(gate: GateConfig, name: str, column: str) -> float | None:
    if name == "min_rows":
        return gate.min_rows
    if name == "max_quarantine_rate":
        return gate.max_quarantine_rate
    limits = dict(gate.max_null_rate if name == "max_null_rate" else gate.max_psi)
    return limits.get(column, limits.get(ALL_COLUMNS))


def _header(cfg: JobConfig, record: RunRecord, gate_failed: bool, status_class: str) -> list[str]:
    """The title, the run's status and facts, and its error if any."""
    out: list[str] = []
    w = out.append
    w(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>LakeScore {_esc(cfg.name)} run {record.run_id}</title>")
    w(f"<style>{CSS}</style></head><body>")
    w(f"<h1>LakeScore run report: {_esc(cfg.name)}</h1>")
    w(
        f"<p><span class='status {status_class}'>{_esc(record.status)} (exit {record.exit_code})</span>"
        f"{' &nbsp;quality gate breached (mode warn): published anyway' if gate_failed and record.status == 'succeeded' else ''}</p>"
    )
    model = f"{record.model_name or record.model_uri} version {record.model_version or '–'} ({record.model_resolved_uri or record.model_uri})"
    meta = [
        ("run id", record.run_id),
        ("started", record.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("partitions", ", ".join(record.partitions)),
        ("input", f"{record.input_table} @ Delta version {record.input_version}"),
        ("model", model),
        ("scored table", record.scored_table),
        ("config", f"{cfg.source} (hash {record.config_hash})"),
    ]
    w("<table class='meta'>" + "".join(f"<tr><td class='muted'>{k}</td><td>{_esc(v)}</td></tr>" for k, v in meta) + "</table>")
    if record.error:
        w(f"<p class='fail'>{_esc(record.error)}</p>")
    return out


def _counts(st: _Stats, parts: Sequence[str]) -> list[str]:
    """Rows in, scored and quarantined per partition, and the quarantined rows by rule."""
    out: list[str] = []
    w = out.append
    w(
        "<h2>Counts</h2><table><tr><th class='l'>partition</th><th>rows in</th><th>scored</th><th>quarantined</th>"
        "<th>quarantine rate</th><th>scoring s</th><th>rows/s</th></tr>"
    )
    for p in parts:
        rows_in, quarantined = st.value(p, "rows", "*", "rows_in"), st.value(p, "rows", "*", "rows_quarantined")
        # transforms.stats counts rows_quarantined with rows_in: with one, there is the other
        rate = cast(float, quarantined) / rows_in if rows_in else None
        w(
            f"<tr><td class='l'>{_esc(p)}</td><td>{_fmt(rows_in)}</td><td>{_fmt(st.value(p, 'rows', '*', 'rows_scored'))}</td>"
            f"<td>{_fmt(quarantined)}</td><td>{_fmt(rate, 3)}</td><td>{_fmt(st.value(p, 'timing', '*', 'score_seconds'), 3)}</td>"
            f"<td>{_fmt(round(st.value(p, 'timing', '*', 'rows_per_second') or 0.0))}</td></tr>"
        )
    w("</table>")
    rules = [c for c in st.columns("rows") if c != "*"]
    if rules:
        w(
            "<h3>Quarantined by rule</h3><table><tr><th class='l'>rule</th>"
            + "".join(f"<th>{_esc(p)}</th>" for p in parts)
            + "</tr>"
        )
        for rule in rules:
            w(
                f"<tr><td class='l'>{_esc(rule)}</td>"
                + "".join(f"<td>{_fmt(st.value(p, 'rows', rule, 'quarantined_by_rule'))}</td>" for p in parts)
                + "</tr>"
            )
        w("</table>")
    return out


def _gate(cfg: JobConfig, rows: Sequence[Row], st: _Stats, parts: Sequence[str]) -> list[str]:
    """Each gate check's observed value per partition against its limit."""
    out: list[str] = []
    w = out.append
    w("<h2>Quality gate</h2>")
    gate_rows = [r for r in rows if r["scope"] == "gate"]
    if not gate_rows:
        w("<p class='muted'>No gate configured (the <code>gate:</code> section of the job config).</p>")
    else:
        w(
            f"<p>mode <b>{_esc(cfg.gate.mode)}</b>: observed value per partition, red where it breaks the limit</p>"
            "<table><tr><th class='l'>check</th><th class='l'>column</th><th>limit</th>"
            + "".join(f"<th>{_esc(p)}</th>" for p in parts)
            + "</tr>"
        )
        for name, column in dict.fromkeys((r["metric"], r["column"]) for r in gate_rows):
            cells = []
            for p in parts:
                outcome = st.buckets(p, "gate", column, name)
                bucket, value = next(iter(outcome.items()), (None, None))
                cells.append(
                    f"<td class='{bucket or ''}' title='{bucket or ''}'>{_fmt(value)}{' ✗' if bucket == 'fail' else ''}</td>"
                )
            w(
                f"<tr><td class='l'>{_esc(name)}</td><td class='l'>{_esc(column)}</td><td>{_fmt(_limit(cfg.gate, name, column))}</td>{''.join(cells)}</tr>"
            )
        w("</table>")
    return out


def _drift(st: _Stats, parts: Sequence[str]) -> list[str]:
    """Drift per column and partition, against the reference and the previous partition."""
    out: list[str] = []
    w = out.append
    w(
        "<h2>Drift</h2><p class='muted'>PSI, Jensen-Shannon distance (base 2), KS (at the reference's bin edges) and the difference of means, "
        f"against the model's training reference (baseline) and the previous partition (consecutive). PSI above {PSI_MODERATE} is shaded, above {PSI_SHIFTED} red.</p>"
    )
    w(
        "<table><tr><th class='l'>column</th><th class='l'>partition</th><th>PSI</th><th>JS</th><th>KS</th><th>mean diff</th>"
        "<th>PSI vs previous</th><th>mean diff vs previous</th><th class='l'>previous</th></tr>"
    )
    drifted = list(dict.fromkeys([*st.columns("drift_baseline"), *st.columns("drift_consecutive")]))
    for column in drifted:
        for p in parts:
            psi = st.value(p, "drift_baseline", column, "psi")
            prev = st.buckets(p, "drift_consecutive", column, "psi")
            prev_label, prev_psi = next(iter(prev.items()), (None, None))
            w(
                f"<tr><td class='l'>{_esc(column)}</td><td class='l'>{_esc(p)}</td>"
                f"<td class='{_psi_class(psi)}'>{_fmt(psi, 3)}</td><td>{_fmt(st.value(p, 'drift_baseline', column, 'js_distance'), 3)}</td>"
                f"<td>{_fmt(st.value(p, 'drift_baseline', column, 'ks'), 3)}</td><td>{_fmt(st.value(p, 'drift_baseline', column, 'mean_diff'), 3)}</td>"
                f"<td class='{_psi_class(prev_psi)}'>{_fmt(prev_psi, 3)}</td><td>{_fmt(next(iter(st.buckets(p, 'drift_consecutive', column, 'mean_diff').values()), None), 3)}</td>"
                f"<td class='l muted'>{_esc(prev_label or next(iter(st.buckets(p, 'drift_consecutive', column, 'mean_diff')), None) or '–')}</td></tr>"
            )
    w("</table>")
    if not drifted:
        w("<p class='muted'>No drift computed: the model has no training reference and no earlier partition has statistics.</p>")
    return out


def _features(
    features: Sequence[str], feature_bins: Mapping[str, Bins], st: _Stats, parts: Sequence[str], colors: Mapping[str, str]
) -> list[str]:
    """Each feature's distribution against the reference, with its summary statistics."""
    out: list[str] = []
    w = out.append
    w(
        "<h2>Features: reference vs current</h2><p class='muted'>Shares of each feature's values (after preprocessing, as the model saw them) "
        "in the training reference's bins: deciles for numerics, categories for the rest.</p>"
    )
    for column in features:
        bins = feature_bins.get(column)
        plot = ""
        if bins is not None:
            series = [("training reference", list(bins.reference or []), REFERENCE_COLOR)] if bins.reference else []
            series += [(p, _shares(st.buckets(p, "model_input", column, "bin_count"), bins.labels), colors[p]) for p in parts]
            plot = _bars(column, bins.labels, series, "bin (reference deciles)" if bins.ordered else "category")
        facts = ["<table>"]
        for metric, digits in (
            ("null_rate", 3),
            ("nan_rate", 3),
            ("mean", 4),
            ("stddev", 4),
            ("min", 4),
            ("max", 4),
            ("distinct_count", 4),
        ):
            values = [st.value(p, "input", column, metric) for p in parts]
            if any(v is not None for v in values):
                facts.append(
                    f"<tr><td class='l muted'>{metric}</td>" + "".join(f"<td>{_fmt(v, digits)}</td>" for v in values) + "</tr>"
                )
        quantiles = [st.buckets(p, "input", column, "quantile") for p in parts]
        for q in sorted({q for qs in quantiles for q in qs if q is not None}, key=float):
            facts.append(
                f"<tr><td class='l muted'>q{q}</td>" + "".join(f"<td>{_fmt(qs.get(q))}</td>" for qs in quantiles) + "</tr>"
            )
        for p in parts:
            top = st.buckets(p, "input", column, "top_count")
            if top:
                cats = ", ".join(f"{_esc(k)} {_fmt(v)}" for k, v in sorted(top.items(), key=lambda kv: -(kv[1] or 0)))
                other, unseen = st.value(p, "input", column, "other_count"), st.value(p, "input", column, "unseen_count")
                facts.append(
                    f"<tr><td class='l muted'>top ({_esc(p)})</td><td class='l' colspan='{len(parts)}'>{cats}; other {_fmt(other or 0.0)}; "
                    f"unseen {_fmt(unseen)}</td></tr>"
                )
        psis = [st.value(p, "drift_baseline", column, "psi") for p in parts]
        facts.append(
            "<tr><td class='l muted'>PSI</td>" + "".join(f"<td class='{_psi_class(v)}'>{_fmt(v, 3)}</td>" for v in psis) + "</tr>"
        )
        facts.append("</table>")
        header = "<tr><th class='l'>input, all rows</th>" + "".join(f"<th>{_esc(p)}</th>" for p in parts) + "</tr>"
        facts[0] = "<table>" + header
        w(
            f"<div class='feature'><div>{plot or '<p class=muted>no reference bins for ' + _esc(column) + '</p>'}</div>"
            f"<div><h3>{_esc(column)}</h3>{''.join(facts)}</div></div>"
        )
    return out


def _predictions(prediction_bins: Mapping[str, Bins], st: _Stats, parts: Sequence[str], colors: Mapping[str, str]) -> list[str]:
    """The prediction histograms and each output's summary."""
    out: list[str] = []
    w = out.append
    w("<h2>Predictions</h2>")
    for column, bins in prediction_bins.items():
        series = [("training reference", list(bins.reference), REFERENCE_COLOR)] if bins.reference else []
        series += [(p, _shares(st.buckets(p, "prediction", column, "histogram"), bins.labels), colors[p]) for p in parts]
        w(f"<div class='plot'>{_bars(f'{column}: histogram', bins.labels, series, column, drop_empty=False)}</div>")
    w(
        "<table><tr><th class='l'>output</th><th class='l'>partition</th><th>mean</th><th>stddev</th><th>min</th><th>max</th><th>positive rate</th></tr>"
    )
    for column in st.columns("prediction"):
        for p in parts:
            w(
                f"<tr><td class='l'>{_esc(column)}</td><td class='l'>{_esc(p)}</td>"
                + "".join(
                    f"<td>{_fmt(st.value(p, 'prediction', column, m))}</td>"
                    for m in ("mean", "stddev", "min", "max", "positive_rate")
                )
                + "</tr>"
            )
    w("</table>")
    return out


def render(
    cfg: JobConfig,
    record: RunRecord,
    rows: Sequence[Row],
    feature_bins: Mapping[str, Bins],
    prediction_bins: Mapping[str, Bins],
    features: Sequence[str],
    sections: Sequence[str] = (),
) -> str:
    """The report's HTML: run facts, counts, gate results, drift per feature, each feature's
    distribution against the reference, the prediction histograms, then ``sections`` (HTML)."""
    parts = (st := _Stats(rows)).partitions
    colors = {p: COLORS[i % len(COLORS)] for i, p in enumerate(parts)}
    gate_failed = any(r["scope"] == "gate" and r["bucket"] == "fail" for r in rows)
    status_class = "ok" if record.status == "succeeded" and not gate_failed else "warn" if record.status == "succeeded" else "bad"
    out = [
        *_header(cfg, record, gate_failed, status_class),
        *_counts(st, parts),
        *_gate(cfg, rows, st, parts),
        *_drift(st, parts),
        *_features(features, feature_bins, st, parts, colors),
        *_predictions(prediction_bins, st, parts, colors),
        *sections,
    ]
    out.append(f"<p class='muted'>Generated by LakeScore at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC.</p></body></html>")
    return "\n".join(out)
