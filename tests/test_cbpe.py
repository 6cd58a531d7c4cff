"""CBPE (issue 15): the calibration map as a Spark column, the estimate from the scoring job's one
aggregation, the trainer's calibration and validation metrics, and the estimate beside the realized
metrics in the evaluation table."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sklearn import metrics as skm

from tests.helpers import D1, delta, job_config, write_demo_input

# a map with a flat run (its inner points thinned), steps and slopes, in [0, 1]
X = [0.05, 0.1, 0.2, 0.3, 0.35, 0.5, 0.7, 0.71, 0.9]
Y = [0.0, 0.1, 0.1, 0.1, 0.25, 0.4, 0.4, 0.8, 1.0]
CALIBRATION = {"score": "probability", "decision": "label", "x": X, "y": Y, "rows": 9}


def _expected_auc(p_hat: np.ndarray, scores: np.ndarray) -> float:
    """The exact expected ROC AUC: every ordered pair (i, j), i positive with probability p̂_i and
    j negative with 1 - p̂_j, counted when s_i > s_j and half when tied."""
    above = (scores[:, None] > scores[None, :]) + 0.5 * (scores[:, None] == scores[None, :])
    pairs = p_hat[:, None] * (1 - p_hat[None, :])
    return float((pairs * above).sum() / (p_hat.sum() * (1 - p_hat).sum()))


def test_the_calibration_column_equals_numpys_interp_inside_outside_and_at_the_thresholds(spark):
    from transforms.cbpe import calibrated, thinned

    rng = np.random.default_rng(3)
    values = [*X, -1.0, 0.0, 0.04, 0.9000001, 1.0, 7.5, float("inf"), float("-inf"), *rng.random(200).tolist()]
    values += [(a + b) / 2 for a, b in pairwise(X)]
    df = spark.createDataFrame([(v,) for v in [*values, None, float("nan")]], "s double")
    got = [r["p"] for r in df.select(calibrated(F.col("s"), X, Y).alias("p")).collect()]
    assert got[: len(values)] == np.interp(values, X, Y).tolist()  # bit for bit
    assert got[len(values) :] == [None, None]
    assert thinned(X, Y) == ((0.05, 0.1, 0.3, 0.35, 0.5, 0.7, 0.71, 0.9), (0.0, 0.1, 0.1, 0.25, 0.4, 0.4, 0.8, 1.0))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x": [0.2, 0.1], "y": [0.1, 0.2]}, "strictly increasing"),
        ({"y": [1.5] * len(X)}, "probabilities"),
        ({"x": X[:-1]}, "values and y"),
        ({"score": None}, "score"),
    ],
)
def test_a_malformed_calibration_map_is_refused_saying_what_is_wrong(change, message):
    from transforms.cbpe import Calibration

    with pytest.raises(ValueError, match=message):
        Calibration.from_map({**CALIBRATION, **change})


def test_the_estimates_from_the_profiles_aggregation_equal_a_hand_computation(spark):
    from jobs.quality.estimates import derive_estimates
    from transforms.cbpe import Calibration
    from transforms.stats import prediction_profile

    rng = np.random.default_rng(11)
    n = 300
    scores = np.round(rng.beta(2, 3, n), 3)  # rounded: ties, within a bin and exact
    labels = (scores >= 0.5).astype(int)
    rows = [("d", float(s), int(d)) for s, d in zip(scores, labels, strict=True)]
    rows += [("d", None, 1), ("d", 0.4, 2), ("d", float("nan"), 0)]  # not counted: no score, no 0/1 decision
    schema = T.StructType(
        [T.StructField("ds", T.StringType()), T.StructField("probability", T.DoubleType()), T.StructField("label", T.LongType())]
    )
    outputs = T.StructType(schema.fields[1:])
    df = spark.createDataFrame(rows, schema)
    profiled = df.transform(prediction_profile(outputs, ["ds"], estimate=Calibration.from_map(CALIBRATION))).collect()
    got = {
        (r["metric"], r["bucket"]): r["value"]
        for r in derive_estimates([r.asDict() for r in profiled])
        if r["scope"] == "estimate"
    }

    p, d = np.interp(scores, X, Y), labels.astype(float)
    tp, fp, fn, tn = (d * p).sum(), (d * (1 - p)).sum(), ((1 - d) * p).sum(), ((1 - d) * (1 - p)).sum()
    assert got[("n", None)] == n
    assert got[("decision_calibrated_sum", None)] == pytest.approx(tp, rel=1e-12)
    assert got[("accuracy", None)] == pytest.approx((tp + tn) / n, rel=1e-12)
    assert got[("precision", None)] == pytest.approx(tp / (tp + fp), rel=1e-12)
    assert got[("recall", None)] == pytest.approx(tp / (tp + fn), rel=1e-12)
    assert got[("f1", None)] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
    bins = np.minimum(np.floor(scores * 1000), 999).astype(int)
    assert {b for m, b in got if m == "positive_mass"} == {str(b) for b in bins}
    assert got[("positive_mass", str(bins[0]))] == pytest.approx(p[bins == bins[0]].sum(), rel=1e-12)
    bound = got[("roc_auc", "error_bound")]
    assert 0 < bound < 0.01
    assert abs(got[("roc_auc", None)] - _expected_auc(p, scores)) <= bound + 1e-12


def test_with_no_positive_decision_precision_is_undefined_with_its_reason(spark):
    from jobs.quality.estimates import estimate_metrics

    rows = [
        {"scope": "estimate", "column": "probability", "metric": m, "bucket": None, "value": v}
        for m, v in (("n", 10.0), ("decision_calibrated_sum", 0.0), ("decision_sum", 0.0), ("calibrated_sum", 2.5))
    ]
    got = {m.name: m for m in estimate_metrics(rows, "probability")}
    assert got["accuracy"].value == pytest.approx(0.75)
    assert got["precision"].value is None and got["precision"].reason == "no positive decisions"
    assert got["roc_auc"].value is None


def _held_out(spark, registry):
    """The suite's model's held-out split (conftest trains on 3000 rows, the last 600 held out) and
    what the registered model says of it."""
    import mlflow

    from jobs.demo.train import demo_steps, prepared_frame

    x, y, _, _ = prepared_frame(spark, demo_steps(), 3000, 7, 2400)
    out = mlflow.pyfunc.load_model(f"models:/{registry['name']}/{registry['version']}").predict(x[2400:])
    return y[2400:].to_numpy(), out["probability"].to_numpy(), out["label"].to_numpy()


def test_the_trainer_logs_scikit_learns_validation_metrics_and_its_isotonic_calibration(spark, registry):
    import mlflow
    from mlflow import MlflowClient
    from sklearn.isotonic import IsotonicRegression

    from jobs.model.training import validation_metrics

    y, score, decision = _held_out(spark, registry)
    logged = validation_metrics(MlflowClient(), registry["run_id"])
    expected = {
        "accuracy": skm.accuracy_score(y, decision),
        "precision": skm.precision_score(y, decision),
        "recall": skm.recall_score(y, decision),
        "f1": skm.f1_score(y, decision),
        "log_loss": skm.log_loss(y, score),
        "brier": skm.brier_score_loss(y, score),
    }
    for name, value in expected.items():
        assert logged[name][0] == pytest.approx(value, rel=1e-9), name
        lower, upper = logged[name][1:]
        assert lower is not None and upper is not None and lower <= logged[name][0] <= upper, name
    bins = np.minimum(np.floor(score * 1000), 999).astype(int)
    pos, neg = np.bincount(bins[y == 1], minlength=1000), np.bincount(bins[y == 0], minlength=1000)
    bound = (pos * neg).sum() / (2 * pos.sum() * neg.sum())
    assert abs(logged["roc_auc"][0] - skm.roc_auc_score(y, score)) <= bound + 1e-12

    path = mlflow.artifacts.download_artifacts(f"models:/{registry['name']}/{registry['version']}/lakescore/calibration.json")
    calibration = json.loads(open(path).read())
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(score, y)
    assert calibration["x"] == iso.X_thresholds_.tolist() and calibration["y"] == iso.y_thresholds_.tolist()
    assert (calibration["score"], calibration["decision"], calibration["rows"]) == ("probability", "label", 600)


def test_a_malformed_calibration_json_is_a_model_error_naming_the_file(tmp_path):
    from jobs.model.resolve import ModelError, _artifacts

    (tmp_path / "lakescore").mkdir()
    (tmp_path / "lakescore" / "calibration.json").write_text(json.dumps({**CALIBRATION, "y": [2.0] * len(X)}))
    with pytest.raises(ModelError, match=r"lakescore/calibration\.json"):
        _artifacts(str(tmp_path), "models:/m/1")
    (tmp_path / "lakescore" / "calibration.json").unlink()
    with pytest.raises(ModelError, match=r"lakescore/calibration\.json"):
        _artifacts(str(tmp_path), "models:/m/1", ["lakescore/calibration.json"])
    assert _artifacts(str(tmp_path), "models:/m/1") == (None, None, None)  # an older model: no estimate


@pytest.fixture(scope="module")
def scored_and_evaluated(tmp_path_factory, registry, spark):
    """One day of 300 demo rows scored by the suite's model, then evaluated against its labels."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import write_deltalake

    from jobs.demo.data import labels_table
    from jobs.evaluate import main as evaluate
    from jobs.score import main as score

    tmp = tmp_path_factory.mktemp("cbpe")
    write_demo_input(tmp / "customers", days=1, rows_per_day=300)
    labels = labels_table(3, 300, D1)  # the oldest of three days: fully labelled
    write_deltalake(str(tmp / "labels"), labels.filter(pc.equal(labels["ds"], pa.scalar(D1))), partition_by=["ds"])
    evaluation = {"labels": str(tmp / "labels"), "label": "churned", "horizon_days": 30, "min_labelled": 0.5}
    conf = job_config(tmp, registry, gate={"mode": "warn"}, evaluation=evaluation)
    assert score(["--conf", conf, "--partition", f"ds={D1.isoformat()}"]) == 0
    assert evaluate(["--conf", conf, "--partition", f"ds={D1.isoformat()}", "--as-of", "2024-07-02"]) == 0
    return tmp


