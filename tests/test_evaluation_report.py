"""The evaluation report: one chart per metric over partitions with its intervals, provisional points
hollow, the estimate beside the realized value, undefined values as gaps with their reason, hostile
names escaped, nothing fetched; and the table it is read from and the file it is written to."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from jobs.report.evaluation import evaluation_report, evaluation_rows, write_evaluation_report

P1, P2 = "ds=2024-06-01", "ds=2024-06-02"
CHAMPION = ("champion", "churn", "3")
HOSTILE = "<script>alert(1)</script>"
CHALLENGER = ("challenger", HOSTILE, "7")
UNDEFINED = "one class only: no positives"


def _rows(partition, model, metric, value, lower=None, upper=None, scope="evaluation", maturity="final", reason=None):
    role, name, version = model
    common = {"partition": partition, "role": role, "model_name": name, "model_version": version, "scope": scope}
    common |= {"column": "probability", "metric": metric, "maturity": maturity, "labels_version": 4}
    common["label_coverage"] = 0.95 if maturity == "final" else 0.5
    cells = [(None, value), *((b, v) for b, v in (("lower", lower), ("upper", upper)) if v is not None)]
    cells += [(f"reason: {reason}", None)] if reason else []
    return [{**common, "bucket": b, "value": v} for b, v in cells]


def _estimate(partition, model, metric, estimated, realized, maturity):
    rows = [
        _rows(partition, model, metric, v, scope="estimate", maturity=maturity)[0]
        for v in (estimated, realized, realized - estimated)
    ]
    return [{**r, "bucket": b} for r, b in zip(rows, ("estimated", "realized", "error"), strict=True)]


def _evaluation_rows(estimates: bool = True) -> list[dict]:
    """Two partitions, the second provisional; champion and challenger; the challenger's recall undefined
    on the second; the paired comparison; the champion's accuracy estimated before the labels."""
    out = []
    for partition, maturity, shift in ((P1, "final", 0.0), (P2, "provisional", -0.05)):
        for model, better in ((CHAMPION, 0.0), (CHALLENGER, 0.02)):
            m = {"maturity": maturity}
            out += _rows(partition, model, "label_coverage", 0.95 if maturity == "final" else 0.5, **m)
            out += _rows(partition, model, "accuracy", 0.8 + shift + better, 0.76 + shift + better, 0.84 + shift + better, **m)
            out += _rows(partition, model, "roc_auc", 0.85 + shift + better, 0.81 + shift + better, 0.89 + shift + better, **m)
            if model == CHALLENGER and partition == P2:
                out += _rows(partition, model, "recall", None, reason=UNDEFINED, **m)
            else:
                out += _rows(partition, model, "recall", 0.6 + shift, 0.5 + shift, 0.7 + shift, **m)
        out += _rows(partition, CHALLENGER, "delta_roc_auc", 0.02, -0.01, 0.05, scope="paired", maturity=maturity)
        out += _rows(partition, CHALLENGER, "mcnemar_p_value", 0.3, scope="paired", maturity=maturity)
        if estimates:
            out += _estimate(partition, CHAMPION, "accuracy", 0.78 + shift, 0.8 + shift, maturity)
    return out


def _charts(html: str) -> dict[str, str]:
    """metric -> its chart's SVG, in the report's order."""
    return {m[1]: m[0] for m in re.finditer(r"<svg class='chart' data-metric='([^']+)'.*?</svg>", html, flags=re.S)}


@pytest.fixture(scope="module")
def report() -> str:
    signals = [{"kind": "degraded", "metric": "roc_auc", "model_version": "3", "partitions": [P1, P2], "observed": 0.8}]
    return evaluation_report(_evaluation_rows(), "churn", "run-42", "/t/labels", signals, labels_version=4)


def test_the_report_names_the_job_the_run_and_the_labels_version(report):
    assert "churn" in report and "run-42" in report and "/t/labels @ Delta version 4" in report


def test_one_chart_per_metric_in_the_report_order(report):
    expected = ["label_coverage", "accuracy", "recall", "roc_auc", "delta_roc_auc", "mcnemar_p_value"]
    assert list(_charts(report)) == expected


def test_each_value_with_an_interval_gets_its_whisker_and_provisional_points_are_hollow(report):
    rows = _evaluation_rows()
    charts = _charts(report)
    for metric, svg in charts.items():
        mine = [r for r in rows if r["metric"] == metric and r["scope"] != "estimate"]
        with_interval = {(r["partition"], r["model_name"]) for r in mine if r["bucket"] == "lower"}
        assert svg.count("class='interval'") == len(with_interval), metric
        defined = [r for r in mine if r["bucket"] is None and r["value"] is not None]
        hollow = re.findall(r"<circle class='point provisional'[^>]*fill='#fff'", svg)
        solid = re.findall(r"<circle class='point final'[^>]*fill='#(?!fff')", svg)
        assert len(hollow) == sum(r["maturity"] == "provisional" for r in defined), metric
        assert len(solid) == sum(r["maturity"] == "final" for r in defined), metric
    assert "provisional (labels still arriving)" in report  # named in the legend


