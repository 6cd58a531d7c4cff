"""The scoring job through its real entry point, on a tiny demo table."""

import datetime as dt
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from deltalake import DeltaTable

from jobs.score import main
from tests.helpers import ALLOWED_PLANS, D1, D2, REPO, delta, expected_quarantine, job_config, ledger, run_job, write_demo_input


def test_job_scores_a_partition_and_accounts_for_every_row(demo, registry):
    tmp_path, conf, source = demo
    assert main(["--conf", conf, "--partition", "ds=2024-06-02"]) == 0

    day = source[source["ds"] == D2]
    bad = expected_quarantine(day)
    assert bad.sum() > 0 and (~bad).sum() > 0  # the demo data exercises both paths
    scored, quarantined = delta(tmp_path / "scored"), delta(tmp_path / "quarantine")
    assert set(scored["ds"]) == {D2} and set(quarantined["ds"]) == {D2}
    assert sorted(scored["customer_id"]) == sorted(day.loc[~bad, "customer_id"].astype("int64"))
    assert len(quarantined) == bad.sum()
    assert all(len(reasons) > 0 for reasons in quarantined["quarantine_reasons"])

    # outputs typed by the model signature, lineage pinned to the version the alias resolved to
    assert scored["probability"].between(0, 1).all()
    assert (scored["label"] == (scored["probability"] >= 0.5).astype("int64")).all()
    assert set(scored["model_name"]) == {registry["name"]} and set(scored["model_version"]) == {registry["version"]}
    assert list(scored.columns) == [
        "customer_id",
        "region",
        "probability",
        "label",
        "model_name",
        "model_version",
        "run_id",
        "scored_at",
        "ds",
    ]

    runs = ledger(tmp_path / "runs")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert (run.status, run.exit_code, run.model_version, run.input_version) == ("succeeded", 0, registry["version"], 0)
    assert (run.rows_in, run.rows_scored, run.rows_quarantined) == (len(day), (~bad).sum(), bad.sum())
    assert run.model_resolved_uri == f"models:/{registry['name']}/{registry['version']}"
    assert set(scored["run_id"]) == {run.run_id}

    stats = delta(tmp_path / "stats")
    rows = stats[stats["scope"] == "rows"].set_index("metric")["value"]
    assert rows["rows_in"] == len(day) and rows["rows_scored"] == (~bad).sum()
    hist = stats[(stats["metric"] == "histogram") & (stats["column"] == "probability")]
    assert hist["value"].sum() == (~bad).sum()
    nulls = stats[(stats["metric"] == "null_count")].set_index("column")["value"]
    assert nulls["region"] == day["region"].isna().sum()


def test_rerun_of_same_partition_replaces_rows_and_leaves_other_partitions(demo):
    tmp_path, conf, source = demo
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    first_d1 = delta(tmp_path / "scored", ds=D1)
    assert main(["--conf", conf, "--partition", "ds=2024-06-02"]) == 0
    assert main(["--conf", conf, "--partition", "ds=2024-06-02"]) == 0

    scored = delta(tmp_path / "scored")
    d2 = scored[scored["ds"] == D2]
    expected = (~expected_quarantine(source[source["ds"] == D2])).sum()
    assert len(d2) == expected and d2["customer_id"].is_unique  # no duplicates after the rerun
    assert d2["run_id"].nunique() == 1  # all from the latest run
    pd.testing.assert_frame_equal(  # ds=2024-06-01 untouched by the two later runs
        scored[scored["ds"] == D1].sort_values("customer_id").reset_index(drop=True),
        first_d1.sort_values("customer_id").reset_index(drop=True),
    )
    quarantine = delta(tmp_path / "quarantine", ds=D2)
    assert len(quarantine) == expected_quarantine(source[source["ds"] == D2]).sum()
    assert len(ledger(tmp_path / "runs")) == 3


def test_unknown_model_alias_is_a_usage_error_and_writes_no_scores(demo):
    tmp_path, conf, _ = demo
    assert main(["--conf", conf, "--partition", "ds=2024-06-01", "--set", "model.uri=models:/lakescore_churn@nope"]) == 2
    assert not DeltaTable.is_deltatable(str(tmp_path / "scored"))
    run = ledger(tmp_path / "runs").iloc[0]
    assert run.status == "rejected" and "models:/lakescore_churn@nope does not resolve" in run.error


