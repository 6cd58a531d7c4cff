import pytest
from chispa import assert_column_equality, assert_df_equality
from pyspark.sql import functions as F

from jobs.config import StepConfig
from transforms.preprocess import clip, fill_null, log1p, pipeline


def test_clip_bounds_values_and_keeps_nulls(spark):
    df = spark.createDataFrame([(-5.0, 0.0), (3.0, 3.0), (50.0, 10.0), (None, None)], "x double, expected double")
    assert_column_equality(df.transform(clip("x", 0.0, 10.0)), "x", "expected")


def test_fill_null_uses_the_column_type(spark):
    df = spark.createDataFrame([(None, 7), (2, 2)], "x int, expected int")
    out = df.transform(fill_null("x", 7))
    assert out.schema["x"].dataType.simpleString() == "int"
    assert_column_equality(out, "x", "expected")


def test_log1p_matches_numpy(spark):
    import numpy as np

    values = [0.0, 1.0, 99.0]
    df = spark.createDataFrame([(v, float(np.log1p(v))) for v in values], "x double, expected double")
    out = df.transform(log1p("x")).select((F.abs(F.col("x") - F.col("expected")) < 1e-12).alias("close"))
    assert all(r.close for r in out.collect())


def test_pipeline_applies_steps_in_order_and_keeps_the_column_order(spark):
    df = spark.createDataFrame([(1, None, "a"), (2, 500, "b")], "id long, tenure int, plan string")
    steps = [
        StepConfig("fill_null", "tenure", (("value", 0),)),
        StepConfig("cast", "tenure", (("to", "double"),)),
        StepConfig("clip", "tenure", (("lower", 0.0), ("upper", 100.0))),
    ]
    expected = spark.createDataFrame([(1, 0.0, "a"), (2, 100.0, "b")], "id long, tenure double, plan string")
    assert_df_equality(df.transform(pipeline(steps)), expected, ignore_row_order=True, ignore_nullable=True)


def test_pipeline_names_a_missing_column(spark):
    df = spark.createDataFrame([(1,)], "id long")
    with pytest.raises(ValueError, match=r"not in the input: \['tenure'\]"):
        df.transform(pipeline([StepConfig("log1p", "tenure")]))
