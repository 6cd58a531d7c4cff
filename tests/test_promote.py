"""lakescore-promote against a real (sqlite) MLflow registry: the champion alias moves forward and
back, guarded by the stats table's shadow comparisons, and every move lands in the model-events table."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import uuid

import pytest
from pyspark.sql import types as T

from jobs.model.events import EVENTS_SCHEMA, read_events
from jobs.quality.evaluation_table import write_evaluation
from jobs.quality.metrics import MetricValue, metric_rows
from jobs.quality.stats_table import write_stats
from jobs.tables import write_table
from jobs.tools.promote import main
from tests.helpers import job_config

DAYS = [dt.date(2024, 6, d) for d in range(1, 6)]
T0 = dt.datetime(2024, 6, 10, 8, 0, tzinfo=dt.UTC)
DS = T.StructField("ds", T.DateType())
SCORED_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.LongType()),
        T.StructField("probability", T.DoubleType()),
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.StringType()),
        DS,
    ]
)


@pytest.fixture
def promo(tmp_path, registry, spark):
    """A model of its own in the suite's registry (the demo model's files as versions 1 and 2),
    @champion on 1 and @challenger on 2, and a job config scoring it: (conf, name, client, tmp_path).

    The shared demo model's aliases are never touched: other tests score its @champion."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry["tracking_uri"], registry_uri=registry["tracking_uri"])
    source = client.get_model_version(registry["name"], registry["version"]).source
    name = f"promote_{uuid.uuid4().hex[:10]}"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=source, run_id=registry["run_id"])
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    model = {
        "uri": f"models:/{name}@champion",
        "tracking_uri": registry["tracking_uri"],
        "challengers": [f"models:/{name}@challenger"],
    }
    conf = job_config(tmp_path, registry, model=model, engine="embedded")
    return conf, name, client, tmp_path


def champion(client, name) -> str:
    return str(client.get_registered_model(name).aliases.get("champion"))


def comparison_rows(version, days, run_id, at, value, job="churn") -> list[dict]:
    """Stats rows of scope comparison for ``version``: one plain metric and one bucketed per day."""
    rows = []
    for day in days:
        common = {"run_id": run_id, "job": job, "partition": f"ds={day}", "computed_at": at, "model_version": version, "ds": day}
        rows.append(
            {**common, "scope": "comparison", "column": "probability", "metric": "mean_abs_diff", "bucket": None, "value": value}
        )
        rows.append(
            {**common, "scope": "comparison", "column": "probability", "metric": "agreement", "bucket": "0.5", "value": 0.9}
        )
    return rows


def write_comparisons(spark, tmp_path, rows, run_id) -> None:
    write_stats(spark, str(tmp_path / "stats"), "embedded", rows, [DS], run_id)


def write_scored(spark, tmp_path, by_version: dict[str, list[dt.date]]) -> None:
    rows = [
        (i, 0.5, "m", version, day)
        for version, days in by_version.items()
        for day in days
        for i in range(3)  # several rows per partition: each partition is listed once
    ]
    df = spark.createDataFrame(rows, SCORED_SCHEMA)
    write_table(df, str(tmp_path / "scored"), "embedded", mode="overwrite", partition_by=["ds"])


def write_labelled(spark, tmp_path, day, maturity, coverage, paired, own) -> None:
    """One partition of the evaluation table as lakescore-evaluate writes it: version 2's paired
    metrics against champion 1, each version's own (``own``: {version: metrics}), and rows the
    evidence leaves out (counts, statistics, other metrics, another job, another version)."""
    common = {"run_id": f"eval-{day.day}", "job": "churn", "partition": f"ds={day}", "model_name": "m", "maturity": maturity}
    common |= {"labels_version": 4, "label_coverage": coverage, "as_of": dt.date(2024, 7, 12), "computed_at": T0, "ds": day}
    challenger, champion_ = {"role": "challenger", "model_version": "2"}, {"role": "champion", "model_version": "1"}
    rows = [{**challenger, **r} for r in metric_rows(paired, "probability", "paired")]
    rows += [
        {**challenger, **r, "metric": "mcnemar_n01", "bucket": None} for r in metric_rows(paired[:1], "probability", "paired")
    ]
    rows += [{**challenger, **r, "model_version": "3"} for r in metric_rows(paired, "probability", "paired")]
    for version, metrics in own.items():
        role = challenger if version == "2" else champion_
        rows += [{**role, **r} for r in metric_rows([*metrics, MetricValue("f1", 0.5)], "probability", "evaluation")]
    rows += [{**champion_, **r} for r in metric_rows([MetricValue("scored_rows", 100.0)], "*", "evaluation")]
    rows = [{**common, **r} for r in rows] + [{**common, **rows[0], "job": "other"}]
    paths = (str(tmp_path / "stats_evaluation"), str(tmp_path / "stats_evaluation_history"))
    write_evaluation(spark, paths, "embedded", rows, [DS], {"ds": day}, f"ds={day}", f"eval-{day.day}")


