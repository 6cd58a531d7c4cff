"""The evaluation's sufficient statistics (transforms.evaluation) and the metrics derived from them
(jobs.quality.metrics), against scikit-learn, scipy and numpy on the same rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.sql import functions as F
from scipy import stats as scipy_stats
from sklearn import metrics as skm

from jobs.quality.metrics import (
    MetricValue,
    binary_metrics,
    mcnemar_p_value,
    merge_statistics,
    metric_rows,
    paired_metrics,
    regression_metrics,
    wilson_interval,
)
from transforms.bootstrap import poisson_weight, row_weight
from transforms.evaluation import (
    BinaryTarget,
    PairedTarget,
    RegressionTarget,
    Settings,
    evaluation_statistics,
)

DAYS = ("2024-03-01", "2024-03-02")
SCHEMA = (
    "day string, id long, label int, score double, decision int, score2 double, decision2 int, amount double, predicted double"
)
TARGETS = [
    BinaryTarget("churn", "label", "score", "decision"),
    RegressionTarget("amount", "amount", "predicted"),
    PairedTarget("churn_vs_challenger", "label", "score", "decision", "score2", "decision2"),
]
BOOTSTRAPPED = ("f1", "roc_auc", "average_precision", "log_loss", "brier", "ece")


def _rows(n: int, seed: int = 15) -> list[tuple]:
    """n rows over two days: a logistic label, a noisy score (some exactly 0 or 1, a few outside
    [0, 1]), a decision that is not a threshold of it, some null labels and scores; a challenger; a
    regression label (some 0, some null) and its prediction."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-1.5 * x))).astype(int)
    score = 1 / (1 + np.exp(-(1.3 * x + rng.normal(scale=0.6, size=n))))
    score[rng.choice(n, 10, replace=False)] = 0.0
    score[rng.choice(n, 10, replace=False)] = 1.0
    score[rng.choice(n, 3, replace=False)] = [1.2, -0.3, 1.0000001]
    decision = ((score >= 0.5) ^ (rng.uniform(size=n) < 0.05)).astype(int)
    score2 = 1 / (1 + np.exp(-(1.0 * x + rng.normal(scale=0.9, size=n))))
    decision2 = (score2 >= 0.45).astype(int)
    amount = 10 + 3 * x + rng.normal(size=n)
    amount[rng.uniform(size=n) < 0.05] = 0.0
    predicted = amount + rng.normal(scale=1.5, size=n)
    null_label, null_score, null_amount = rng.uniform(size=(3, n)) < [[0.08], [0.02], [0.05]]
    out = []
    for i in range(n):
        out.append(
            (
                DAYS[i % 2],
                i,
                None if null_label[i] else int(label[i]),
                None if null_score[i] else float(score[i]),
                None if null_score[i] else int(decision[i]),
                float(score2[i]),
                int(decision2[i]),
                None if null_amount[i] else float(amount[i]),
                float(predicted[i]),
            )
        )
    return out


@pytest.fixture(scope="module")
def frame(spark):
    rows = _rows(3000)
    return rows, spark.createDataFrame(rows, SCHEMA)


@pytest.fixture(scope="module")
def pooled_and_small(spark, frame):
    """The statistics of all rows with no partition, and of the first 400 rows, in one query."""
    rows, _ = frame
    both = [("pooled", *r[1:]) for r in rows] + [("small", *r[1:]) for r in rows[:400]]
    df = spark.createDataFrame(both, SCHEMA)
    stats = [r.asDict() for r in df.transform(evaluation_statistics(TARGETS, ["id"], ["day"])).collect()]
    return [r for r in stats if r["day"] == "pooled"], [r for r in stats if r["day"] == "small"]


@pytest.fixture(scope="module")
def data(frame):
    rows, df = frame
    return rows, [r.asDict() for r in df.transform(evaluation_statistics(TARGETS, ["id"], ["day"])).collect()]


def _by_name(metrics: list[MetricValue]) -> dict[str, MetricValue]:
    return {m.name: m for m in metrics}


def _arrays(rows, day=None):
    keep = [r for r in rows if day is None or r[0] == day]
    col = lambda i: np.array([r[i] for r in keep], dtype=object)  # noqa: E731
    return {name: col(i) for i, name in enumerate(SCHEMA.replace(",", "").split()[0::2])}


def _binary_truth(rows, day=None):
    a = _arrays(rows, day)
    ok = np.array([lab is not None and s is not None for lab, s in zip(a["label"], a["score"], strict=True)])
    y, d = a["label"][ok].astype(int), a["decision"][ok].astype(int)
    p = np.clip(a["score"][ok].astype(float), 0, 1)
    return y, p, d, a


