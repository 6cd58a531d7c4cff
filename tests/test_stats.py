import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T

from jobs.config import RuleConfig
from transforms.stats import input_profile, prediction_profile
from transforms.validation import validate

D1, D2 = dt.date(2024, 6, 1), dt.date(2024, 6, 2)


def as_dict(df):
    return {(r.ds, r.scope, r.column, r.metric, r.bucket): r.value for r in df.collect()}


def test_input_profile_matches_pandas(spark):
    rows = [
        (D1, 1.0, "a"),
        (D1, None, "b"),
        (D1, float("nan"), None),
        (D1, 4.0, "a"),
        (D1, -2.0, "a"),
        (D2, 10.0, "c"),
        (D2, 20.0, "c"),
    ]
    df = spark.createDataFrame(rows, "ds date, x double, plan string")
    rules = [RuleConfig("range", "x_positive", "x", min=0)]
    stats = as_dict(df.transform(validate(rules)).transform(input_profile(["x", "plan"], ["x_positive"], ["ds"])))

    pdf = pd.DataFrame(rows, columns=["ds", "x", "plan"])
    for ds, group in pdf.groupby("ds"):
        finite = group["x"].dropna()
        assert stats[(ds, "rows", "*", "rows_in", None)] == len(group)
        assert stats[(ds, "input", "x", "null_count", None)] == group["x"].isna().sum()  # NaN counts as missing
        assert stats[(ds, "input", "x", "mean", None)] == pytest.approx(finite.mean())
        assert stats[(ds, "input", "x", "stddev", None)] == pytest.approx(finite.std(ddof=1))
        assert stats[(ds, "input", "x", "min", None)] == finite.min()
        assert stats[(ds, "input", "plan", "null_count", None)] == group["plan"].isna().sum()
        assert stats[(ds, "input", "plan", "distinct_count", None)] == group["plan"].nunique()
    # -2.0 breaks the rule; NaN does too (a range rule wants finite numbers)
    assert stats[(D1, "rows", "*", "rows_quarantined", None)] == 2
    assert stats[(D1, "rows", "x_positive", "quarantined_by_rule", None)] == 2
    assert stats[(D2, "rows", "*", "rows_quarantined", None)] == 0


def test_prediction_histogram_matches_numpy(spark):
    rng = np.random.default_rng(1)
    p = rng.random(500)
    p[:3] = [0.0, 1.0, 0.1]  # edges: 1.0 belongs to the last bin, 0.1 to the second
    labels = (p >= 0.5).astype("int64")
    df = spark.createDataFrame(pd.DataFrame({"ds": D1, "probability": p, "label": labels}))
    outputs = T.StructType([T.StructField("probability", T.DoubleType()), T.StructField("label", T.LongType())])
    stats = as_dict(df.transform(prediction_profile(outputs, ["ds"])))

    counts, _ = np.histogram(p, bins=np.linspace(0, 1, 11))
    got = [
        v for (ds, scope, col, metric, bucket), v in sorted(stats.items(), key=lambda kv: kv[0][4] or "") if metric == "histogram"
    ]
    assert got == counts.tolist()
    assert stats[(D1, "prediction", "probability", "mean", None)] == pytest.approx(p.mean())
    assert stats[(D1, "prediction", "label", "mean", None)] == pytest.approx(labels.mean())  # positive rate
    assert stats[(D1, "rows", "*", "rows_scored", None)] == 500


@pytest.fixture(scope="module")
def nan_inf_and_null_profile(spark):
    """2000 normal values of which some are NaN, +inf or null, profiled: (rows, stats)."""
    rng = np.random.default_rng(4)
    x = rng.normal(10, 3, 2000)
    x[:40] = np.nan
    x[40:70] = np.inf  # not finite: counted in neither the nulls nor the quantiles
    rows = [(D1, None if i % 50 == 7 else float(v)) for i, v in enumerate(x)]
    df = spark.createDataFrame(rows, "ds date, x double")
    return rows, as_dict(df.transform(validate([])).transform(input_profile(["x"], [], ["ds"])))


def test_nan_rate_is_reported_apart_from_the_null_rate(nan_inf_and_null_profile):
    rows, stats = nan_inf_and_null_profile
    values = pd.Series([v for _, v in rows], dtype="float64")
    nulls = sum(1 for _, v in rows if v is None)
    assert stats[(D1, "input", "x", "nan_count", None)] == 40 - sum(1 for i in range(40) if i % 50 == 7)
    assert stats[(D1, "input", "x", "null_count", None)] == values.isna().sum()  # null or NaN
    assert stats[(D1, "input", "x", "nan_rate", None)] == pytest.approx((values.isna().sum() - nulls) / len(rows))
    assert stats[(D1, "input", "x", "null_rate", None)] == pytest.approx(values.isna().sum() / len(rows))