def test_the_estimate_is_drawn_beside_the_realized_value(report):
    charts = _charts(report)
    accuracy = charts["accuracy"]
    assert accuracy.count("class='estimate'") == 2  # the champion's, both partitions
    assert accuracy.count("class='estimate-line'") == 1
    assert "estimated before labels 0.78" in accuracy and "error 0.02" in accuracy
    assert all("class='estimate'" not in svg for metric, svg in charts.items() if metric != "accuracy")
    plain = evaluation_report(_evaluation_rows(estimates=False), "churn", "r", "/t/labels")
    assert "class='estimate" not in plain and "estimated before labels" not in plain
    assert list(_charts(plain)) == list(charts)


def test_an_undefined_value_is_a_gap_with_its_reason_in_a_tooltip(report):
    recall = _charts(report)["recall"]
    assert recall.count("class='undefined'") == 1
    assert re.search(rf"class='undefined'[^>]*><title>[^<]*{P2}: undefined: {UNDEFINED}[^<]*</title>", recall)
    assert recall.count("class='line'") == 1  # the champion's; the challenger's one defined point has no line
    assert f"<td class='l muted'>{UNDEFINED}</td>" in report  # and in the newest partition's table


def test_the_newest_partitions_table_holds_values_intervals_maturity_and_estimates(report):
    table = report.split(f"Newest partition: {P2}", 1)[1].split("</table>", 1)[0]
    assert "provisional, coverage 50.0%" in table
    assert "<td>0.75</td><td>[0.71, 0.79]</td><td>0.73 (error 0.02)</td>" in table  # the champion's accuracy
    assert "delta_roc_auc (vs champion)" in table


def test_names_are_escaped_and_nothing_is_fetched(report):
    assert "<script" not in report.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert not re.search(r"https?://|<link|<img|<iframe|src=|href=|@import|url\(", report, flags=re.I)


def test_the_signals_are_listed_and_an_empty_table_says_so(report):
    section = report.split("<h2>Retraining signals</h2>", 1)[1]
    assert "degraded" in section and f"{P1}, {P2}" in section
    empty = evaluation_report([], "churn", "r", "/t/labels")
    assert "No evaluation rows" in empty and "Retraining signals" not in empty and "<svg" not in empty


@pytest.mark.parametrize("engine", ["embedded", "native"])
def test_the_report_is_read_from_the_evaluation_table_and_written_to_the_reports_folder(spark, tmp_path, engine):
    """The rows written by the evaluation's own writer, with sufficient statistics and counts the
    report must leave out, read back by Spark; the report lands in <output.reports>."""
    from pyspark.sql import types as T

    from jobs.config import parse_config
    from jobs.quality.evaluation_table import write_evaluation
    from tests.helpers import require_native

    if engine == "native":
        require_native(spark)
    raw = {
        "name": "churn",
        "input": {"path": str(tmp_path / "customers"), "partition_by": ["ds"]},
        "keys": ["customer_id"],
        "model": {"uri": "models:/churn@champion"},
        "output": {k: str(tmp_path / k) for k in ("scored", "quarantine", "stats", "runs", "reports")},
        "evaluation": {"labels": str(tmp_path / "labels"), "label": "churned"},
    }
    cfg = parse_config(raw, "x.yaml")
    assert evaluation_rows(spark, str(cfg.evaluation.output), engine) == []  # no table yet
    wanted = _evaluation_rows()
    stats = [{**wanted[0], "metric": "tp", "value": 12.0}, {**wanted[0], "metric": "score_hist_pos", "bucket": "3", "value": 2.0}]
    stats += [{**wanted[0], "column": "*", "metric": "scored_rows", "value": 200.0}]
    field = T.StructField("ds", T.DateType())
    paths = (str(cfg.evaluation.output), str(cfg.evaluation.history))
    now = dt.datetime(2024, 7, 2, tzinfo=dt.UTC)
    for partition in (P1, P2):
        day = dt.date.fromisoformat(partition[3:])
        common = {"run_id": "run-42", "job": "churn", "as_of": dt.date(2024, 7, 2), "computed_at": now, "ds": day}
        mine = [{**r, **common} for r in wanted + stats if r["partition"] == partition]
        write_evaluation(spark, paths, engine, mine, [field], {"ds": day}, partition, "run-42")

    got = evaluation_rows(spark, paths[0], engine)
    key = lambda r: tuple(str(r[k]) for k in ("partition", "role", "scope", "metric", "bucket"))  # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, wanted))
    path = write_evaluation_report(spark, cfg, engine, "run-42", 4, signals=())
    assert path == f"{tmp_path / 'reports'}/evaluation-run-42.html"
    text = open(path, encoding="utf-8").read()
    assert list(_charts(text)) == list(_charts(evaluation_report(wanted, "churn", "run-42", "/l")))
    assert f"{tmp_path / 'labels'} @ Delta version 4" in text