def labelled_on_three_days(spark, tmp_path) -> None:
    """Two final days (the newer written first) and a provisional one whose paired metrics are undefined."""
    delta = MetricValue("delta_roc_auc", 0.005, lower=-0.01, upper=0.02, error_bound=0.001)
    own = {"2": [MetricValue("roc_auc", 0.8, error_bound=0.001)]}
    write_labelled(spark, tmp_path, DAYS[1], "final", 0.92, [MetricValue("mcnemar_p_value", 0.2), delta], own)
    delta = MetricValue("delta_roc_auc", 0.021, lower=0.004, upper=0.038, error_bound=0.001)
    own = {
        "2": [MetricValue("roc_auc", 0.83, 0.8, 0.86, error_bound=0.001), MetricValue("accuracy", 0.78, 0.75, 0.81)],
        "1": [MetricValue("roc_auc", 0.81, 0.78, 0.84, error_bound=0.001), MetricValue("accuracy", 0.76, 0.73, 0.79)],
    }
    write_labelled(spark, tmp_path, DAYS[0], "final", 0.95, [MetricValue("mcnemar_p_value", 0.0312), delta], own)
    undefined = [MetricValue(m, None, reason="no labelled row yet") for m in ("mcnemar_p_value", "delta_roc_auc")]
    write_labelled(spark, tmp_path, DAYS[2], "provisional", 0.0, undefined, {})


def events_path(tmp_path) -> str:
    return str(tmp_path / "runs_model_events")


def shadow_scored_on_four_days(spark, tmp_path) -> None:
    """Version 2 compared on days 1-2 by an older run and on days 3-4 by the latest; rows another
    job, another scope or another version wrote must not count."""
    rows = comparison_rows("2", DAYS[:2], "run-old", T0, 0.2)
    rows += comparison_rows("2", DAYS[2:4], "run-new", T0 + dt.timedelta(days=1), 0.05)
    rows += comparison_rows("2", [DAYS[4]], "run-other-job", T0 + dt.timedelta(days=2), 0.3, job="other")
    rows += comparison_rows("3", [DAYS[4]], "run-v3", T0 + dt.timedelta(days=2), 0.3)
    rows += [{**r, "scope": "challenger"} for r in comparison_rows("2", [DAYS[4]], "run-ch", T0 + dt.timedelta(days=3), 0.4)]
    write_comparisons(spark, tmp_path, rows, "setup")


def test_promote_moves_champion_to_challenger_and_logs_the_event(promo, spark, capsys, monkeypatch):
    conf, name, client, tmp_path = promo
    shadow_scored_on_four_days(spark, tmp_path)
    monkeypatch.setenv("LAKESCORE_USER", "alice")

    assert main(["--conf", conf, "--to", "challenger", "--reason", "AUC +0.02"]) == 0

    assert champion(client, name) == "2"
    [event] = read_events(events_path(tmp_path), "churn", name, "champion")
    assert (event.action, event.from_version, event.to_version) == ("promote", "1", "2")
    assert (event.job, event.model_name, event.alias, event.reason, event.user, event.forced) == (
        "churn",
        name,
        "champion",
        "AUC +0.02",
        "alice",
        False,
    )
    assert len(event.event_id) == 32 and event.at.tzinfo is not None
    assert abs((dt.datetime.now(dt.UTC) - event.at).total_seconds()) < 120
    # only the latest run's comparison rows; the count covers every run of this job and version
    assert json.loads(event.evidence) == {
        "version": "2",
        "other_version": "1",
        "partitions_shadow_scored": 4,
        "min_partitions": 3,
        "run_id": "run-new",
        "computed_at": (T0 + dt.timedelta(days=1)).isoformat(),
        "comparison": {
            f"ds={day}": {"probability": {"mean_abs_diff": 0.05, "agreement/0.5": 0.9}} for day in ("2024-06-03", "2024-06-04")
        },
        "labels": {"table": str(tmp_path / "stats_evaluation"), "version": "2", "final_partitions": 0, "partitions": {}},
    }
    out = capsys.readouterr().out
    assert f"promoted {name}@champion: version 1 -> 2 by alice, reason: AUC +0.02" in out
    assert "no label-based comparison yet of version 2 in " in out and "lakescore-evaluate writes it once labels land" in out