def test_quantiles_of_the_finite_values_match_numpy(nan_inf_and_null_profile):
    rows, stats = nan_inf_and_null_profile
    values = pd.Series([v for _, v in rows], dtype="float64")
    finite = values[np.isfinite(values)].to_numpy()
    for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99):
        got = stats[(D1, "input", "x", "quantile", str(q))]
        # percentile_approx returns an element of the data whose rank is within 1/10000 of q
        rank = np.searchsorted(np.sort(finite), got, side="right") / len(finite)
        assert got in finite and abs(rank - q) <= 1 / len(finite) + 1e-4


def test_category_profile_counts_top_k_other_and_unseen_like_pandas(spark):
    from transforms.stats import category_profile

    plans = ["basic"] * 7 + ["standard"] * 5 + ["premium"] * 3 + ["gold"] * 2 + ["platinum"] + [None] * 4
    regions = (["north", "south", "east"] * 8)[: len(plans)]
    rows = [(D1, p, r) for p, r in zip(plans, regions, strict=False)] + [(D2, "basic", "west")]
    df = spark.createDataFrame(rows, "ds date, plan string, region string")
    known = {"plan": ["basic", "standard", "premium"]}
    got = as_dict(df.transform(category_profile(["plan", "region"], ["ds"], top_k=2, known=known)))

    pdf = pd.DataFrame(rows, columns=["ds", "plan", "region"])
    for ds, group in pdf.groupby("ds"):
        for column in ("plan", "region"):
            freq = group[column].value_counts()
            freq = freq.sort_index().sort_values(ascending=False, kind="stable")  # ties by value, like the job
            for value, n in freq.head(2).items():
                assert got[(ds, "input", column, "top_count", value)] == n
            assert got.get((ds, "input", column, "other_count", None), 0) == freq.iloc[2:].sum()
        unseen = group["plan"].notna() & ~group["plan"].isin(known["plan"])
        assert got[(ds, "input", "plan", "unseen_count", None)] == unseen.sum()
    assert not any(k[2] == "region" and k[3] == "unseen_count" for k in got)  # no reference, no unseen


@pytest.fixture(scope="module")
def profile_over_reference_bins(spark):
    """A feature x (with values outside the reference range, NaN and inf), a categorical plan and a
    probability, profiled over reference bins: the inputs, the bins and the stats."""
    from transforms.stats import Bins, bins_from_profile

    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 3.0, 1000)
    x[:5] = [-1.0, 100.0, np.nan, np.inf, 0.0]  # outside the reference range: into the end bins; NaN and inf: nowhere
    p = rng.random(1000)
    plan = rng.choice(["basic", "standard", "premium", "gold"], 1000)
    edges = [0.0, 1.0, 2.5, 4.0, 8.0, 20.0]
    fb = {
        "x": bins_from_profile("x", {"kind": "numeric", "mean": 6.0, "bins": {"edges": edges, "proportions": [0.2] * 5}}),
        "plan": bins_from_profile(
            "plan", {"kind": "categorical", "frequencies": {"basic": 0.5, "standard": 0.3, "premium": 0.2}, "other_share": 0.0}
        ),
    }
    pb = {"probability": Bins("probability", edges=(0.0, 0.3, 0.6, 1.0), reference=(0.5, 0.3, 0.2))}
    df = spark.createDataFrame(
        pd.DataFrame({"ds": D1, "x": x, "plan": plan, "probability": p, "label": (p >= 0.5).astype("int64")})
    )
    outputs = T.StructType([T.StructField("probability", T.DoubleType()), T.StructField("label", T.LongType())])
    stats = as_dict(df.transform(prediction_profile(outputs, ["ds"], fb, pb)))
    return SimpleNamespace(x=x, p=p, plan=plan, edges=edges, fb=fb, pb=pb, stats=stats)


def test_feature_bins_over_reference_bins_match_numpy(profile_over_reference_bins):
    got = profile_over_reference_bins
    x, plan, edges, fb, stats = got.x, got.plan, got.edges, got.fb, got.stats
    finite = x[np.isfinite(x)]
    expected, _ = np.histogram(finite, [-np.inf, *edges[1:-1], np.inf])
    assert [stats[(D1, "model_input", "x", "bin_count", b)] for b in fb["x"].labels] == expected.tolist()
    assert stats[(D1, "model_input", "x", "mean", None)] == pytest.approx(finite.mean())
    assert fb["plan"].labels == ("basic", "standard", "premium", "<other>")
    assert [stats[(D1, "model_input", "plan", "bin_count", b)] for b in fb["plan"].labels] == [
        (plan == "basic").sum(),
        (plan == "standard").sum(),
        (plan == "premium").sum(),
        (plan == "gold").sum(),
    ]


def test_prediction_histogram_over_reference_bins_matches_numpy(profile_over_reference_bins):
    got = profile_over_reference_bins
    p, pb, stats = got.p, got.pb, got.stats
    expected_p, _ = np.histogram(p, [-np.inf, 0.3, 0.6, np.inf])
    assert [stats[(D1, "prediction", "probability", "histogram", b)] for b in pb["probability"].labels] == expected_p.tolist()
    assert stats[(D1, "prediction", "label", "positive_rate", None)] == pytest.approx((p >= 0.5).mean())
