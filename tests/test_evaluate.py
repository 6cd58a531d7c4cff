"""The evaluation job through its real entry point: labels written with delta-rs joined to what the
scoring job published (champion and a challenger), checked against scikit-learn and scipy on the
same joined rows, recomputed here with pandas; never-scored labels, keys scored twice, conflicting
labels, maturity, a rerun after more labels, and the exit-2 cases."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import yaml
from scipy import stats as scipy_stats
from sklearn import metrics as skm

from jobs.demo.data import customers
from tests.helpers import D1, D2, delta, drawn_labels, job_config, train_rival, write_demo_input, write_labels

ROWS = 200
CHALLENGER = "models:/evaluate_rival_churn@challenger"
NEVER_SCORED = [9_000_001, 9_000_002, 9_000_003]  # label rows whose customers the input never had


@pytest.fixture(scope="module")
def rival(registry):
    """A challenger in the suite's registry, its own registered model with @challenger (as
    tests/test_challengers.py's ``rivals`` registers one): trained on another sample with another
    learning rate, so its scores differ from the champion's."""
    return train_rival(registry, "evaluate_rival_churn", registry["home"] / "evaluate_rival")


def _churned(day: dt.date) -> pd.DataFrame:
    return drawn_labels(day, ROWS)


def _first_labels() -> pd.DataFrame:
    """Day 1: every customer but every 20th labelled, one label repeated, one key with two different
    labels, three customers never scored. Day 2: every other customer."""
    one, two = _churned(D1), _churned(D2)
    one = one[one.index % 20 != 0]
    repeated = one.iloc[[3]]
    conflicting = one.iloc[[5]].assign(churned=1 - one.iloc[5]["churned"])
    never = pd.DataFrame({"customer_id": NEVER_SCORED, "ds": D1, "churned": [1, 0, 1]})
    return pd.concat([one, repeated, conflicting, never, two[two.index % 2 == 0]], ignore_index=True)


@pytest.fixture(scope="module")
def job(tmp_path_factory, registry, rival, spark):
    """Two days of 200 rows scored by the champion and the challenger; one champion row of day 1
    duplicated in the scored table (a key scored twice); the first labels written. The config path
    and the folder."""
    from jobs.score import main as score

    tmp = tmp_path_factory.mktemp("evaluate")
    write_demo_input(tmp / "customers", days=2, rows_per_day=ROWS)
    evaluation = {"labels": str(tmp / "labels"), "label": "churned", "horizon_days": 30, "min_labelled": 0.9}
    conf = job_config(tmp, registry, gate={"mode": "warn"}, evaluation=evaluation)
    doc = yaml.safe_load(open(conf))
    doc["model"]["challengers"] = [CHALLENGER]
    with open(conf, "w") as f:
        yaml.safe_dump(doc, f)
    assert score(["--conf", conf, "--from", D1.isoformat()]) == 0

    import pyarrow.compute as pc
    from deltalake import DeltaTable, write_deltalake

    scored = DeltaTable(str(tmp / "scored")).to_pyarrow_table()
    twice = scored.filter(pc.equal(scored["ds"], D1)).slice(7, 1)
    twice = twice.set_column(twice.schema.get_field_index("probability"), "probability", pc.subtract(1.0, twice["probability"]))
    write_deltalake(str(tmp / "scored"), twice, mode="append")
    write_labels(tmp / "labels", _first_labels(), "overwrite")
    return conf, tmp


@pytest.fixture(scope="module")
def first_run(job):
    from jobs.evaluate import main

    conf, tmp = job
    code = main(["--conf", conf, "--from", D1.isoformat(), "--as-of", "2024-07-02"])
    return code, delta(tmp / "stats_evaluation")


def _joined(tmp, day: dt.date, labels: pd.DataFrame) -> pd.DataFrame:
    """The rows the evaluation must judge, by pandas: each model's keys scored once, with the key's
    label (none when its label rows disagree; repeated rows count once)."""
    scored = delta(tmp / "scored", ds=day).assign(role="champion")
    shadow = delta(tmp / "scored_shadow", ds=day).assign(role="challenger")
    rows = pd.concat([scored, shadow], ignore_index=True)
    rows = rows[~rows.duplicated(["role", "model_version", "customer_id"], keep=False)]
    mine = labels[labels["ds"] == day].drop_duplicates()
    agreed = mine[~mine["customer_id"].duplicated(keep=False)]
    return rows.merge(agreed[["customer_id", "churned"]], on="customer_id", how="left")