def test_bad_config_exits_2_naming_file_and_key_before_spark_starts(tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text(yaml.safe_dump({"name": "x", "engine": "turbo"}))
    proc = run_job("--conf", str(conf), "--partition", "ds=2024-06-01")
    assert proc.returncode == 2
    assert f"{conf}: engine: expected one of auto, embedded, native, got 'turbo'" in proc.stderr
    assert "SparkContext" not in proc.stderr


def test_missing_argument_is_a_usage_error():
    proc = run_job("--conf", "conf/jobs/churn.yaml")
    assert proc.returncode == 2 and "--partition" in proc.stderr


@pytest.mark.e2e
def test_contract_break_exits_2_naming_the_column_and_writes_no_data(tmp_path, registry):
    from deltalake import write_deltalake

    source = write_demo_input(tmp_path / "full", days=1, rows_per_day=50)
    write_deltalake(str(tmp_path / "customers"), source.drop(columns=["region"]), partition_by=["ds"])
    proc = run_job("--conf", job_config(tmp_path, registry), "--partition", "ds=2024-06-01")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"input table {tmp_path / 'customers'} breaks the contract: column 'region' is missing" in proc.stdout
    assert not DeltaTable.is_deltatable(str(tmp_path / "scored"))
    assert not DeltaTable.is_deltatable(str(tmp_path / "quarantine"))


@pytest.mark.e2e
@pytest.mark.slow
def test_spark_submit_runs_the_job_end_to_end(tmp_path, registry):
    write_demo_input(tmp_path / "customers", days=1, rows_per_day=200)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    spark_submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    proc = subprocess.run(
        [
            spark_submit,
            "--master",
            "local[2]",
            "jobs/score.py",
            "--conf",
            job_config(tmp_path, registry),
            "--partition",
            "ds=2024-06-01",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "succeeded (exit 0)" in proc.stdout and "rows in           200" in proc.stdout
    runs = ledger(tmp_path / "runs")
    assert runs.iloc[0].rows_in == 200 == runs.iloc[0].rows_scored + runs.iloc[0].rows_quarantined


# --- train/serve parity: the pipeline the model was trained with ---------------------------------


def pipeline_b():
    """The demo pipeline (A, the one the registry's model was trained with) with support_calls clipped to 0."""
    import copy

    from jobs.demo.train import DEMO_PIPELINE

    steps = copy.deepcopy(DEMO_PIPELINE)
    assert steps[3]["step"] == "clip" and steps[3]["column"] == "support_calls"
    steps[3]["upper"] = 0
    return steps


@pytest.fixture
def small(tmp_path, registry, spark):
    source = write_demo_input(tmp_path / "customers", days=1, rows_per_day=120)
    return tmp_path, source


def test_model_carries_the_pipeline_it_was_trained_with(model_dir):
    import json

    from jobs.demo.train import DEMO_PIPELINE

    spec = json.loads((REPO / model_dir / "lakescore" / "pipeline.json").read_text())
    assert [s["step"] for s in spec["steps"]] == [s["step"] for s in DEMO_PIPELINE]


def test_model_carries_its_training_reference_with_bins_frequencies_and_fitted_values(model_dir):
    import json

    from jobs.demo.train import FEATURES

    ref = json.loads((REPO / model_dir / "lakescore" / "reference.json").read_text())
    assert set(ref["features"]) == set(FEATURES)
    charges = ref["features"]["monthly_charges"]
    assert len(charges["bins"]["edges"]) == 11 and sum(charges["bins"]["proportions"]) == pytest.approx(1.0)
    assert set(ref["features"]["plan"]["frequencies"]) == ALLOWED_PLANS
    (fill,) = ref["fitted"]
    assert (fill["column"], fill["statistic"]) == ("monthly_charges", "median")


def test_config_pipeline_that_differs_from_the_models_is_refused_and_nothing_is_written(small, registry, capsys):
    tmp_path, _ = small
    conf = job_config(tmp_path, registry, preprocessing=pipeline_b())
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 2
    expected = "preprocessing[3].upper: the model has 20.0, the config has 0.0"
    assert expected in capsys.readouterr().out
    assert not DeltaTable.is_deltatable(str(tmp_path / "scored"))
    assert not DeltaTable.is_deltatable(str(tmp_path / "quarantine"))
    run = ledger(tmp_path / "runs").iloc[0]
    assert (run.status, run.exit_code) == ("rejected", 2) and expected in run.error and "preprocessing_override" in run.error


def test_preprocessing_override_scores_with_the_configs_pipeline_and_warns(small, registry, model_dir, capsys):
    import json

    import mlflow.pyfunc

    tmp_path, source = small
    # pipeline B clips support_calls to 0: far from the training reference, which the demo gate's
    # max_psi would withhold; this test is about the scores, so the gate only warns
    conf = job_config(tmp_path, registry, preprocessing=pipeline_b(), preprocessing_override=True, gate={"mode": "warn"})
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    assert "preprocessing_override: scoring with the config's preprocessing" in capsys.readouterr().err

    # what pipeline B makes of the good rows, written out by hand with pandas, scored by the model itself
    day = source[~expected_quarantine(source)].sort_values("customer_id")
    median = json.loads((REPO / model_dir / "lakescore" / "reference.json").read_text())["fitted"][0]["value"]
    features = pd.DataFrame(
        {
            "tenure_months": day["tenure_months"].astype("float64"),
            "monthly_charges": day["monthly_charges"].fillna(median),
            "total_charges": day["total_charges"],
            "support_calls": np.minimum(np.maximum(day["support_calls"].astype("float64"), 0), 0),
            "plan": day["plan"],
            "region": day["region"],  # the demo's regions all map to themselves
        }
    )
    expected = mlflow.pyfunc.load_model(model_dir).predict(features)["probability"].to_numpy()
    scored = delta(tmp_path / "scored").sort_values("customer_id")
    assert list(scored["customer_id"]) == list(day["customer_id"].astype("int64"))
    np.testing.assert_allclose(scored["probability"].to_numpy(), expected, rtol=1e-9)


def test_declared_contract_widens_int_to_long_and_scores(small, registry, capsys):
    tmp_path, source = small
    conf = job_config(tmp_path, registry)
    assert main(["--conf", conf, "--partition", "ds=2024-06-01", "--set", "contract.columns.tenure_months=long"]) == 0
    assert "contract: widening tenure_months from int to bigint" in capsys.readouterr().err
    assert len(delta(tmp_path / "scored")) == (~expected_quarantine(source)).sum()


def test_quarantine_table_from_before_the_reason_code_keeps_its_schema(small, registry, spark):
    from pyspark.sql import functions as F

    from jobs.tables import read_table, write_table

    tmp_path, source = small
    raw = read_table(spark, str(tmp_path / "customers"), "embedded").limit(1)
    reason = F.struct(F.lit("r").alias("rule"), F.lit("c").alias("column"), F.lit("m").alias("message"))
    old = raw.select(  # a partition written before reasons had a code, in the quarantine table's column order
        *[F.lit(dt.date(2024, 5, 1)).alias(c) if c == "ds" else F.col(c) for c in raw.columns],
        F.array(reason).alias("quarantine_reasons"),
        F.lit("x").alias("run_id"),
        F.current_timestamp().alias("quarantined_at"),
    )
    write_table(old, str(tmp_path / "quarantine"), "embedded", mode="append", partition_by=["ds"])
    conf = job_config(tmp_path, registry)
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    quarantined = delta(tmp_path / "quarantine", ds=D1)
    assert len(quarantined) == expected_quarantine(source).sum() > 0
    assert all(set(r) == {"rule", "column", "message"} for reasons in quarantined["quarantine_reasons"] for r in reasons)


def test_a_publication_number_commits_once_whatever_the_clock(spark, tmp_path):
    """A partition's app transaction counts publications, not start times: the next number commits
    (a run on a host whose clock is behind is not skipped), the same number again is a no-op (a
    retried commit, or a second run that claimed the same number)."""
    from jobs.run.publish import replace_partition
    from jobs.tables import read_table

    path = str(tmp_path / "scored")
    spec = {"ds": dt.date(2024, 6, 1)}

    def publish(number, ids):
        df = spark.createDataFrame([(i, spec["ds"]) for i in ids], "id long, ds date")
        return replace_partition(df, path, "embedded", ["ds"], spec, ("lakescore/churn/ds=2024-06-01", number), {})

    assert publish(1, [1, 2]).committed
    second = publish(2, [3])
    assert (second.version, second.committed) == (1, True)
    assert sorted(r.id for r in read_table(spark, path, "embedded").collect()) == [3]
    assert not publish(2, [4]).committed  # the same number again: nothing written
    assert sorted(r.id for r in read_table(spark, path, "embedded").collect()) == [3]
