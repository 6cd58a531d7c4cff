"""Window roll-ups (``--window 7d``): the metrics of several partitions from the evaluation table's
statistics summed, checked against the same metrics of the partitions' statistics merged in Python
and against scikit-learn on the union of their joined rows; a rerun replacing the window's rows,
statistics that cannot be summed, the option through the real entry point, the ``make sql`` views.

The scored tables and labels are tests/test_evaluate.py's fixtures (two days of 200 rows, champion
and challenger)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io

import pandas as pd
import pytest
from sklearn import metrics as skm

import tests.test_evaluate as base
from tests.helpers import D1, D2, delta

rival, job = base.rival, base.job  # the module-scoped fixtures, set up once for this module
AS_OF = "2024-07-02"  # day 1 is final on it (31 days, 95% labelled), day 2 provisional (half labelled)


@pytest.fixture(scope="module")
def windowed(job):
    """The evaluation job run over both days with ``--window 7d``: its exit code, what it printed, the
    evaluation table and the windows table."""
    from jobs.evaluate import main

    conf, tmp = job
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--conf", conf, "--from", D1.isoformat(), "--as-of", AS_OF, "--window", "7d"])
    return code, out.getvalue(), delta(tmp / "stats_evaluation"), delta(tmp / "stats_evaluation_windows")


def _window_value(table, role, metric, scope="evaluation", column="probability", bucket=None, size="7d"):
    rows = table[
        (table["window_size"] == size)
        & (table["role"] == role)
        & (table["scope"] == scope)
        & (table["column"] == column)
        & (table["metric"] == metric)
        & (table["bucket"].isna() if bucket is None else table["bucket"] == bucket)
    ]
    assert len(rows) == 1, (role, scope, metric, bucket, len(rows))
    return rows["value"].item()


def _merged(evaluation: pd.DataFrame, role: str, days) -> tuple[list, list]:
    """binary_metrics and paired_metrics of the role's statistics rows of ``days``, merged in Python."""
    from jobs.quality.metrics import binary_metrics, merge_statistics, paired_metrics

    mine = evaluation[(evaluation["role"] == role) & evaluation["partition"].isin([f"ds={d}" for d in days])]
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in mine.to_dict("records")]
    paired = paired_metrics(merge_statistics(rows, "probability", "paired")) if role == "challenger" else []
    return binary_metrics(merge_statistics(rows, "probability", "evaluation")), paired


def _same(got: float | None, expected: float | None) -> bool:
    return got == expected if got is None or expected is None else got == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("role", ["champion", "challenger"])
def test_a_windows_metrics_are_its_partitions_statistics_merged(windowed, role):
    code, _, evaluation, windows = windowed
    assert code == 0
    metrics, paired = _merged(evaluation, role, (D1, D2))
    for scope, expected in (("evaluation", metrics), ("paired", paired)):
        for m in expected:
            for bucket, value in ((None, m.value), ("lower", m.lower), ("upper", m.upper), ("error_bound", m.error_bound)):
                if value is not None:
                    assert _same(_window_value(windows, role, m.name, scope, bucket=bucket), value), (m.name, bucket)
    mine = windows[windows["role"] == role]
    assert set(mine["window_start"]) == {dt.date(2024, 5, 27)} and set(mine["window_end"]) == {D2}
    assert set(mine["partitions"]) == {2}
    assert set(mine["maturity"]) == {"provisional"}  # day 2 is provisional, so the window is


@pytest.mark.parametrize("role", ["champion", "challenger"])
def test_a_windows_metrics_equal_scikit_learns_on_the_union_of_its_partitions_rows(job, windowed, role):
    _, _, _, windows = windowed
    labels = base._first_labels()
    rows = pd.concat([base._joined(job[1], day, labels) for day in (D1, D2)], ignore_index=True)
    mine = rows[rows["role"] == role]
    labelled = mine[mine["churned"].notna()]
    y, p, d = labelled["churned"].astype(int), labelled["probability"], labelled["label"]
    tn, fp, fn, tp = skm.confusion_matrix(y, d, labels=[0, 1]).ravel()
    assert [_window_value(windows, role, m) for m in ("tp", "fp", "fn", "tn")] == [tp, fp, fn, tn]
    expected = {
        "accuracy": skm.accuracy_score(y, d),
        "precision": skm.precision_score(y, d),
        "recall": skm.recall_score(y, d),
        "f1": skm.f1_score(y, d),
        "log_loss": skm.log_loss(y, p.clip(1e-15, 1 - 1e-15)),
        "brier": skm.brier_score_loss(y, p),
        "label_coverage": len(labelled) / len(mine),
    }
    for metric, value in expected.items():
        assert _window_value(windows, role, metric) == pytest.approx(value, rel=1e-9), metric
    assert list(windows[windows["role"] == role]["label_coverage"].unique()) == [pytest.approx(expected["label_coverage"])]
    auc, bound = _window_value(windows, role, "roc_auc"), _window_value(windows, role, "roc_auc", bucket="error_bound")
    assert abs(auc - skm.roc_auc_score(y, p)) <= bound + 1e-12
    scored = len(delta(job[1] / ("scored" if role == "champion" else "scored_shadow")))
    assert _window_value(windows, role, "scored_rows", column="*") == scored  # the counts are summed too