def _value(table, day, role, metric, scope="evaluation", column="probability", bucket=None):
    rows = table[
        (table["partition"] == f"ds={day.isoformat()}")
        & (table["role"] == role)
        & (table["scope"] == scope)
        & (table["column"] == column)
        & (table["metric"] == metric)
        & (table["bucket"].isna() if bucket is None else table["bucket"] == bucket)
    ]
    assert len(rows) == 1, (day, role, scope, metric, bucket, len(rows))
    return rows["value"].item()


@pytest.mark.parametrize("role", ["champion", "challenger"])
def test_the_metrics_equal_scikit_learns_on_the_joined_rows(job, first_run, role):
    code, table = first_run
    assert code == 0
    rows = _joined(job[1], D1, _first_labels())
    mine = rows[rows["role"] == role]
    labelled = mine[mine["churned"].notna()]
    y, p, d = labelled["churned"].astype(int), labelled["probability"], labelled["label"]
    tn, fp, fn, tp = skm.confusion_matrix(y, d, labels=[0, 1]).ravel()
    assert [_value(table, D1, role, m) for m in ("tp", "fp", "fn", "tn")] == [tp, fp, fn, tn]
    expected = {
        "accuracy": skm.accuracy_score(y, d),
        "precision": skm.precision_score(y, d),
        "recall": skm.recall_score(y, d),
        "f1": skm.f1_score(y, d),
        "label_coverage": len(labelled) / len(mine),
    }
    for metric, value in expected.items():
        assert _value(table, D1, role, metric) == pytest.approx(value, rel=1e-12), metric
    auc, bound = _value(table, D1, role, "roc_auc"), _value(table, D1, role, "roc_auc", bucket="error_bound")
    assert abs(auc - skm.roc_auc_score(y, p)) <= bound + 1e-12
    lower, upper = _value(table, D1, role, "accuracy", bucket="lower"), _value(table, D1, role, "accuracy", bucket="upper")
    assert lower < expected["accuracy"] < upper
    assert set(table["labels_version"]) == {0}


def test_a_regression_evaluation_gives_scikit_learns_errors_on_the_joined_rows(job, first_run):
    """evaluation.task: regression takes the score as a prediction of the label (here the
    probability of churn against 0/1): MAE, RMSE, bias, R² and coverage, no decision, no pairing."""
    from jobs.evaluate import main

    conf, tmp = job
    out = tmp / "regression_evaluation"
    argv = ["--conf", conf, "--partition", f"ds={D1.isoformat()}", "--as-of", "2024-07-02"]
    assert main([*argv, "--set", "evaluation.task=regression", "--set", f"evaluation.output={out}"]) == 0
    table = delta(out)
    rows = _joined(tmp, D1, _first_labels())
    for role in ("champion", "challenger"):
        labelled = rows[(rows["role"] == role) & rows["churned"].notna()]
        y, p = labelled["churned"].astype(float), labelled["probability"]
        expected = {
            "mae": skm.mean_absolute_error(y, p),
            "rmse": skm.mean_squared_error(y, p) ** 0.5,
            "bias": float((p - y).mean()),
            "r2": skm.r2_score(y, p),
            "label_coverage": len(labelled) / (rows["role"] == role).sum(),
        }
        for metric, value in expected.items():
            assert _value(table, D1, role, metric) == pytest.approx(value, rel=1e-9), (role, metric)
        lower, upper = _value(table, D1, role, "mae", bucket="lower"), _value(table, D1, role, "mae", bucket="upper")
        assert lower < expected["mae"] < upper
    assert not set(table["metric"]) & {"accuracy", "tp", "mcnemar_p_value"}  # no decision, no pairing