def test_printed_partitions_and_backfill_command_are_those_the_outgoing_version_scored(promo, spark, capsys):
    conf, _, _, tmp_path = promo
    shadow_scored_on_four_days(spark, tmp_path)
    write_scored(spark, tmp_path, {"1": [DAYS[3], DAYS[0], DAYS[1]], "0": [DAYS[2]], "2": [DAYS[4]]})

    assert main(["--conf", conf, "--to", "challenger", "--set", "promotion.min_partitions=2"]) == 0

    lines = capsys.readouterr().out.splitlines()
    listed = next(line for line in lines if line.startswith("partitions of "))
    assert listed.endswith("scored by the outgoing version 1: ds=2024-06-01 ds=2024-06-02 ds=2024-06-04")
    command = next(line for line in lines if line.startswith("rescore them"))
    assert command.endswith(
        f"spark-submit jobs/score.py --conf {conf} --set promotion.min_partitions=2 "
        "--partition ds=2024-06-01 --partition ds=2024-06-02 --partition ds=2024-06-04"
    )


def test_guard_refuses_a_version_shadow_scored_on_too_few_partitions(promo, spark, capsys):
    conf, name, client, tmp_path = promo
    write_comparisons(spark, tmp_path, comparison_rows("2", DAYS[:2], "run-a", T0, 0.1), "run-a")

    assert main(["--conf", conf, "--to", "challenger"]) == 2

    err = capsys.readouterr().err
    assert "shadow-scored on 2 partition(s)" in err and "needs 3" in err and "--force" in err
    assert champion(client, name) == "1"
    assert read_events(events_path(tmp_path), "churn", name, "champion") == []


def test_force_overrides_the_guard_and_is_recorded(promo, spark):
    conf, name, client, tmp_path = promo
    write_comparisons(spark, tmp_path, comparison_rows("2", DAYS[:1], "run-a", T0, 0.1), "run-a")

    assert main(["--conf", conf, "--to", "2", "--force"]) == 0

    assert champion(client, name) == "2"
    [event] = read_events(events_path(tmp_path), "churn", name, "champion")
    assert (event.to_version, event.forced) == ("2", True)
    evidence = json.loads(event.evidence)
    assert (evidence["partitions_shadow_scored"], evidence["min_partitions"], evidence["run_id"]) == (1, 3, "run-a")


def test_rollback_returns_to_the_previous_champion_and_logs_it(promo, spark, capsys):
    conf, name, client, tmp_path = promo
    shadow_scored_on_four_days(spark, tmp_path)
    write_scored(spark, tmp_path, {"1": [DAYS[0]], "2": [DAYS[1], DAYS[2]]})
    assert main(["--conf", conf, "--to", "challenger"]) == 0
    capsys.readouterr()

    assert main(["--conf", conf, "--rollback", "--reason", "complaints"]) == 0

    assert champion(client, name) == "1"
    promoted, rolled_back = read_events(events_path(tmp_path), "churn", name, "champion")
    assert (promoted.action, promoted.from_version, promoted.to_version) == ("promote", "1", "2")
    assert (rolled_back.action, rolled_back.from_version, rolled_back.to_version) == ("rollback", "2", "1")
    assert (rolled_back.reason, rolled_back.forced) == ("complaints", False)
    evidence = json.loads(rolled_back.evidence)
    assert (evidence["version"], evidence["run_id"], evidence["partitions_shadow_scored"]) == ("2", "run-new", 4)
    out = capsys.readouterr().out
    assert "rolled back" in out and "version 2 -> 1" in out
    assert "--partition ds=2024-06-02 --partition ds=2024-06-03" in out  # the outgoing version 2's partitions


def test_rollback_without_history_is_a_usage_error(promo, capsys):
    conf, name, client, tmp_path = promo

    assert main(["--conf", conf, "--rollback"]) == 2

    err = capsys.readouterr().err
    assert f"no earlier champion recorded in {events_path(tmp_path)}" in err
    assert champion(client, name) == "1"


def test_moving_to_the_current_champion_is_a_usage_error(promo, capsys):
    conf, name, _, tmp_path = promo

    assert main(["--conf", conf, "--to", "1", "--force"]) == 2

    assert "version 1 of" in capsys.readouterr().err
    assert read_events(events_path(tmp_path), "churn", name, "champion") == []