def test_the_statistics_are_one_aggregation_of_the_rows(frame):
    """One aggregation reads the rows; the replicates are drawn by a second one over its output
    (buckets x statistics), a chain, not a second pass over the input."""
    df = frame[1].transform(evaluation_statistics(TARGETS, ["id"], ["day"]))
    plan = df._jdf.queryExecution().optimizedPlan().toString()
    assert plan.count("Aggregate [") == 2
    assert plan.count("LogicalRDD") + plan.count("LocalRelation") == 1  # the input, once
    without = frame[1].transform(evaluation_statistics(TARGETS, ["id"], ["day"], Settings(replicates=0)))
    assert without._jdf.queryExecution().optimizedPlan().toString().count("Aggregate [") == 1


@pytest.mark.parametrize("day", [*DAYS, None])
def test_counts_and_classification_metrics_equal_sklearn(data, day):
    rows, stats = data
    y, p, d, a = _binary_truth(rows, day)
    s = merge_statistics([r for r in stats if day is None or r["day"] == day], "churn")
    tn, fp, fn, tp = skm.confusion_matrix(y, d, labels=[0, 1]).ravel()
    assert [s.get(m) for m in ("n", "tp", "fp", "fn", "tn")] == [len(y), tp, fp, fn, tn]
    assert s.get("unlabelled") == sum(v is None for v in a["label"])
    assert s.get("missing_score") == sum(lab is not None and sc is None for lab, sc in zip(a["label"], a["score"], strict=True))
    m = _by_name(binary_metrics(s))
    pe = np.clip(p, 1e-15, 1 - 1e-15)
    expected = {
        "prevalence": y.mean(),
        "accuracy": skm.accuracy_score(y, d),
        "precision": skm.precision_score(y, d),
        "recall": skm.recall_score(y, d),
        "specificity": skm.recall_score(y, d, pos_label=0),
        "f1": skm.f1_score(y, d),
        "log_loss": skm.log_loss(y, pe),
        "brier": skm.brier_score_loss(y, p),
    }
    for name, value in expected.items():
        assert m[name].value == pytest.approx(value, rel=1e-12), name


@pytest.mark.parametrize("day", [*DAYS, None])
def test_auc_and_average_precision_are_within_their_error_bound_of_sklearn(data, day):
    rows, stats = data
    y, p, _, _ = _binary_truth(rows, day)
    m = _by_name(binary_metrics(merge_statistics([r for r in stats if day is None or r["day"] == day], "churn")))
    for name, exact in (("roc_auc", skm.roc_auc_score(y, p)), ("average_precision", skm.average_precision_score(y, p))):
        bound = m[name].error_bound
        assert bound is not None and 0 <= bound < 0.01, name
        assert abs(m[name].value - exact) <= bound + 1e-12, name


def test_ece_equals_numpy_over_the_same_bins(data):
    rows, stats = data
    y, p, _, _ = _binary_truth(rows)
    b = np.minimum(np.floor(p * 10), 9).astype(int)
    expected = sum(abs(p[b == k].sum() - y[b == k].sum()) for k in range(10)) / len(y)
    assert _by_name(binary_metrics(merge_statistics(stats, "churn")))["ece"].value == pytest.approx(expected, rel=1e-12)


def test_proportions_have_wilson_intervals(data):
    """The Wilson bounds are the roots of (k/n - p)² = z² p(1 - p) / n (statsmodels is not installed)."""
    _, stats = data
    s = merge_statistics(stats, "churn")
    z = scipy_stats.norm.ppf(0.975)
    counts = {
        "accuracy": (s.get("tp") + s.get("tn"), s.get("n")),
        "precision": (s.get("tp"), s.get("tp") + s.get("fp")),
        "recall": (s.get("tp"), s.get("tp") + s.get("fn")),
        "specificity": (s.get("tn"), s.get("tn") + s.get("fp")),
        "prevalence": (s.get("tp") + s.get("fn"), s.get("n")),
    }
    m = _by_name(binary_metrics(s))
    for name, (k, n) in counts.items():
        ph = k / n
        roots = sorted(np.roots([1 + z * z / n, -(2 * ph + z * z / n), ph * ph]).real)
        assert (m[name].lower, m[name].upper) == pytest.approx(roots, rel=1e-9), name
        assert wilson_interval(k, n) == pytest.approx(roots, rel=1e-9)


@pytest.mark.parametrize("day", [*DAYS, None])
def test_regression_metrics_equal_sklearn(data, day):
    rows, stats = data
    a = _arrays(rows, day)
    ok = np.array([v is not None for v in a["amount"]])
    y, yhat = a["amount"][ok].astype(float), a["predicted"][ok].astype(float)
    nz = y != 0
    m = _by_name(regression_metrics(merge_statistics([r for r in stats if day is None or r["day"] == day], "amount")))
    assert m["mae"].value == pytest.approx(skm.mean_absolute_error(y, yhat), rel=1e-12)
    assert m["rmse"].value == pytest.approx(math.sqrt(skm.mean_squared_error(y, yhat)), rel=1e-12)
    assert m["bias"].value == pytest.approx(np.mean(yhat - y), rel=1e-9)
    assert m["r2"].value == pytest.approx(skm.r2_score(y, yhat), rel=1e-9)
    assert m["mape"].value == pytest.approx(skm.mean_absolute_percentage_error(y[nz], yhat[nz]), rel=1e-12)


