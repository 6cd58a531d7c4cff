import math

import pytest
from chispa import assert_column_equality, assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import StepConfig, steps_from_spec
from transforms.preprocess import (
    PipelineError,
    bucketize,
    clip,
    derive,
    fill_null,
    input_columns,
    log1p,
    map_categories,
    pipeline,
    rename,
    select,
)


def steps(*raw):
    return steps_from_spec({"steps": list(raw)}, "test")


def test_clip_bounds_values_and_keeps_nulls_and_nan_missing(spark):
    rows = [(-5.0, 0.0), (3.0, 3.0), (50.0, 10.0), (None, None), (math.nan, math.nan), (math.inf, 10.0)]
    df = spark.createDataFrame(rows, "x double, expected double")
    out = df.transform(clip("x", 0.0, 10.0))
    # assert_column_equality has no NaN option: compare the two columns as one-column frames, row by row
    assert_df_equality(out.select(F.col("x").alias("v")), out.select(F.col("expected").alias("v")), allow_nan_equality=True)


def test_fill_null_uses_the_column_type(spark):
    df = spark.createDataFrame([(None, 7), (2, 2)], "x int, expected int")
    out = df.transform(fill_null("x", 7))
    assert out.schema["x"].dataType.simpleString() == "int"
    assert_column_equality(out, "x", "expected")


def test_fill_null_treats_nan_as_missing_in_floating_columns(spark):
    df = spark.createDataFrame([(math.nan, 1.5), (None, 1.5), (2.0, 2.0), (math.inf, math.inf)], "x double, expected double")
    assert_column_equality(df.transform(fill_null("x", 1.5)), "x", "expected")


def test_log1p_matches_numpy(spark):
    import numpy as np

    values = [0.0, 1.0, 99.0]
    df = spark.createDataFrame([(v, float(np.log1p(v))) for v in values], "x double, expected double")
    out = df.transform(log1p("x")).select((F.abs(F.col("x") - F.col("expected")) < 1e-12).alias("close"))
    assert all(r.close for r in out.collect())


def test_bucketize_gives_the_bucket_index_and_null_outside_the_splits(spark):
    rows = [
        (0.0, 0.0),
        (4.99, 0.0),
        (5.0, 1.0),
        (10.0, 1.0),  # the last bucket includes its upper edge
        (-0.1, None),
        (10.1, None),
        (None, None),
        (math.nan, None),
    ]
    df = spark.createDataFrame(rows, "x double, expected double")
    assert_column_equality(df.transform(bucketize("x", [0.0, 5.0, 10.0])), "x", "expected")


def test_bucketize_with_infinite_outer_splits_catches_every_number_of_an_int_column(spark):
    df = spark.createDataFrame([(-1000, 0.0), (0, 1.0), (7, 1.0), (None, None)], "x int, expected double")
    out = df.transform(bucketize("x", [-math.inf, 0.0, math.inf]))
    assert out.schema["x"].dataType == T.DoubleType()
    assert_column_equality(out, "x", "expected")


def test_map_categories_sends_unseen_values_to_other_and_keeps_nulls(spark):
    df = spark.createDataFrame(
        [("n", "north"), ("s", "south"), ("north", "other"), ("", "other"), (None, None)], "x string, expected string"
    )
    assert_column_equality(df.transform(map_categories("x", {"n": "north", "s": "south"}, "other")), "x", "expected")


def test_map_categories_on_a_numeric_code_compares_its_text(spark):
    df = spark.createDataFrame([(1, "one"), (2, "rest"), (None, None)], "x int, expected string")
    assert_column_equality(df.transform(map_categories("x", {"1": "one"}, "rest")), "x", "expected")


def test_derive_appends_a_new_column_and_replaces_an_existing_one_in_place(spark):
    df = spark.createDataFrame([(1, 2.0), (2, None)], "a int, b double")
    got = df.transform(derive("c", "a * b")).transform(derive("a", "a + 1"))
    expected = spark.createDataFrame([(2, 2.0, 2.0), (3, None, None)], "a int, b double, c double")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_select_and_rename_change_the_column_list(spark):
    df = spark.createDataFrame([(1, "x", 2.0)], "a int, b string, c double")
    got = df.transform(select(["c", "a"])).transform(rename({"a": "alpha"}))
    expected = spark.createDataFrame([(2.0, 1)], "c double, alpha int")
    assert_df_equality(got, expected, ignore_nullable=True)


