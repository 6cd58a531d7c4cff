"""The retraining signal (issue 15, points 8 and 9): the k-of-n rule on intervals against the
trainer's validation metrics, drift on k of n partitions, one signals-table row per evidence, the
registry tag, and exit 4 through the evaluation job's entry point (in a subprocess too)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from jobs.config import DegradationConfig
from jobs.quality.degradation import DRIFT, PERFORMANCE, Observation, drift_signals, is_degraded, performance_signals
from tests.helpers import D1, D2, REPO, delta, drawn_labels, job_config, write_demo_input, write_labels

ROWS = 200

RULE = DegradationConfig((("brier", 0.02), ("roc_auc", 0.05)), k=2, n=3)


def _obs(partition: str, value: float, lower: float, upper: float) -> Observation:
    return Observation(partition, value, lower, upper, 0.95)


def test_a_metric_degrades_only_when_its_whole_interval_is_worse_by_more_than_the_drop():
    assert is_degraded("roc_auc", _obs("a", 0.70, 0.65, 0.74), baseline=0.80, max_drop=0.05)
    # the point is far below, but the interval reaches within the drop: not yet
    assert not is_degraded("roc_auc", _obs("a", 0.70, 0.60, 0.76), baseline=0.80, max_drop=0.05)
    # a loss degrades upwards, judged on its lower end
    assert is_degraded("brier", _obs("a", 0.25, 0.23, 0.27), baseline=0.20, max_drop=0.02)
    assert not is_degraded("brier", _obs("a", 0.25, 0.21, 0.27), baseline=0.20, max_drop=0.02)
    assert not is_degraded("roc_auc", Observation("a", None), baseline=0.8, max_drop=0.0)  # undefined never degrades


def test_the_rule_needs_k_of_the_last_n_final_partitions():
    good, bad = (0.80, 0.78, 0.82), (0.60, 0.55, 0.65)
    days = [f"ds=2024-06-0{i}" for i in range(1, 6)]
    model = ("churn", "3")

    def signals(kinds: str):
        final = {"roc_auc": [_obs(d, *(bad if k == "b" else good)) for d, k in zip(days, kinds, strict=False)]}
        return performance_signals("job", model, "probability", final, {"roc_auc": 0.80, "brier": 0.2}, RULE)

    assert signals("bbggg") == []  # two bad days, but no longer among the last three
    assert signals("ggbgg") == []  # one of three
    (s,) = signals("gggbb")
    assert (s.kind, s.metric, s.partitions, s.window) == (PERFORMANCE, "roc_auc", tuple(days[3:5]), tuple(days[2:5]))
    assert (s.observed, s.lower, s.upper, s.baseline, s.limit) == (0.60, 0.55, 0.65, 0.80, 0.05)
    assert signals("gggbb")[0].signal_id == s.signal_id  # the same evidence, the same signal
    other = performance_signals(
        "job", model, "probability", {"roc_auc": [_obs(d, 0.61, 0.55, 0.65) for d in days]}, {"roc_auc": 0.8}, RULE
    )[0]
    assert other.signal_id != s.signal_id  # other values: other evidence
    # a metric the trainer logged no validation value of is not judged
    assert performance_signals("job", model, "probability", {"roc_auc": [_obs(d, *bad) for d in days]}, {}, RULE) == []


def test_drift_on_k_of_n_partitions_is_its_own_kind_of_signal():
    rule = DegradationConfig(k=2, n=3, drift_psi=0.25)
    psi = {
        "tenure_months": [Observation(f"p{i}", v) for i, v in enumerate([0.01, 0.3, 0.4, 0.02])],
        "plan": [Observation(f"p{i}", v) for i, v in enumerate([0.5, 0.02, 0.01, 0.3])],
    }
    (s,) = drift_signals("job", ("churn", "1"), psi, rule)
    assert (s.kind, s.column, s.metric, s.partitions, s.observed) == (DRIFT, "tenure_months", "psi", ("p1", "p2"), 0.4)
    assert drift_signals("job", ("churn", "1"), psi, DegradationConfig(k=2, n=3)) == []  # no drift_psi: no drift signal


def _flipped(day: dt.date):
    """The day's labels turned over: what the model ranks as likely churners stayed."""
    labels = drawn_labels(day, ROWS)
    return labels.assign(churned=1 - labels["churned"])