def _all_metrics(stats) -> dict[str, MetricValue]:
    out = {f"churn.{m.name}": m for m in binary_metrics(merge_statistics(stats, "churn"))}
    out |= {f"amount.{m.name}": m for m in regression_metrics(merge_statistics(stats, "amount"))}
    return out | {f"pair.{m.name}": m for m in paired_metrics(merge_statistics(stats, "churn_vs_challenger"))}


def test_a_window_from_summed_partition_statistics_equals_the_pooled_rows(data, pooled_and_small):
    window, pooled = _all_metrics(data[1]), _all_metrics(pooled_and_small[0])
    assert window.keys() == pooled.keys()
    for name, m in window.items():
        p = pooled[name]
        assert m.reason == p.reason, name
        for field in ("value", "lower", "upper", "error_bound"):
            expected = getattr(p, field)
            assert getattr(m, field) == (None if expected is None else pytest.approx(expected, rel=1e-9, abs=1e-12)), (
                f"{name}.{field}"
            )


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_more_rows(data, pooled_and_small):
    full, small = _all_metrics(data[1]), _all_metrics(pooled_and_small[1])
    names = [f"churn.{n}" for n in BOOTSTRAPPED] + [f"amount.{n}" for n in ("mae", "rmse", "bias", "r2", "mape")]
    for name in [*names, "pair.delta_roc_auc"]:
        for m in (full[name], small[name]):
            assert m.lower is not None and m.upper is not None, name
            assert m.lower <= m.value <= m.upper, name
    for name in names:
        assert full[name].upper - full[name].lower < small[name].upper - small[name].lower, name


def test_undefined_metrics_are_none_with_a_reason_and_nothing_is_nan(spark):
    one_class = [("one_class", i, 1, 0.3 + i / 100, i % 2, 0.5, 1, 5.0, 5.0 + i) for i in range(40)]
    no_labels = [("no_labels", i, None, 0.3, 1, 0.5, 1, None, 5.0) for i in range(40)]
    schema = SCHEMA.replace("day string", "case string")
    df = spark.createDataFrame(one_class + no_labels, schema)
    stats = [r.asDict() for r in df.transform(evaluation_statistics(TARGETS, ["id"], ["case"])).collect()]
    assert all(r["value"] is None or math.isfinite(r["value"]) for r in stats)
    of = lambda case, column: merge_statistics([r for r in stats if r["case"] == case], column)  # noqa: E731
    one = _by_name(binary_metrics(of("one_class", "churn")))
    assert one["recall"].value == pytest.approx(0.5)
    for name in ("specificity", "roc_auc"):
        assert (one[name].value, one[name].reason) == (None, "one class only: no negatives")
    assert one["average_precision"].value == 1.0  # every retrieved row is a positive, as scikit-learn has it
    constant = _by_name(regression_metrics(of("one_class", "amount")))
    assert (constant["r2"].value, constant["r2"].reason) == (None, "constant label")
    assert (
        _by_name(paired_metrics(of("one_class", "churn_vs_challenger")))["delta_roc_auc"].reason == "one class only: no negatives"
    )
    nothing = [
        *binary_metrics(of("no_labels", "churn")),
        *regression_metrics(of("no_labels", "amount")),
        *binary_metrics(merge_statistics([], "churn")),
    ]
    coverage = [m for m in nothing if m.name == "label_coverage"]
    assert [m.value for m in coverage] == [0.0, None]
    for m in nothing:
        if m.name != "label_coverage":
            assert (m.value, m.reason) == (None, "no labelled rows"), m.name
    assert _by_name(paired_metrics(of("no_labels", "churn_vs_challenger")))["mcnemar_p_value"].value is None
    rows = metric_rows([*nothing, *one.values()], "churn", partition={"case": "x"})
    assert all(r["value"] is None or math.isfinite(r["value"]) for r in rows)
    assert {
        "scope": "evaluation",
        "column": "churn",
        "metric": "roc_auc",
        "bucket": "reason: one class only: no negatives",
        "value": None,
        "case": "x",
    } in rows


