import datetime as dt

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
        (D1, 1.0, "a"), (D1, None, "b"), (D1, float("nan"), None), (D1, 4.0, "a"), (D1, -2.0, "a"),
        (D2, 10.0, "c"), (D2, 20.0, "c"),
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
    got = [v for (ds, scope, col, metric, bucket), v in sorted(stats.items(), key=lambda kv: kv[0][4] or "") if metric == "histogram"]
    assert got == counts.tolist()
    assert stats[(D1, "prediction", "probability", "mean", None)] == pytest.approx(p.mean())
    assert stats[(D1, "prediction", "label", "mean", None)] == pytest.approx(labels.mean())  # positive rate
    assert stats[(D1, "rows", "*", "rows_scored", None)] == 500