def test_labels_never_scored_and_keys_scored_twice_are_counted_not_dropped(job, first_run):
    _, table = first_run
    tmp = job[1]
    labels = _first_labels()
    day = labels[labels["ds"] == D1]
    scored = delta(tmp / "scored", ds=D1)
    unscored = set(day["customer_id"]) - set(scored["customer_id"])
    assert set(NEVER_SCORED) <= unscored  # and the quarantined customers' labels
    assert _value(table, D1, "champion", "labels_unscored", column="*") == len(unscored)
    assert _value(table, D1, "champion", "scored_duplicates", column="*") == 1
    assert _value(table, D1, "challenger", "scored_duplicates", column="*") == 0
    assert _value(table, D1, "champion", "scored_rows", column="*") == len(scored)
    assert _value(table, D1, "champion", "label_rows", column="*") == len(day)
    assert _value(table, D1, "champion", "labels_duplicates", column="*") == 1
    assert _value(table, D1, "champion", "labels_conflicting", column="*") == 1
    # the key scored twice is in no statistic: n counts the labelled keys scored once
    rows = _joined(tmp, D1, labels)
    assert _value(table, D1, "champion", "n") == rows[(rows["role"] == "champion") & rows["churned"].notna()].shape[0]


def test_mcnemar_and_the_auc_difference_compare_champion_and_challenger_on_the_same_rows(job, first_run, rival):
    _, table = first_run
    rows = _joined(job[1], D1, _first_labels())
    labelled = rows[rows["churned"].notna()]
    pair = labelled[labelled["role"] == "champion"].merge(
        labelled[labelled["role"] == "challenger"], on="customer_id", suffixes=("_a", "_b")
    )
    y = pair["churned_a"].astype(int)
    right_a, right_b = pair["label_a"] == y, pair["label_b"] == y
    n01, n10 = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    paired = table[table["scope"] == "paired"]
    assert set(paired["model_version"]) == {rival.version} and set(paired["role"]) == {"challenger"}
    assert _value(table, D1, "challenger", "paired_n", scope="paired") == len(pair)
    assert _value(table, D1, "challenger", "mcnemar_n01", scope="paired") == n01
    assert _value(table, D1, "challenger", "mcnemar_n10", scope="paired") == n10
    p_value = _value(table, D1, "challenger", "mcnemar_p_value", scope="paired")
    if n01 + n10 < 25:
        assert p_value == pytest.approx(scipy_stats.binomtest(n01, n01 + n10, 0.5).pvalue, rel=1e-12)
    else:
        assert p_value == pytest.approx(scipy_stats.chi2.sf((abs(n01 - n10) - 1) ** 2 / (n01 + n10), 1), rel=1e-12)
    delta_auc = _value(table, D1, "challenger", "delta_roc_auc", scope="paired")
    bound = _value(table, D1, "challenger", "delta_roc_auc", scope="paired", bucket="error_bound")
    expected = skm.roc_auc_score(y, pair["probability_b"]) - skm.roc_auc_score(y, pair["probability_a"])
    assert abs(delta_auc - expected) <= bound + 1e-12


def test_maturity_is_final_only_past_the_horizon_with_enough_labels(first_run):
    from jobs.quality.evaluation import maturity

    _, table = first_run
    by_partition = table[table["role"] == "champion"].groupby("partition")["maturity"].agg(set)
    assert by_partition[f"ds={D1}"] == {"final"}  # 31 days old on 2024-07-02, 95% labelled
    assert by_partition[f"ds={D2}"] == {"provisional"}  # 30 days old, but only half labelled
    assert maturity(D1, dt.date(2024, 7, 1), 30, 0.95, 0.9)[0] == "final"
    assert maturity(D1, dt.date(2024, 6, 30), 30, 0.95, 0.9) == ("provisional", "29 of 30 days since 2024-06-01")
    assert maturity(D1, dt.date(2024, 7, 1), 30, 0.85, 0.9) == ("provisional", "coverage 85.0% < 90%")
    assert maturity(None, dt.date(2024, 7, 1), 30, None, 0.9) == ("provisional", "no scored rows")