def test_the_job_prints_each_versions_window_metrics(windowed, rival):
    _, said, _, windows = windowed
    assert f"window 7d     2024-05-27 to {D2}, 2 partitions" in said
    accuracy = _window_value(windows, "challenger", "accuracy")
    line = next(x for x in said.splitlines() if f"challenger {rival.name} version {rival.version}: 2 partitions" in x)
    assert f"accuracy {accuracy:.3f} [" in line and "roc_auc " in line and "provisional" in line


def test_rolling_up_again_replaces_that_windows_rows_only(spark, job, windowed):
    from jobs.config import load_config
    from jobs.quality.windows import roll_up
    from jobs.tables import resolve_engine

    conf, tmp = job
    cfg = load_config(conf)
    engine = resolve_engine(spark, cfg.engine)
    now = dt.datetime.now(dt.UTC)
    one = roll_up(spark, cfg, engine, 1, D2, "oneday", now)
    again = roll_up(spark, cfg, engine, 7, D2, "again", now)
    assert one.partitions == [f"ds={D2}"] and again.partitions == [f"ds={D1}", f"ds={D2}"]
    table = delta(tmp / "stats_evaluation_windows")
    week = table[table["window_size"] == "7d"]
    assert set(week["run_id"]) == {"again"} and len(week) == len(windowed[3])
    day = table[table["window_size"] == "1d"]
    assert set(day["run_id"]) == {"oneday"} and set(day["window_start"]) == {D2} and set(day["partitions"]) == {1}
    metrics, _ = _merged(windowed[2], "champion", (D2,))
    for m in metrics:
        assert _same(_window_value(table, "champion", m.name, size="1d"), m.value), m.name
    assert one.models[0].metric("accuracy") == next(m for m in metrics if m.name == "accuracy")


def test_statistics_whose_constants_disagree_are_not_summed(spark):
    from jobs.quality.windows import window_statistics

    def rows(partition: str, bins: float) -> list[tuple]:
        model = ("champion", "m", "1", "evaluation", "probability")
        return [(*model, "score_bins", None, bins, partition, "final"), (*model, "tp", None, 3.0, partition, "final")]

    schema = "role string, model_name string, model_version string, scope string, column string, metric string, "
    schema += "bucket string, value double, partition string, maturity string"
    same = window_statistics(spark.createDataFrame(rows("ds=a", 1000.0) + rows("ds=b", 1000.0), schema))
    values = {r["metric"]: (r["value"], r["partitions"], r["maturity"]) for r in same}
    assert values == {"score_bins": (1000.0, 2, "final"), "tp": (6.0, 2, "final")}
    with pytest.raises(ValueError, match=r"score_bins is 500\.0 in one partition and 1000\.0 in another"):
        window_statistics(spark.createDataFrame(rows("ds=a", 1000.0) + rows("ds=b", 500.0), schema))


def test_a_window_is_a_number_of_days_and_a_bad_one_is_refused_naming_the_option(capsys):
    from jobs.evaluate import parse_args
    from jobs.quality.windows import WindowError, parse_window

    assert parse_window("7d") == 7 and parse_window("30d") == 30
    for bad in ("0d", "7", "1w", "d"):
        with pytest.raises(WindowError, match="--window"):
            parse_window(bad)
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--conf", "c.yaml", "--from", "2024-06-01", "--window", "7x"])
    assert exit_.value.code == 2 and "--window '7x': a window is a number of days" in capsys.readouterr().err
    assert parse_args(["--conf", "c.yaml", "--from", "2024-06-01"]).window_days is None


def test_make_sql_has_views_of_the_evaluation_tables(job, windowed, capsys):
    from jobs.config import load_config
    from jobs.tables import table_exists
    from jobs.tools.sql import connect, main

    conf, tmp = job
    cfg = load_config(conf)
    con = connect(cfg)
    for view, path in (("evaluation", "stats_evaluation"), ("evaluation_history", "stats_evaluation_history")):
        assert con.sql(f"select count(*) from {view}").fetchall()[0][0] == len(delta(tmp / path)), view
    views = {r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()}
    assert ("signals" in views) == table_exists(str(cfg.evaluation.signals))
    query = (
        "select role, value from evaluation_windows where window_size = '7d' and scope = 'evaluation' "
        "and metric = 'roc_auc' and bucket is null order by role"
    )
    assert main(["--conf", conf, "--csv", query]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    windows = delta(tmp / "stats_evaluation_windows")
    expected = [f"{role},{_window_value(windows, role, 'roc_auc')}" for role in ("challenger", "champion")]
    assert lines == ["role,value", *expected]
