"""Champion and challenger through the real job: one pass, the shadow table, the comparison in the
stats table (checked against numpy, scipy and scikit-learn on the job's own output) and isolation of
every way a challenger can fail."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pandas as pd
import pytest

from jobs.score import main
from tests.helpers import D1, delta, job_config, ledger, train_rival, write_demo_input

PARTITION = f"ds={D1.isoformat()}"
WARN = {"mode": "warn"}  # tiny partitions drift past the demo gate; the gate is not under test here
LOAD_OK = "LAKESCORE_TEST_CHALLENGER_MAY_LOAD"  # set while logging only: Spark's workers never see it

BOOM_PREDICT = """
import mlflow


class Boom(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("challenger boom on purpose")


mlflow.models.set_model(Boom())
"""

BOOM_LOAD = f"""
import os

import mlflow

if os.environ.get("{LOAD_OK}") != "1":
    raise ImportError("this challenger cannot be loaded, on purpose")


class Fine(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise AssertionError("never loaded")


mlflow.models.set_model(Fine())
"""


@pytest.fixture(scope="module")
def rivals(registry, tmp_path_factory):
    """Challengers in the suite's registry, each its own registered model with @challenger: a real
    one (trained on another sample with another learning rate, so its fitted values and scores
    differ), one whose predict raises and one that cannot be loaded."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    home = tmp_path_factory.mktemp("rivals")
    trained = train_rival(registry, "rival_churn", home)
    champion = mlflow.pyfunc.load_model(f"models:/{registry['name']}/{registry['version']}")
    example = champion.input_example
    outputs = pd.DataFrame({"probability": [0.5] * len(example), "label": np.zeros(len(example), dtype="int64")})
    client = MlflowClient()
    for name, code in (("boom_predict", BOOM_PREDICT), ("boom_load", BOOM_LOAD)):
        path = home / f"{name}.py"
        path.write_text(textwrap.dedent(code))
        os.environ[LOAD_OK] = "1"
        try:
            with mlflow.start_run(run_name=name):
                info = mlflow.pyfunc.log_model(name="model", python_model=str(path), signature=infer_signature(example, outputs))
        finally:
            del os.environ[LOAD_OK]
        version = mlflow.register_model(info.model_uri, name).version
        client.set_registered_model_alias(name, "challenger", version)
    return {"rival": trained}


def _job(tmp_path, registry, challengers, **changes):
    source = write_demo_input(tmp_path / "customers", days=2, rows_per_day=300)
    conf = job_config(tmp_path, registry, gate=WARN, **changes)
    import yaml

    doc = yaml.safe_load(open(conf))
    doc["model"]["challengers"] = list(challengers)
    with open(conf, "w") as f:
        yaml.safe_dump(doc, f)
    return conf, source


def _champion_reference(registry) -> dict:
    import json

    import mlflow

    local = mlflow.artifacts.download_artifacts(f"models:/{registry['name']}/{registry['version']}/lakescore/reference.json")
    with open(local) as f:
        return json.load(f)


def _statuses(tmp_path) -> list[dict]:
    return list(ledger(tmp_path / "runs").iloc[-1]["challengers"])


def test_the_challenger_scores_the_same_rows_beside_the_champion_and_they_are_compared(tmp_path, registry, rivals, capsys):
    conf, _ = _job(tmp_path, registry, ["models:/rival_churn@challenger"])
    assert main(["--conf", conf, "--partition", PARTITION]) == 0
    said = capsys.readouterr().out
    scored = delta(tmp_path / "scored")
    shadow = delta(tmp_path / "scored_shadow")
    # the scored table keeps the champion alone; the shadow table has the challenger on the same keys
    assert set(scored["model_name"]) == {registry["name"]}
    assert set(shadow["model_name"]) == {"rival_churn"} and set(shadow["model_version"]) == {rivals["rival"].version}
    assert set(shadow["model_reference"]) == {"models:/rival_churn@challenger"}
    assert sorted(shadow["customer_id"]) == sorted(scored["customer_id"])
    assert set(shadow["run_id"]) == set(scored["run_id"])
    pair = scored.merge(shadow, on="customer_id", suffixes=("_a", "_b"))
    assert not np.allclose(pair["probability_a"], pair["probability_b"])  # a different model, really

    stats = delta(tmp_path / "stats")
    cmp = stats[(stats["scope"] == "comparison") & (stats["model_version"] == rivals["rival"].version)]
    value = lambda column, metric, bucket=None: cmp[  # noqa: E731
        (cmp["column"] == column) & (cmp["metric"] == metric) & ((cmp["bucket"] == bucket) if bucket else cmp["bucket"].isna())
    ]["value"].item()
    a, b = pair["label_a"].to_numpy(), pair["label_b"].to_numpy()
    from scipy.stats import pearsonr
    from sklearn.metrics import cohen_kappa_score

    assert value("label", "agreement") == pytest.approx(np.mean(a == b))
    assert value("label", "kappa") == pytest.approx(cohen_kappa_score(a, b))
    assert value("label", "flips", "0->1") == np.sum((a == 0) & (b == 1))
    assert value("label", "flips", "1->0") == np.sum((a == 1) & (b == 0))
    pa_, pb_ = pair["probability_a"].to_numpy(), pair["probability_b"].to_numpy()
    assert value("probability", "mean_abs_diff") == pytest.approx(np.mean(np.abs(pa_ - pb_)))
    assert value("probability", "pearson") == pytest.approx(pearsonr(pa_, pb_).statistic)
    # PSI between the two models' histograms, in the champion's bins (its training reference's),
    # from histograms recomputed with numpy from the scores
    from transforms.drift import psi
    from transforms.stats import reference_bins

    bins = reference_bins(_champion_reference(registry))[1]["probability"]
    inner = np.asarray(bins.edges[1:-1])
    count = lambda p: np.bincount(np.searchsorted(inner, p, side="right"), minlength=len(bins.labels)).astype(float)  # noqa: E731
    assert value("probability", "psi") == pytest.approx(psi(list(count(pa_)), list(count(pb_))))
    hist = stats[(stats["scope"] == "challenger") & (stats["column"] == "probability") & (stats["metric"] == "histogram")]
    assert np.array_equal(hist.sort_values("bucket")["value"].to_numpy(), count(pb_))

    assert _statuses(tmp_path)[0]["status"] == "scored"
    assert "challenger        models:/rival_churn@challenger" in said and "agreement" in said
    report = ledger(tmp_path / "runs").iloc[-1]["report"]
    html = open(report).read()
    assert "Challengers" in html and "rival_churn" in html


def test_the_challengers_scores_are_its_own_models_predictions_on_the_same_rows(tmp_path, registry, rivals, spark):
    """Recomputed outside the job: the rows it scored, through the challenger's own pipeline (its
    fitted values, not the champion's), then the model's own predict in this process."""
    import mlflow

    from jobs.config import ModelConfig
    from jobs.model.resolve import release_model, resolve_model
    from jobs.model.training import fitted_values
    from transforms.preprocess import pipeline

    conf, source = _job(tmp_path, registry, ["models:/rival_churn@challenger"])
    assert main(["--conf", conf, "--partition", PARTITION]) == 0
    shadow = delta(tmp_path / "scored_shadow").set_index("customer_id").sort_index()
    resolved = resolve_model(ModelConfig("models:/rival_churn@challenger", registry["tracking_uri"]))
    try:
        steps, fitted = resolved.pipeline, fitted_values(resolved.pipeline, resolved.reference, "rival")
        rows = source[source["customer_id"].isin(shadow.index) & (source["ds"] == D1)]
        frame = spark.createDataFrame(rows.drop(columns=["ds"]))
        prepared = frame.transform(pipeline(steps, fitted)).toPandas().set_index("customer_id").sort_index()
        model = mlflow.pyfunc.load_model(resolved.local_path)
        expected = model.predict(prepared[list(resolved.features)].reset_index(drop=True))
    finally:
        release_model(resolved)
    assert np.array_equal(shadow["probability"].to_numpy(), expected["probability"].to_numpy())
    assert np.array_equal(shadow["label"].to_numpy(), expected["label"].to_numpy())


def test_all_models_score_in_one_stage_each_loaded_once_per_worker(spark, model_dir):
    """Two models, one mapInArrow: one JVM-Python round trip per batch."""
    from pyspark.sql import types as T

    from transforms.scoring import ModelSpec, score_models

    outputs = T.StructType([T.StructField("probability", T.DoubleType()), T.StructField("label", T.LongType())])
    features = ("tenure_months", "monthly_charges", "total_charges", "support_calls", "plan", "region")
    rows = [(i, float(i % 50), 50.0 + i, 100.0 * i, float(i % 3), "basic", "north") for i in range(200)]
    df = spark.createDataFrame(rows, ["customer_id", *features])
    rival = ModelSpec(model_dir, features, outputs, features, ("c_probability", "c_label"), "c_error")
    scored = df.transform(score_models([ModelSpec(model_dir, features, outputs), rival], ["customer_id"]))
    plan = scored._jdf.queryExecution().executedPlan().toString()
    assert plan.count("MapInArrow") == 1, plan
    out = scored.toPandas()
    assert out["c_error"].isna().all()
    assert np.array_equal(out["probability"], out["c_probability"]) and np.array_equal(out["label"], out["c_label"])


def test_the_job_scores_every_model_in_one_scoring_stage_per_partition(tmp_path, registry, rivals, monkeypatch):
    import jobs.run.partition as partition

    calls = []
    real = partition.score_models

    def counted(models, passthrough):
        calls.append([m.location for m in models])
        return real(models, passthrough)

    monkeypatch.setattr(partition, "score_models", counted)
    conf, _ = _job(tmp_path, registry, ["models:/rival_churn@challenger"])
    assert main(["--conf", conf, "--partition", PARTITION, "--partition", "ds=2024-06-02"]) == 0
    assert len(calls) == 2 and all(len(models) == 2 for models in calls)


@pytest.mark.parametrize(
    ("reference", "why"),
    [
        ("models:/no_such_model@challenger", "no_such_model"),
        ("models:/boom_predict@challenger", "challenger boom on purpose"),
        ("models:/boom_load@challenger", "cannot be loaded, on purpose"),
    ],
    ids=["does-not-resolve", "fails-to-score", "fails-to-load"],
)
def test_a_failing_challenger_never_withholds_the_champions_scores(tmp_path, registry, rivals, reference, why, capsys):
    conf, _ = _job(tmp_path, registry, [reference, "models:/rival_churn@challenger"])
    assert main(["--conf", conf, "--partition", PARTITION]) == 0
    said = capsys.readouterr()
    scored = delta(tmp_path / "scored")
    assert len(scored) > 0 and set(scored["model_name"]) == {registry["name"]}
    statuses = _statuses(tmp_path)
    failed, fine = statuses
    assert failed["status"] == "failed" and why in failed["error"], failed
    assert fine["status"] == "scored"
    # the good challenger is still shadow-scored; the failed one left nothing there
    shadow = delta(tmp_path / "scored_shadow")
    assert set(shadow["model_name"]) == {"rival_churn"}
    stats = delta(tmp_path / "stats")
    assert set(stats[stats["scope"] == "comparison"]["model_version"]) == {rivals["rival"].version}
    assert why in said.out + said.err and "failed" in said.out
    assert ledger(tmp_path / "runs").iloc[-1]["status"] == "succeeded"


def test_a_challenger_without_the_champions_outputs_is_refused_alone(tmp_path, registry, rivals):
    conf, _ = _job(tmp_path, registry, [f"models:/{registry['name']}/{registry['version']}"])
    assert main(["--conf", conf, "--partition", PARTITION]) == 0
    (status,) = _statuses(tmp_path)
    assert status["status"] == "failed" and "champion's own version" in status["error"]