def test_a_rerun_after_more_labels_replaces_the_partition_and_the_history_keeps_both(job, first_run, capsys):
    from jobs.evaluate import main

    conf, tmp = job
    first = first_run[1]
    two = _churned(D2)
    write_labels(tmp / "labels", two[two.index % 2 == 1], "append")  # the rest of day 2's labels land
    assert main(["--conf", conf, "--partition", f"ds={D2}", "--as-of", "2024-07-01"]) == 0
    said = capsys.readouterr().out
    table = delta(tmp / "stats_evaluation")
    runs = table.groupby("partition")["run_id"].agg(set)
    assert runs[f"ds={D1}"] == set(first[first["partition"] == f"ds={D1}"]["run_id"])  # untouched
    (rerun,) = runs[f"ds={D2}"]
    assert rerun not in set(first["run_id"])
    day2 = table[table["partition"] == f"ds={D2}"]
    assert set(day2["labels_version"]) == {1}
    assert _value(table, D2, "champion", "label_coverage") == 1.0
    assert set(day2[day2["role"] == "champion"]["maturity"]) == {"provisional"}  # 29 days old on 2024-07-01
    assert "29 of 30 days" in said and f"ds={D2}" in said

    history = delta(tmp / "stats_evaluation_history")
    mine = history[(history["partition"] == f"ds={D2}") & (history["metric"] == "label_coverage") & history["bucket"].isna()]
    coverage = mine[mine["role"] == "champion"].set_index("labels_version")["value"]
    assert sorted(coverage.index) == [0, 1] and coverage[0] < 0.9 < coverage[1] == 1.0
    assert len(history[history["partition"] == f"ds={D1}"]) == len(table[table["partition"] == f"ds={D1}"])


def _with(conf, tmp, name, change) -> str:
    doc = yaml.safe_load(open(conf))
    change(doc)
    path = tmp / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_missing_label_column_exits_2_naming_it(job, capsys):
    from jobs.evaluate import main

    conf, tmp = job
    bad = _with(conf, tmp, "bad_label.yaml", lambda d: d["evaluation"].update(label="outcome"))
    assert main(["--conf", bad, "--from", D1.isoformat()]) == 2
    err = capsys.readouterr().err
    assert "has no column 'outcome' (evaluation.label)" in err and str(tmp / "labels") in err


def test_no_evaluation_section_or_no_labels_table_exits_2(job, capsys):
    from jobs.evaluate import main

    conf, tmp = job
    none = _with(conf, tmp, "none.yaml", lambda d: d.pop("evaluation"))
    assert main(["--conf", none, "--from", D1.isoformat()]) == 2
    assert "no evaluation section" in capsys.readouterr().err
    gone = _with(conf, tmp, "gone.yaml", lambda d: d["evaluation"].update(labels=str(tmp / "nowhere")))
    assert main(["--conf", gone, "--partition", f"ds={D1}"]) == 2
    assert "evaluation.labels" in capsys.readouterr().err


def _minimal_job(evaluation: dict) -> dict:
    """The smallest job config that parses, with ``evaluation`` as its evaluation section."""
    return {
        "name": "churn",
        "input": {"path": "/data/customers", "partition_by": ["ds"]},
        "keys": ["customer_id"],
        "model": {"uri": "models:/churn@champion"},
        "output": {"scored": "/t/s", "quarantine": "/t/q", "stats": "/t/st", "runs": "/t/r"},
        "evaluation": evaluation,
    }


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"label": "churned"}, "evaluation.labels: is required"),
        ({"labels": "/l"}, "evaluation.label: is required"),
        ({"labels": "/l", "label": "churned", "keys": ["id"]}, "evaluation.keys[0]: 'id' is not one of the job's keys"),
        ({"labels": "/l", "label": "churned", "partition_by": ["day"]}, "evaluation.partition_by[0]: 'day' is not one of"),
        ({"labels": "/l", "label": "churned", "min_labelled": 1.5}, "evaluation.min_labelled: expected a rate"),
        ({"labels": "/l", "label": "churned", "horizon_days": -1}, "evaluation.horizon_days: expected days"),
        ({"labels": "/l", "label": "churned", "labelz": 1}, "evaluation.labelz: unknown key"),
        ({"labels": "/t/s", "label": "churned"}, "evaluation.labels: /t/s is already one of the job's tables"),
        ({"labels": "/l", "label": "customer_id"}, "evaluation.label: 'customer_id' is a key or partition column"),
        (
            {"labels": "/l", "label": "churned", "degradation": {"max_drop": {"auc": 0.1}}},
            "evaluation.degradation.max_drop.auc: unknown metric",
        ),
        (
            {"labels": "/l", "label": "churned", "degradation": {"max_drop": {"f1": -0.1}}},
            "evaluation.degradation.max_drop.f1: a drop is at least 0",
        ),
        (
            {"labels": "/l", "label": "churned", "degradation": {"k": 4, "n": 3}},
            "evaluation.degradation.k: expected partitions (at most n = 3)",
        ),
        (
            {"labels": "/l", "label": "churned", "degradation": {"drift_psi": 0}},
            "evaluation.degradation.drift_psi: a PSI limit is above 0",
        ),
        ({"labels": "/l", "label": "churned", "signals": "/t/r"}, "evaluation.signals: /t/r is already one of the job's tables"),
    ],
)
def test_a_bad_evaluation_section_is_refused_naming_the_key(section, message):
    from jobs.config import ConfigError, parse_config

    raw = _minimal_job(section)
    with pytest.raises(ConfigError, match=None) as err:
        parse_config(raw, "x.yaml")
    assert f"x.yaml: {message}" in str(err.value)


