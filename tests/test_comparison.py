"""Champion-vs-challenger statistics, each against numpy/scipy/sklearn over the same data."""

import datetime as dt
import math
from types import SimpleNamespace

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy.stats import pearsonr
from sklearn.metrics import cohen_kappa_score

from transforms.comparison import derive_comparisons, tag_challengers
from transforms.drift import EPSILON, psi
from transforms.stats import Bins, prediction_profile

D1, D2 = dt.date(2024, 6, 1), dt.date(2024, 6, 2)
OUTPUTS = T.StructType([T.StructField("probability", T.DoubleType()), T.StructField("label", T.LongType())])
C0 = {"probability": "__lakescore_c0_probability", "label": "__lakescore_c0_label"}
SCHEMA = "ds date, probability double, label bigint, __lakescore_c0_probability double, __lakescore_c0_label bigint"
FIXED_EDGES = np.linspace(0, 1, 11)


def scored(seed, n, shift):
    """A champion's and a challenger's probabilities (correlated, the challenger's shifted) and
    decisions (probability >= 0.5), NaN where missing. The champion's probability is NaN in rows
    0-3; the challenger's is +inf in row 4, -inf in 5 and null in 6-9 (see ``rows``)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    pa = 1 / (1 + np.exp(-z))
    pb = 1 / (1 + np.exp(-(0.8 * z + shift + rng.normal(0, 0.7, n))))
    la, lb = (pa >= 0.5).astype("float64"), (pb >= 0.5).astype("float64")
    la[10:15] = np.nan  # null decisions on both sides, partly overlapping
    lb[12:18] = np.nan
    pa[:4] = np.nan
    pb[4], pb[5], pb[6:10] = np.inf, -np.inf, np.nan
    return SimpleNamespace(pa=pa, pb=pb, la=la, lb=lb)


def rows(ds, s):
    def decision(v):
        return None if np.isnan(v) else int(v)

    return [
        (ds, float(s.pa[i]), decision(s.la[i]), None if 6 <= i < 10 else float(s.pb[i]), decision(s.lb[i]))
        for i in range(len(s.pa))
    ]


def collect(df, challengers=(("0", C0),), prediction_bins=None):
    profile = df.transform(prediction_profile(OUTPUTS, ["ds"], prediction_bins=prediction_bins, challengers=list(challengers)))
    return derive_comparisons([r.asDict() for r in profile.collect()])


def as_dict(stats):
    return {(r["ds"], r["scope"], r["column"], r["metric"], r["bucket"]): r["value"] for r in stats}


@pytest.fixture(scope="module")
def compared(spark):
    """Two partitions, 300 and 200 rows, scored by a champion and challenger 0, profiled together."""
    data = {D1: scored(1, 300, 0.2), D2: scored(2, 200, -0.5)}
    all_rows = [r for ds, s in data.items() for r in rows(ds, s)]
    df = spark.createDataFrame(all_rows, SCHEMA)
    return SimpleNamespace(df=df, data=data, stats=as_dict(collect(df)))


def _decisions(s):
    both = ~np.isnan(s.la) & ~np.isnan(s.lb)
    return s.la[both].astype("int64"), s.lb[both].astype("int64")


@pytest.mark.parametrize("ds", [D1, D2])
def test_decision_agreement_kappa_and_flips_match_sklearn(compared, ds):
    a, b = _decisions(compared.data[ds])
    got = {k[3:]: v for k, v in compared.stats.items() if k[:3] == (ds, "comparison#0", "label")}
    assert got["compared", None] == len(a) == len(compared.data[ds].la) - 8
    assert got["agreement", None] == pytest.approx(np.mean(a == b), rel=1e-12)
    assert got["kappa", None] == pytest.approx(cohen_kappa_score(a, b), rel=1e-12)
    assert got["flips", "0->1"] == np.sum((a == 0) & (b == 1)) > 0
    assert got["flips", "1->0"] == np.sum((a == 1) & (b == 0)) > 0
    for i in (0, 1):
        for j in (0, 1):
            assert got["joint_count", f"{i},{j}"] == np.sum((a == i) & (b == j))
    assert got["non_binary", None] == 0


def test_each_partition_is_compared_on_its_own_rows(compared):
    kappas = {ds: compared.stats[(ds, "comparison#0", "label", "kappa", None)] for ds in (D1, D2)}
    pooled = [np.concatenate(x) for x in zip(*(_decisions(compared.data[ds]) for ds in (D1, D2)), strict=True)]
    assert kappas[D1] != pytest.approx(kappas[D2], abs=1e-3)
    assert cohen_kappa_score(*pooled) not in (pytest.approx(kappas[D1]), pytest.approx(kappas[D2]))
    assert compared.stats[(D2, "comparison#0", "probability", "compared", None)] == 200 - 10


@pytest.mark.parametrize("ds", [D1, D2])
def test_score_differences_and_pearson_match_numpy_and_scipy(compared, ds):
    s = compared.data[ds]
    both = np.isfinite(s.pa) & np.isfinite(s.pb)
    a, b = s.pa[both], s.pb[both]
    got = {k[3]: v for k, v in compared.stats.items() if k[:3] == (ds, "comparison#0", "probability")}
    assert got["compared"] == len(a) == len(s.pa) - 10  # NaN (4), inf (2) and null (4) left out
    assert got["mean_abs_diff"] == pytest.approx(np.mean(np.abs(a - b)), rel=1e-12)
    assert got["max_abs_diff"] == pytest.approx(np.max(np.abs(a - b)), rel=1e-12)
    assert got["pearson"] == pytest.approx(pearsonr(a, b).statistic, rel=1e-9)
    assert 0.5 < got["pearson"] < 0.99  # correlated, not the same


def _smoothed(counts):
    p = np.maximum(counts / counts.sum(), EPSILON)
    return p / p.sum()


@pytest.mark.parametrize("ds", [D1, D2])
def test_psi_between_the_two_histograms_matches_numpy(compared, ds):
    s = compared.data[ds]
    ca, _ = np.histogram(s.pa[np.isfinite(s.pa)], FIXED_EDGES)
    cb, _ = np.histogram(s.pb[np.isfinite(s.pb)], FIXED_EDGES)
    p, q = _smoothed(ca), _smoothed(cb)
    expected = float(np.sum((q - p) * np.log(q / p)))
    got = compared.stats[(ds, "comparison#0", "probability", "psi", None)]
    assert got == pytest.approx(expected, rel=1e-9)
    assert got == pytest.approx(psi(ca, cb), rel=1e-12)
    assert got > 0.01


@pytest.mark.parametrize("ds", [D1, D2])
def test_challenger_scope_profiles_the_challenger_in_the_champions_bins(compared, ds):
    s, stats = compared.data[ds], compared.stats
    finite = s.pb[np.isfinite(s.pb)]
    expected, _ = np.histogram(finite, FIXED_EDGES)
    champion = sorted(k[4] for k in stats if k[:4] == (ds, "prediction", "probability", "histogram"))
    challenger = sorted(k[4] for k in stats if k[:4] == (ds, "challenger#0", "probability", "histogram"))
    assert challenger == champion and len(champion) == 10
    assert [stats[(ds, "challenger#0", "probability", "histogram", b)] for b in challenger] == expected.tolist()
    assert stats[(ds, "challenger#0", "probability", "mean", None)] == pytest.approx(finite.mean(), rel=1e-12)
    assert stats[(ds, "challenger#0", "probability", "max", None)] == finite.max()
    lb = s.lb[~np.isnan(s.lb)]
    assert stats[(ds, "challenger#0", "label", "positive_rate", None)] == pytest.approx(lb.mean(), rel=1e-12)


def test_challenger_histogram_over_reference_bins_and_psi_in_them(compared):
    pb = {"probability": Bins("probability", edges=(0.0, 0.3, 0.6, 1.0), reference=(0.5, 0.3, 0.2))}
    stats = as_dict(collect(compared.df.where(f"ds = '{D1}'"), prediction_bins=pb))
    s = compared.data[D1]
    edges = [-np.inf, 0.3, 0.6, np.inf]
    ca, _ = np.histogram(s.pa[np.isfinite(s.pa)], edges)
    cb, _ = np.histogram(s.pb[np.isfinite(s.pb)], edges)
    labels = pb["probability"].labels
    assert [stats[(D1, "prediction", "probability", "histogram", b)] for b in labels] == ca.tolist()
    assert [stats[(D1, "challenger#0", "probability", "histogram", b)] for b in labels] == cb.tolist()
    assert stats[(D1, "comparison#0", "probability", "psi", None)] == pytest.approx(psi(ca, cb), rel=1e-12)


def test_kappa_is_undefined_without_two_binary_sides(spark):
    rows = [
        # ds 1: one challenger decision is 2; ds 2: nothing compared; ds 3: both always 1 (p_e = 1)
        *[(D1, 0.2, a, 0.4, b) for a, b in [(0, 0), (1, 1), (1, 2), (0, 1)]],
        *[(D2, 0.2, a, 0.2, None) for a in (0, 1, 1)],
        *[(dt.date(2024, 6, 3), p, 1, 0.7, 1) for p in (0.6, 0.8, 0.9)],
    ]
    stats = as_dict(collect(spark.createDataFrame(rows, SCHEMA)))
    assert stats[(D1, "comparison#0", "label", "non_binary", None)] == 1
    assert stats[(D1, "comparison#0", "label", "compared", None)] == 4
    assert stats[(D1, "comparison#0", "label", "agreement", None)] == 0.5
    assert stats[(D1, "comparison#0", "label", "kappa", None)] is None
    assert stats[(D2, "comparison#0", "label", "compared", None)] == 0
    assert stats[(D2, "comparison#0", "label", "agreement", None)] is None
    assert stats[(D2, "comparison#0", "label", "kappa", None)] is None
    d3 = dt.date(2024, 6, 3)
    assert stats[(d3, "comparison#0", "label", "agreement", None)] == 1.0
    assert stats[(d3, "comparison#0", "label", "kappa", None)] is None
    # a constant score has no correlation (and does not fail the query under ANSI)
    for ds in (D1, D2, d3):
        assert stats[(ds, "comparison#0", "probability", "pearson", None)] is None
    assert stats[(D1, "comparison#0", "probability", "mean_abs_diff", None)] == pytest.approx(0.2)
    assert stats[(D2, "comparison#0", "probability", "psi", None)] == pytest.approx(0.0, abs=1e-15)


def test_challengers_leave_the_champions_rows_as_they_were(compared):
    champion_only = as_dict(collect(compared.df, challengers=()))
    with_challenger = {k: v for k, v in compared.stats.items() if "#" not in k[1]}
    assert with_challenger == pytest.approx(champion_only, rel=1e-12)
    assert {k[1] for k in compared.stats} == {"rows", "prediction", "challenger#0", "comparison#0"}


def _aggregates(df):
    return df._jdf.queryExecution().optimizedPlan().toString().count("Aggregate [")


def test_challengers_are_profiled_in_the_champions_one_aggregation(compared):
    c1 = {"label": "__lakescore_c1_label"}  # challenger 1 has no probability
    df = compared.df.withColumn("__lakescore_c1_label", F.lit(1) - F.col("label"))
    alone = df.transform(prediction_profile(OUTPUTS, ["ds"]))
    both = df.transform(prediction_profile(OUTPUTS, ["ds"], challengers=[("0", C0), ("1", c1)]))
    assert _aggregates(alone) == _aggregates(both) == 1
    stats = as_dict(derive_comparisons([r.asDict() for r in both.collect()]))
    assert not any(k[1] in ("challenger#1", "comparison#1") and k[2] == "probability" for k in stats)
    la = compared.data[D1].la
    a = la[~np.isnan(la)].astype("int64")
    assert stats[(D1, "comparison#1", "label", "agreement", None)] == 0.0  # it decides the opposite
    assert stats[(D1, "comparison#1", "label", "kappa", None)] == pytest.approx(cohen_kappa_score(a, 1 - a))
    with pytest.raises(ValueError, match="unique"):
        prediction_profile(OUTPUTS, ["ds"], challengers=[("0", C0), ("0", c1)])


def test_derive_and_tag_keep_the_partition_keys_and_turn_nan_into_none():
    def row(part, scope, column, metric, bucket, value):
        return {"ds": part, "region": "eu", "scope": scope, "column": column, "metric": metric, "bucket": bucket, "value": value}

    joint = {"0,0": 40.0, "0,1": 10.0, "1,0": 5.0, "1,1": 45.0}
    given = [row(p, "comparison#3", "label", "joint_count", b, v) for p in (D1, D2) for b, v in joint.items()]
    given += [
        row(p, "comparison#3", "label", m, None, v) for p in (D1, D2) for m, v in [("agreement", 0.85), ("non_binary", 0.0)]
    ]
    given[0] = {**given[0], "value": 0.0}  # D1 has no 0,0 rows
    given += [
        row(D1, "comparison#3", "probability", "pearson", None, math.nan),
        row(D1, "prediction", "label", "mean", None, 0.5),
    ]
    derived = derive_comparisons(given)
    assert derived[: len(given)] == [
        {**r, "value": None if r["value"] is not None and math.isnan(r["value"]) else r["value"]} for r in given
    ]
    kappa = {r["ds"]: r["value"] for r in derived if r["metric"] == "kappa"}
    expected = {
        D1: cohen_kappa_score([0] * 10 + [1] * 5 + [1] * 45, [1] * 10 + [0] * 5 + [1] * 45),
        D2: cohen_kappa_score([0] * 50 + [1] * 50, [0] * 40 + [1] * 10 + [0] * 5 + [1] * 45),
    }
    assert kappa == pytest.approx(expected, rel=1e-12)
    assert all(r["region"] == "eu" for r in derived)

    tagged = tag_challengers([*derived, row(D1, "challenger#3", "label", "mean", None, 0.4)], {"3": "7"})
    assert {(r["scope"], r["model_version"]) for r in tagged} == {("comparison", "7"), ("challenger", "7"), ("prediction", None)}
    assert next(r for r in tagged if r["metric"] == "pearson")["value"] is None
    with pytest.raises(ValueError, match="'3'"):
        tag_challengers(derived, {"0": "7"})