def test_pipeline_applies_steps_in_order_and_keeps_the_column_order(spark):
    df = spark.createDataFrame([(1, None, "a"), (2, 500, "b")], "id long, tenure int, plan string")
    s = [
        StepConfig("fill_null", "tenure", (("value", 0),)),
        StepConfig("cast", "tenure", (("to", "double"),)),
        StepConfig("clip", "tenure", (("lower", 0.0), ("upper", 100.0))),
    ]
    expected = spark.createDataFrame([(1, 0.0, "a"), (2, 100.0, "b")], "id long, tenure double, plan string")
    assert_df_equality(df.transform(pipeline(s)), expected, ignore_row_order=True, ignore_nullable=True)


SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("tenure", T.IntegerType()),
        T.StructField("charge", T.DoubleType()),
        T.StructField("region", T.StringType()),
    ]
)
ALL = steps(
    {"step": "cast", "column": "tenure", "to": "double"},
    {"step": "fill_null", "column": "charge", "value": {"reference": "median"}},
    {"step": "log1p", "column": "charge"},
    {"step": "bucketize", "column": "tenure", "splits": [0, 12, 24, float("inf")]},
    {"step": "map_categories", "column": "region", "mapping": {"n": "north", "s": "south"}},
    {"step": "derive", "column": "charge_per_bucket", "expr": "charge / (tenure + 1)"},
    {"step": "rename", "columns": {"region": "area"}},
    {"step": "select", "columns": ["id", "tenure", "area", "charge_per_bucket"]},
)


def test_every_step_composes_into_one_pipeline_with_a_fitted_value(spark):
    rows = [(1, 5, 9.0, "n"), (2, 30, None, "x"), (3, None, math.nan, None), (4, 12, 0.0, "s")]
    got = spark.createDataFrame(rows, SCHEMA).transform(pipeline(ALL, {1: 3.0}))
    # by hand: NaN and null charges become 3.0 before log1p; tenure buckets [0,12) [12,24) [24,inf]
    expected = spark.createDataFrame(
        [
            (1, 0.0, "north", math.log1p(9.0) / 1.0),
            (2, 2.0, "other", math.log1p(3.0) / 3.0),
            (3, None, None, None),
            (4, 1.0, "south", math.log1p(0.0) / 2.0),
        ],
        "id long, tenure double, area string, charge_per_bucket double",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True, allow_nan_equality=True)


def test_pipeline_on_an_empty_partition_gives_an_empty_frame_with_the_output_schema(spark):
    got = spark.createDataFrame([], SCHEMA).transform(pipeline(ALL, {1: 3.0}))
    assert got.count() == 0
    assert [(f.name, f.dataType.simpleString()) for f in got.schema.fields] == [
        ("id", "bigint"),
        ("tenure", "double"),
        ("area", "string"),
        ("charge_per_bucket", "double"),
    ]


def test_pipeline_reads_only_the_columns_no_earlier_step_created():
    assert input_columns(ALL) == ("tenure", "charge", "region", "id")


def test_pipeline_names_the_step_and_a_missing_column(spark):
    df = spark.createDataFrame([(1,)], "id long")
    with pytest.raises(PipelineError, match=r"preprocessing\[0\] \(log1p tenure\): column 'tenure' is not in its input"):
        df.transform(pipeline([StepConfig("log1p", "tenure")]))


def test_pipeline_names_the_step_of_an_invalid_expression(spark):
    df = spark.createDataFrame([(1,)], "id long")
    bad = steps({"step": "cast", "column": "id", "to": "double"}, {"step": "derive", "column": "y", "expr": "nope + 1"})
    with pytest.raises(PipelineError, match=r"preprocessing\[1\] \(derive y\): .*nope"):
        df.transform(pipeline(bad))


def test_a_step_that_needs_a_fitted_value_refuses_to_run_without_one(spark):
    df = spark.createDataFrame([(1.0,)], "x double")
    with pytest.raises(PipelineError, match="no fitted median"):
        df.transform(pipeline(steps({"step": "fill_null", "column": "x", "value": {"reference": "median"}})))


def test_rename_onto_an_existing_column_is_refused(spark):
    df = spark.createDataFrame([(1, 2)], "a int, b int")
    with pytest.raises(PipelineError, match=r"preprocessing\[0\] \(rename\): column 'b' already exists"):
        df.transform(pipeline(steps({"step": "rename", "columns": {"a": "b"}})))