def test_a_version_that_does_not_exist_is_a_usage_error(promo, capsys):
    conf, name, client, _ = promo

    assert main(["--conf", conf, "--to", "7", "--force"]) == 2

    assert f"models:/{name}/7 does not resolve" in capsys.readouterr().err
    assert champion(client, name) == "1"


def test_a_model_uri_that_is_not_an_alias_is_a_usage_error(promo, capsys):
    conf, name, _, _ = promo

    assert main(["--conf", conf, "--set", f"model.uri=models:/{name}/1", "--to", "challenger"]) == 2

    err = capsys.readouterr().err
    assert f"{conf}: model.uri:" in err and "models:/NAME@ALIAS" in err


def test_a_challenger_of_another_model_is_a_usage_error(promo, capsys, registry):
    conf, name, client, _ = promo
    other = f"models:/{registry['name']}@champion"

    assert main(["--conf", conf, "--set", f"model.challengers=['{other}']", "--to", "challenger"]) == 2

    assert "model.challengers[0]" in capsys.readouterr().err
    assert champion(client, name) == "1"


def test_dry_run_prints_the_move_and_changes_nothing(promo, spark, capsys):
    conf, name, client, tmp_path = promo
    shadow_scored_on_four_days(spark, tmp_path)
    write_scored(spark, tmp_path, {"1": [DAYS[0]]})

    assert main(["--conf", conf, "--to", "challenger", "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert f"would promote {name}@champion: version 1 -> 2" in out and "--partition ds=2024-06-01" in out
    assert champion(client, name) == "1"
    assert read_events(events_path(tmp_path), "churn", name, "champion") == []


def test_a_failed_append_moves_the_alias_back_and_exits_1(promo, spark, capsys, monkeypatch):
    conf, name, client, _ = promo
    calls = []

    def failing_append(*args):
        calls.append(champion(client, name))  # the alias had moved when the append ran
        raise OSError("disk full")

    monkeypatch.setattr("jobs.model.promote.append_event", failing_append)

    assert main(["--conf", conf, "--to", "challenger", "--force"]) == 1

    assert calls == ["2"]
    assert champion(client, name) == "1"
    assert "moved back to version 1" in capsys.readouterr().err


def test_events_table_is_readable_by_delta_rs_and_duckdb(promo, spark, engine):
    import duckdb
    from deltalake import DeltaTable

    conf, name, _, tmp_path = promo
    token_url = "https://host/report?token=s3cr3t"
    assert main(["--conf", conf, "--set", f"engine={engine}", "--to", "2", "--force", "--reason", f"see {token_url}"]) == 0

    table = DeltaTable(events_path(tmp_path)).to_pyarrow_table()
    assert table.schema.names == EVENTS_SCHEMA.names
    [row] = table.to_pylist()
    assert (row["model_name"], row["from_version"], row["to_version"], row["forced"]) == (name, "1", "2", True)
    assert row["reason"] == "see https://host/report?token=***"  # no secret stored

    con = duckdb.connect()
    con.register("events", DeltaTable(events_path(tmp_path)).to_pyarrow_dataset())  # as jobs.tools.sql reads tables
    assert con.sql("select action, from_version, to_version, forced from events").fetchall() == [("promote", "1", "2", True)]


def test_an_unreachable_registry_exits_1_quickly(tmp_path, registry, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    model = {
        "uri": "models:/lakescore_churn@champion",
        "tracking_uri": f"http://user:hunter2@127.0.0.1:{port}",
        "registry_timeout_seconds": 1,
    }
    conf = job_config(tmp_path, registry, model=model)

    started = time.monotonic()
    assert main(["--conf", conf, "--to", "3"]) == 1

    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert "did not answer" in err and "hunter2" not in err


def test_promotion_evidence_includes_the_label_based_comparison(promo, spark, capsys):
    conf, name, _, tmp_path = promo
    shadow_scored_on_four_days(spark, tmp_path)
    labelled_on_three_days(spark, tmp_path)

    assert main(["--conf", conf, "--to", "challenger"]) == 0

    [event] = read_events(events_path(tmp_path), "churn", name, "champion")
    labels = json.loads(event.evidence)["labels"]
    assert (labels["table"], labels["version"], labels["final_partitions"]) == (str(tmp_path / "stats_evaluation"), "2", 2)
    assert list(labels["partitions"]) == ["ds=2024-06-01", "ds=2024-06-02", "ds=2024-06-03"]  # oldest first
    cell = {"value": 0.83, "lower": 0.8, "upper": 0.86, "error_bound": 0.001}
    assert labels["partitions"]["ds=2024-06-01"] == {
        "maturity": "final",
        "label_coverage": 0.95,
        "run_id": "eval-1",
        "computed_at": T0.isoformat(),
        "mcnemar_p_value": {"value": 0.0312},
        "delta_roc_auc": {"value": 0.021, "lower": 0.004, "upper": 0.038, "error_bound": 0.001},
        "versions": {
            "2": {"role": "challenger", "roc_auc": cell, "accuracy": {"value": 0.78, "lower": 0.75, "upper": 0.81}},
            "1": {
                "role": "champion",
                "roc_auc": {**cell, "value": 0.81, "lower": 0.78, "upper": 0.84},
                "accuracy": {"value": 0.76, "lower": 0.73, "upper": 0.79},
            },
        },
    }
    reason = {"value": None, "reason": "no labelled row yet"}
    provisional = labels["partitions"]["ds=2024-06-03"]
    assert (provisional["maturity"], provisional["mcnemar_p_value"], provisional["delta_roc_auc"]) == (
        "provisional",
        reason,
        reason,
    )
    lines = capsys.readouterr().out.splitlines()
    assert any(
        line.startswith("label-based comparison of version 2 with the champion on 3 partition(s) (2 final)") for line in lines
    )
    [first, second, third] = [line for line in lines if line.startswith("  ds=")]
    assert first == (
        "  ds=2024-06-01 final, label coverage 95.0%: McNemar p 0.0312, delta AUC +0.0210 [+0.0040, +0.0380] ±0.001; "
        "roc_auc 0.8300 [0.8000, 0.8600] ±0.001 (version 2), accuracy 0.7800 [0.7500, 0.8100] (version 2), "
        "roc_auc 0.8100 [0.7800, 0.8400] ±0.001 (version 1), accuracy 0.7600 [0.7300, 0.7900] (version 1)"
    )
    assert second.startswith(
        "  ds=2024-06-02 final, label coverage 92.0%: McNemar p 0.2000, delta AUC +0.0050 [-0.0100, +0.0200]"
    )
    assert third == (
        "  ds=2024-06-03 provisional, label coverage 0.0%: McNemar p undefined (no labelled row yet), "
        "delta AUC undefined (no labelled row yet)"
    )


def test_dry_run_and_rollback_print_the_label_based_comparison(promo, spark, capsys):
    conf, name, _, tmp_path = promo
    shadow_scored_on_four_days(spark, tmp_path)
    labelled_on_three_days(spark, tmp_path)

    assert main(["--conf", conf, "--to", "challenger", "--dry-run"]) == 0
    assert "  ds=2024-06-01 final, label coverage 95.0%: McNemar p 0.0312" in capsys.readouterr().out

    assert main(["--conf", conf, "--to", "challenger"]) == 0
    assert main(["--conf", conf, "--rollback"]) == 0  # version 2's paired rows: from when it was the challenger

    _, rolled_back = read_events(events_path(tmp_path), "churn", name, "champion")
    labels = json.loads(rolled_back.evidence)["labels"]
    assert (labels["version"], labels["final_partitions"], len(labels["partitions"])) == ("2", 2, 3)


def test_without_an_evaluation_section_the_evidence_says_so(promo, spark, capsys):
    conf, name, _, tmp_path = promo
    shadow_scored_on_four_days(spark, tmp_path)

    assert main(["--conf", conf, "--set", "evaluation=null", "--to", "challenger"]) == 0

    [event] = read_events(events_path(tmp_path), "churn", name, "champion")
    assert json.loads(event.evidence)["labels"] is None
    assert "no label-based comparison: the job config has no evaluation section" in capsys.readouterr().out


def test_only_the_newest_labelled_partitions_are_printed_one_line_each(capsys):
    from jobs.tools.promote import LABEL_LINES, _print_labels

    cell = {"value": 0.5}
    day = {"maturity": "final", "label_coverage": 1.0, "mcnemar_p_value": cell, "delta_roc_auc": cell, "versions": {}}
    partitions = {f"ds=2024-06-{d:02}": day for d in range(1, LABEL_LINES + 3)}
    _print_labels({"table": "t", "version": "2", "final_partitions": len(partitions), "partitions": partitions})

    summary, *shown = capsys.readouterr().out.splitlines()
    assert (
        summary
        == f"label-based comparison of version 2 with the champion on {LABEL_LINES + 2} partition(s) ({LABEL_LINES + 2} final) in t; the newest {LABEL_LINES}:"
    )
    assert [line.split()[0] for line in shown] == [f"ds=2024-06-{d:02}" for d in range(3, LABEL_LINES + 3)]
    assert shown[0].endswith("McNemar p 0.5000, delta AUC +0.5000")
