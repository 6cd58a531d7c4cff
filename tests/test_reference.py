"""Fitting the pipeline on training data and the training reference profile, against numpy."""

import math

import numpy as np
import pytest
from pyspark.sql import types as T

from jobs.config import steps_from_spec
from jobs.model.training import fit_pipeline, fitted_values, profile
from transforms.preprocess import PipelineError, pipeline

SCHEMA = T.StructType(
    [T.StructField("x", T.DoubleType()), T.StructField("k", T.IntegerType()), T.StructField("c", T.StringType())]
)


def steps(*raw):
    return steps_from_spec({"steps": list(raw)}, "test")


def test_fitted_statistic_is_taken_where_the_step_runs(spark):
    rows = [(1.0, 1, "a"), (3.0, 2, "a"), (None, 3, "b"), (math.nan, 4, None), (100.0, 5, "a")]
    df = spark.createDataFrame(rows, SCHEMA)
    s = steps(
        {"step": "clip", "column": "x", "lower": 0, "upper": 10},  # 100 -> 10 before the median is taken
        {"step": "fill_null", "column": "x", "value": {"reference": "median"}},
        {"step": "fill_null", "column": "c", "value": {"reference": "mode"}},
        {"step": "fill_null", "column": "k", "value": {"reference": "mean"}},
    )
    prepared, fitted = fit_pipeline(df, s)
    assert fitted == [
        {"index": 1, "column": "x", "statistic": "median", "value": float(np.median([1.0, 3.0, 10.0]))},
        {"index": 2, "column": "c", "statistic": "mode", "value": "a"},
        {"index": 3, "column": "k", "statistic": "mean", "value": 3.0},
    ]
    assert sorted(r.x for r in prepared.collect()) == [1.0, 3.0, 3.0, 3.0, 10.0]
    # serving with the fitted values gives the same rows as training did
    served = df.transform(pipeline(s, fitted_values(s, {"fitted": fitted}, "ref")))
    assert sorted(served.collect()) == sorted(prepared.collect())


def test_a_statistic_the_reference_lacks_is_named_with_the_step(spark):
    s = steps(
        {"step": "cast", "column": "x", "to": "double"}, {"step": "fill_null", "column": "x", "value": {"reference": "max"}}
    )
    with pytest.raises(PipelineError, match=r"preprocessing\[1\] \(fill_null x\): model m has no fitted max of x"):
        fitted_values(s, {"fitted": [{"index": 1, "column": "x", "statistic": "median", "value": 1.0}]}, "model m")
    # a value fitted at another index for the same column and statistic still serves
    assert fitted_values(s, {"fitted": [{"index": 4, "column": "x", "statistic": "max", "value": 9.0}]}, "m") == {1: 9.0}


def test_median_of_a_string_column_is_a_pipeline_error(spark):
    df = spark.createDataFrame([(1.0, 1, "a")], SCHEMA)
    with pytest.raises(PipelineError, match=r"preprocessing\[0\] \(fill_null c\): median of c needs a numeric column"):
        fit_pipeline(df, steps({"step": "fill_null", "column": "c", "value": {"reference": "median"}}))


def test_profile_matches_numpy_for_numerics_and_counts_categories(spark):
    rng = np.random.default_rng(3)
    values = rng.normal(50, 10, 200)
    rows = [(float(v), int(i % 7), ["a", "b", "b", None][i % 4]) for i, v in enumerate(values)]
    rows += [(None, None, "c"), (math.nan, 1, "c"), (math.inf, 2, "c")]
    ref = profile(spark.createDataFrame(rows, SCHEMA), ["x", "c"])
    x, c = ref["features"]["x"], ref["features"]["c"]
    n = len(rows)
    finite = values  # the summaries ignore NaN and +/-inf; the null count includes NaN
    assert ref["rows"] == n and x["count"] == n
    assert x["null_count"] == 2 and x["null_rate"] == pytest.approx(2 / n)
    assert x["mean"] == pytest.approx(finite.mean()) and x["stddev"] == pytest.approx(finite.std(ddof=1))
    assert (x["min"], x["max"]) == (finite.min(), finite.max())
    assert x["quantiles"]["0.5"] == pytest.approx(np.quantile(finite, 0.5))
    assert x["quantiles"]["0.95"] == pytest.approx(np.quantile(finite, 0.95))
    edges = np.quantile(finite, np.linspace(0, 1, 11))
    assert x["bins"]["edges"] == pytest.approx(list(edges))
    counts, _ = np.histogram(finite, bins=edges)  # numpy's bins are half-open but the last, like ours
    assert x["bins"]["proportions"] == pytest.approx(list(counts / counts.sum()))
    assert c["kind"] == "categorical" and c["null_count"] == 50
    assert c["frequencies"] == pytest.approx({"b": 100 / 153, "a": 50 / 153, "c": 3 / 153})