@pytest.fixture(scope="module")
def scored(tmp_path_factory, registry, spark):
    """Two days scored by the suite's champion; day 1 labelled as drawn, day 2 with its labels
    turned over (the model degraded there). The config (rule: roc_auc may drop 0.05, on 1 of the
    last 3 final partitions) and the folder."""
    from jobs.score import main as score

    tmp = tmp_path_factory.mktemp("signals")
    write_demo_input(tmp / "customers", days=2, rows_per_day=ROWS)
    evaluation = {
        "labels": str(tmp / "labels"),
        "label": "churned",
        "min_labelled": 0.9,
        "degradation": {"max_drop": {"roc_auc": 0.05, "brier": 0.02}, "k": 1, "n": 3},
    }
    conf = job_config(tmp, registry, gate={"mode": "warn"}, evaluation=evaluation)
    assert score(["--conf", conf, "--from", D1.isoformat()]) == 0
    import pandas as pd

    write_labels(tmp / "labels", pd.concat([drawn_labels(D1, ROWS), _flipped(D2)], ignore_index=True), "overwrite")
    return conf, tmp


AS_OF = ["--as-of", "2024-08-01"]  # both days final


def test_the_trainer_logs_the_validation_baseline_the_rule_reads(scored, registry):
    from jobs.config import load_config
    from jobs.run.signals import baselines

    conf, _ = scored
    base = baselines(load_config(conf), registry["name"], registry["version"])
    assert {"roc_auc", "brier", "accuracy"} <= set(base)
    assert 0.5 < base["roc_auc"] <= 1.0


def test_a_degraded_day_exits_4_records_one_signal_per_evidence_and_tags_the_version(scored, registry, capsys):
    from mlflow import MlflowClient

    from jobs.evaluate import main

    conf, tmp = scored
    assert main(["--conf", conf, "--from", D1.isoformat(), *AS_OF]) == 4
    out = capsys.readouterr().out
    assert "model degraded: retraining recommended (exit 4)" in out
    signals = delta(tmp / "stats_signals")
    assert set(signals["metric"]) == {"roc_auc", "brier"}
    assert set(signals["kind"]) == {"performance"}
    auc = signals[signals["metric"] == "roc_auc"].iloc[0]
    assert (auc["model_name"], auc["model_version"], list(auc["partitions"])) == (
        registry["name"],
        registry["version"],
        [f"ds={D2.isoformat()}"],
    )
    assert list(auc["window"]) == [f"ds={D1.isoformat()}", f"ds={D2.isoformat()}"]
    assert auc["upper"] < auc["baseline"] - 0.05  # the whole interval below the baseline by more than the drop
    evaluation = delta(tmp / "stats_evaluation", ds=D2)
    realized = evaluation[(evaluation["role"] == "champion") & (evaluation["metric"] == "roc_auc") & evaluation["bucket"].isna()][
        "value"
    ].item()
    assert auc["observed"] == pytest.approx(realized)
    version = MlflowClient(registry["tracking_uri"]).get_model_version(registry["name"], registry["version"])
    assert version.tags["lakescore.retraining"] == "recommended"
    assert auc["signal_id"] in version.tags["lakescore.signal"]

    # the same evidence again: exit 4 again (the version is still degraded), no new row
    assert main(["--conf", conf, "--from", D1.isoformat(), *AS_OF]) == 4
    assert "(already raised)" in capsys.readouterr().out
    assert len(delta(tmp / "stats_signals")) == len(signals)


def test_drift_on_every_partition_is_a_drift_signal(scored):
    from jobs.evaluate import main

    conf, tmp = scored
    # a PSI limit every column's PSI is above: drift on both scored days
    drift = ["--set", "evaluation.degradation.drift_psi=0.000000000001", "--set", "evaluation.degradation.max_drop={}"]
    assert main(["--conf", conf, "--from", D1.isoformat(), *AS_OF, *drift]) == 4
    signals = delta(tmp / "stats_signals")
    mine = signals[signals["kind"] == "drift"]
    assert {"tenure_months", "probability"} <= set(mine["column"])
    assert all(list(p) == [f"ds={D1.isoformat()}", f"ds={D2.isoformat()}"] for p in mine["partitions"])


@pytest.mark.slow
def test_exit_4_reaches_the_scheduler_from_a_subprocess_and_corrected_labels_clear_it(scored):
    import pandas as pd

    conf, tmp = scored
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}

    def evaluate() -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "jobs.evaluate", "--conf", conf, "--from", D1.isoformat(), *AS_OF]
        return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    proc = evaluate()
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "SIGNAL performance" in proc.stdout
    # the labels feed corrects day 2: the evidence is gone and so is the exit code
    write_labels(tmp / "labels", pd.concat([drawn_labels(D1, ROWS), drawn_labels(D2, ROWS)], ignore_index=True), "overwrite")
    proc = evaluate()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no degradation" in proc.stdout