def test_a_scoring_run_writes_the_champions_estimate_and_the_evaluation_puts_it_beside_the_realized(
    scored_and_evaluated, registry
):
    import mlflow

    tmp = scored_and_evaluated
    stats = delta(tmp / "stats", scope="estimate")
    scored = delta(tmp / "scored")
    path = mlflow.artifacts.download_artifacts(f"models:/{registry['name']}/{registry['version']}/lakescore/calibration.json")
    cal = json.loads(open(path).read())
    p, d = np.interp(scored["probability"], cal["x"], cal["y"]), scored["label"].to_numpy(float)
    value = lambda m, b=None: stats[(stats["metric"] == m) & (stats["bucket"].isna() if b is None else stats["bucket"] == b)]  # noqa: E731
    assert value("n")["value"].item() == len(scored)
    assert value("accuracy")["value"].item() == pytest.approx((d * p + (1 - d) * (1 - p)).mean(), rel=1e-9)
    assert value("precision")["value"].item() == pytest.approx((d * p).sum() / d.sum(), rel=1e-9)
    assert value("roc_auc")["model_version"].isna().all()

    table = delta(tmp / "stats_evaluation", role="champion")
    est = table[table["scope"] == "estimate"]
    assert sorted(set(est["metric"])) == ["accuracy", "f1", "precision", "recall", "roc_auc"]
    for metric in ("accuracy", "f1", "roc_auc"):
        cells = dict(zip(est[est["metric"] == metric]["bucket"], est[est["metric"] == metric]["value"], strict=True))
        realized = table[(table["scope"] == "evaluation") & (table["metric"] == metric) & table["bucket"].isna()]
        assert cells["estimated"] == value(metric)["value"].item()
        assert cells["realized"] == realized["value"].item()
        assert cells["error"] == pytest.approx(cells["estimated"] - cells["realized"], abs=1e-15)