def test_metric_rows_carry_value_interval_and_error_bound():
    m = MetricValue("roc_auc", 0.8, 0.75, 0.85, error_bound=0.001)
    rows = metric_rows([m, MetricValue("precision", None, reason="no positive decisions")], "churn")
    assert [(r["metric"], r["bucket"], r["value"]) for r in rows] == [
        ("roc_auc", None, 0.8),
        ("roc_auc", "lower", 0.75),
        ("roc_auc", "upper", 0.85),
        ("roc_auc", "error_bound", 0.001),
        ("precision", None, None),
        ("precision", "reason: no positive decisions", None),
    ]
    with pytest.raises(ValueError, match="finite"):
        MetricValue("f1", float("nan"))


@pytest.mark.parametrize(("n01", "n10"), [(3, 9), (0, 5), (11, 13), (30, 12), (20, 20)])
def test_mcnemar_is_exact_binomial_for_small_counts_else_chi_square(n01, n10):
    if n01 + n10 < 25:
        expected = scipy_stats.binomtest(n01, n01 + n10, 0.5).pvalue
    else:
        expected = scipy_stats.chi2.sf((abs(n01 - n10) - 1) ** 2 / (n01 + n10), 1)
    assert mcnemar_p_value(n01, n10) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_p_value(0, 0) == 1.0


def test_paired_statistics_give_mcnemar_counts_and_a_paired_delta_auc(data):
    rows, stats = data
    a = _arrays(rows)
    ok = np.array([lab is not None and s is not None for lab, s in zip(a["label"], a["score"], strict=True)])
    y = a["label"][ok].astype(int)
    right_a, right_b = a["decision"][ok].astype(int) == y, a["decision2"][ok].astype(int) == y
    s = merge_statistics(stats, "churn_vs_challenger")
    assert (s.get("paired_n"), s.get("mcnemar_n01"), s.get("mcnemar_n10")) == (
        len(y),
        sum(right_a & ~right_b),
        sum(~right_a & right_b),
    )
    m = _by_name(paired_metrics(s))
    assert m["mcnemar_p_value"].value == pytest.approx(mcnemar_p_value(sum(right_a & ~right_b), sum(~right_a & right_b)))
    p1, p2 = np.clip(a["score"][ok].astype(float), 0, 1), a["score2"][ok].astype(float)
    exact = skm.roc_auc_score(y, p2) - skm.roc_auc_score(y, p1)
    delta = m["delta_roc_auc"]
    assert abs(delta.value - exact) <= delta.error_bound + 1e-12
    assert delta.lower < delta.value < delta.upper < 0  # the noisier challenger ranks worse


def test_replicate_weights_are_deterministic_poisson_one_and_weigh_the_replicates(frame, data):
    """A row weighs its key's bucket's weight; the buckets' weights are Poisson(1), independent
    across replicates, and the same in any order and partitioning."""
    rows, df = frame
    cols = [row_weight(["id"], r, Settings().buckets).alias(f"w{r}") for r in range(20)]
    first = {r["id"]: tuple(r[1:]) for r in df.select("id", *cols).collect()}
    again = {r["id"]: tuple(r[1:]) for r in df.orderBy(df.id.desc()).repartition(3).select("id", *cols).collect()}
    assert first == again
    spark = df.sparkSession
    buckets = spark.range(20_000).select(*[poisson_weight([F.col("id").cast("int")], r).alias(f"w{r}") for r in range(20)])
    wb = np.array([tuple(r) for r in buckets.collect()], dtype=float)
    assert wb.mean() == pytest.approx(1.0, abs=0.02)
    assert wb.var() == pytest.approx(1.0, abs=0.05)
    assert (wb == 0).mean() == pytest.approx(math.exp(-1), abs=0.01)
    assert abs(np.corrcoef(wb[:, 0], wb[:, 1])[0, 1]) < 0.1  # replicates independent of each other
    # the aggregation's replicates are weighed by these: the regression's weighted row counts and sums
    w = np.array([first[r[1]] for r in rows], dtype=float)
    s = merge_statistics([r for r in data[1] if r["day"] == DAYS[0]], "amount")
    ok = np.array([r[0] == DAYS[0] and r[7] is not None for r in rows])
    amount = np.array([r[7] for r in rows], dtype=object)[ok].astype(float)
    assert s.boot("n")[:20] == pytest.approx(w[ok].sum(0), abs=0)
    assert s.boot("label_sum")[:20] == pytest.approx((w[ok] * amount[:, None]).sum(0), rel=1e-12)


def test_statistics_binned_otherwise_do_not_merge():
    row = {"day": DAYS[0], "scope": "evaluation", "column": "churn", "metric": "score_bins", "bucket": None}
    with pytest.raises(ValueError, match="score_bins"):
        merge_statistics([{**row, "value": 1000.0}, {**row, "day": DAYS[1], "value": 100.0}], "churn")
    with pytest.raises(ValueError, match="multiple"):
        Settings(score_bins=1000, boot_bins=30)
