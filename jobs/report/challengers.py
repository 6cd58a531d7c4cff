"""The run report's challenger section: each challenger beside the champion, partition by partition,
from the run's ``challenger`` and ``comparison`` statistics rows, and what became of each."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from jobs.report.html import COLORS, REFERENCE_COLOR, _bars, _esc, _fmt, _psi_class, _shares
from transforms.stats import Bins, fixed_bins

Row = Mapping[str, Any]
SCOPES = ("challenger", "comparison")
# a table's header and its cells' (scope, metric, bucket), for decision outputs and for scores
DECISION_COLUMNS = (
    "<th>positive rate, champion</th><th>challenger</th><th>agreement</th><th>&kappa;</th><th>flips 0&rarr;1</th><th>flips 1&rarr;0</th>",
    (
        ("prediction", "positive_rate", None),
        ("challenger", "positive_rate", None),
        ("comparison", "agreement", None),
        ("comparison", "kappa", None),
        ("comparison", "flips", "0->1"),
        ("comparison", "flips", "1->0"),
    ),
)
SCORE_COLUMNS = (
    "<th>mean, champion</th><th>challenger</th><th>mean |&Delta;|</th><th>max |&Delta;|</th><th>Pearson r</th><th>PSI</th>",
    (
        ("prediction", "mean", None),
        ("challenger", "mean", None),
        ("comparison", "mean_abs_diff", None),
        ("comparison", "max_abs_diff", None),
        ("comparison", "pearson", None),
        ("comparison", "psi", None),
    ),
)


def _index(rows: Sequence[Row]) -> dict[tuple[Any, ...], dict[str | None, Any]]:
    """(version or None for the champion, partition, scope, column, metric) -> {bucket: value}."""
    by: dict[tuple[Any, ...], dict[str | None, Any]] = defaultdict(dict)
    for r in rows:
        version = r.get("model_version") if r["scope"] in SCOPES else None
        by[(version, r["partition"], r["scope"], r["column"], r["metric"])][r["bucket"]] = r["value"]
    return by


def challenger_section(
    statuses: Sequence[Mapping[str, Any]], rows: Sequence[Row], prediction_bins: Mapping[str, Bins]
) -> list[str]:
    """The HTML of the section; nothing when the run had no challenger configured.

    ``statuses``: the ledger's ``challengers`` entries (reference, version, status, error, failed_partitions).
    """
    if not statuses:
        return []
    by = _index(rows)
    parts = list(dict.fromkeys(r["partition"] for r in rows))
    out = [
        "<h2>Challengers</h2><p class='muted'>Each challenger scored the same rows as the champion in the same pass "
        "(its scores are in the shadow table, the champion's in the scored table). Agreement and Cohen's &kappa; compare "
        "decisions; flips count rows whose decision changed (champion &rarr; challenger); mean |&Delta;|, Pearson r and PSI "
        "compare scores.</p>"
    ]
    w = out.append
    for status in statuses:
        version = status.get("version")
        head = f"{_esc(status['reference'])} (version {_esc(version or '-')})"
        if status["status"] != "scored":
            where = ", ".join(status.get("failed_partitions") or []) or "the whole run"
            w(f"<h3>{head} <span class='fail'>failed</span></h3><p>{_esc(status.get('error') or '')} (in {_esc(where)})</p>")
        else:
            w(f"<h3>{head} <span class='pass'>scored</span></h3>")
        if version is None:
            continue
        outputs = list(dict.fromkeys(c for (v, _, s, c, _) in by if v == version and s == "comparison"))
        for column in outputs:
            out.extend(_output(by, version, column, parts, prediction_bins.get(column)))
    return out


def _output(by, version: str, column: str, parts: Sequence[str], bins: Bins | None) -> list[str]:
    def value(p: str, scope: str, metric: str, bucket: str | None = None, v: str | None = version) -> Any:
        return by.get((v if scope in SCOPES else None, p, scope, column, metric), {}).get(bucket)

    decision = any(value(p, "comparison", "agreement") is not None for p in parts)
    out: list[str] = []
    head, metrics = DECISION_COLUMNS if decision else SCORE_COLUMNS
    cells = lambda p: [value(p, scope, metric, bucket) for scope, metric, bucket in metrics]  # noqa: E731
    if not decision:
        bins = bins or fixed_bins(column)
        for i, p in enumerate(parts):
            series = [
                ("champion", _shares(by.get((None, p, "prediction", column, "histogram"), {}), bins.labels), REFERENCE_COLOR),
                (
                    f"challenger v{version}",
                    _shares(by.get((version, p, "challenger", column, "histogram"), {}), bins.labels),
                    COLORS[i % len(COLORS)],
                ),
            ]
            out.append(
                f"<div class='plot'>{_bars(f'{column}, {p}: champion vs challenger', bins.labels, series, column, drop_empty=False)}</div>"
            )
    out.append(f"<table><tr><th class='l'>{_esc(column)}</th>{head}</tr>")
    for p in parts:
        values = cells(p)
        tds = "".join(
            f"<td class='{_psi_class(x) if not decision and k == 5 else ''}'>{_fmt(x)}</td>" for k, x in enumerate(values)
        )
        out.append(f"<tr><td class='l'>{_esc(p)}</td>{tds}</tr>")
    out.append("</table>")
    return out