def test_the_evaluation_section_defaults_to_the_jobs_keys_partitions_and_stats_table():
    from jobs.config import parse_config

    raw = _minimal_job({"labels": "/l", "label": "churned"})
    e = parse_config(raw, "x.yaml").evaluation
    assert (e.keys, e.partition_by, e.output, e.history) == (
        ("customer_id",),
        ("ds",),
        "/t/st_evaluation",
        "/t/st_evaluation_history",
    )
    assert (e.horizon_days, e.min_labelled, e.output_column, e.decision_column) == (30, 0.9, "probability", "label")
    assert (e.signals, e.windows, e.degradation.enabled, e.degradation.k, e.degradation.n) == (
        "/t/st_signals",
        "/t/st_evaluation_windows",
        False,
        2,
        3,
    )
    rule = parse_config(
        _minimal_job({"labels": "/l", "label": "churned", "degradation": {"max_drop": {"roc_auc": 0.05}, "n": 1}}), "x.yaml"
    )
    assert (rule.evaluation.degradation.max_drop, rule.evaluation.degradation.k) == ((("roc_auc", 0.05),), 1)
    assert not parse_config({k: v for k, v in raw.items() if k != "evaluation"}, "x.yaml").evaluation.enabled


def test_the_demo_labels_are_the_churned_values_of_the_scored_customers_with_a_delay():
    from jobs.demo.data import DEGRADED_AGE, input_table, labels_table
    from jobs.demo.data import NEVER_SCORED as EXTRA

    start = dt.date(2024, 6, 1)
    labels = labels_table(4, 300, start).to_pandas()
    scored = input_table(4, 300, start).to_pandas()
    counts = labels.groupby("ds").size()
    assert start + dt.timedelta(days=3) not in counts.index  # the newest day: no labels yet
    assert 0.35 * 300 < counts[start + dt.timedelta(days=2)] < 0.65 * 300  # the day before: about half
    degraded = 3 - DEGRADED_AGE  # the newest fully labelled day: churn drawn from another relation
    for i in range(3):
        day = start + dt.timedelta(days=i)
        truth = customers(300, seed=100 + i, ds=day, bad_fraction=0.01)
        mine = labels[labels["ds"] == day].merge(truth, on="customer_id", how="left", suffixes=("", "_drawn"))
        known = mine["churned_drawn"].notna()
        same = (mine.loc[known, "churned"] == mine.loc[known, "churned_drawn"]).mean()
        assert same < 0.8 if i == degraded else same == 1.0, (day, same)
        assert (~known).sum() == EXTRA  # customers that were never scored
        assert not set(mine.loc[~known, "customer_id"]) & set(scored["customer_id"].dropna())


def test_the_embedded_engine_writes_the_same_evaluation(job, first_run):
    """The first run went through the default engine (native where delta-spark's jars are); the
    embedded engine, into another table, gives the same rows for day 1 (whose labels have not
    changed since)."""
    from jobs.evaluate import main

    conf, tmp = job
    other = tmp / "embedded_evaluation"
    args = ["--set", "engine=embedded", "--set", f"evaluation.output={other}", "--as-of", "2024-07-02"]
    assert main(["--conf", conf, "--partition", f"ds={D1}", *args]) == 0
    keys = ["role", "model_version", "scope", "column", "metric", "bucket"]

    def day_one(table):
        rows = table[table["partition"] == f"ds={D1}"]
        return rows[[*keys, "value", "maturity", "label_coverage"]].sort_values(keys, na_position="first").reset_index(drop=True)

    pd.testing.assert_frame_equal(day_one(delta(other)), day_one(first_run[1]))
    assert len(delta(f"{other}_history")) == len(day_one(first_run[1]))
