"""Errors that say what went wrong and where: a table on S3 without credentials, a model that
refuses a batch's values."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T

from jobs.tables import StorageCredentialsError, read_table, register, table_exists, table_schema, table_version
from jobs.tables.embedded.storage import storage_error
from transforms.scoring import ModelInputError, ModelScoringError, model_failure, score, scoring_error_line

TABLE = "s3://lake/customers"

# --- S3 without credentials --------------------------------------------------------------------


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    """No AWS_* variable, no ~/.aws, and no instance metadata to ask: nowhere to find credentials."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("ask", [table_exists, table_version, table_schema])
def test_an_s3_table_without_credentials_is_named_at_once(no_aws_credentials, ask):
    started = time.monotonic()
    with pytest.raises(StorageCredentialsError, match=rf"^Delta table {TABLE}: no AWS credentials found .*AWS_ACCESS_KEY_ID"):
        ask(TABLE)
    assert time.monotonic() - started < 10


def test_reading_an_s3_table_without_credentials_lifts_the_error_out_of_spark(spark, no_aws_credentials):
    """The Python data source plans in a Spark worker: its error comes back as Spark's, and is lifted."""
    jvm_env = spark.sparkContext._jvm.System.getenv()
    if any(k in jvm_env for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE")):
        pytest.skip("Spark's workers inherit AWS credentials from the JVM's environment")
    environment = spark.sparkContext.environment
    environment["AWS_EC2_METADATA_DISABLED"] = "true"
    register(spark)  # a registered data source carries the environment its workers start with
    try:
        with pytest.raises(StorageCredentialsError, match=rf"^Delta table {TABLE}: no AWS credentials found"):
            read_table(spark, TABLE, "embedded")
    finally:
        environment.pop("AWS_EC2_METADATA_DISABLED", None)
        register(spark)


def test_a_bucket_in_another_region_is_a_configuration_error_and_a_network_error_is_not():
    redirect = OSError(
        "Generic S3 error\n ↳ Received redirect without LOCATION, this normally indicates an incorrectly configured region"
    )
    assert "set AWS_REGION" in str(storage_error(TABLE, redirect))
    unreachable = OSError("Generic S3 error\n ↳ error sending request\n ↳ dns error")
    assert storage_error(TABLE, unreachable) is unreachable
    assert storage_error("/local/table", redirect) is redirect


# --- a model that refuses a batch --------------------------------------------------------------

FEATURES = ["tenure", "charges", "calls"]  # the order the model was fitted in


@pytest.fixture(scope="module")
def linear_model():
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"tenure": [1.0, 2.0, 3.0, 4.0], "charges": [10.0, 5.0, 7.0, 1.0], "calls": [0.0, 1.0, 0.0, 2.0]})
    return LinearRegression().fit(x, [1.0, 2.0, 3.0, 4.0])


def refusal(model, frame: pd.DataFrame) -> Exception:
    """What the scoring stage raises when ``model`` refuses ``frame``."""
    with pytest.raises(Exception) as err:
        model.predict(frame)
    return model_failure(frame, err.value, "/models/churn")


def test_infinite_values_the_model_refuses_are_named_by_column_with_the_rows(linear_model):
    frame = pd.DataFrame({"tenure": [1.0, np.inf, 3.0], "charges": [-np.inf, np.inf, 1.0], "calls": [0.0, 0.0, 1.0]})
    err = refusal(linear_model, frame)
    assert isinstance(err, ModelInputError)
    assert str(err).startswith(
        "2 of 3 rows of a batch hold values the model refused, in column(s) tenure (inf: 1), charges (inf: 1, -inf: 1); "
    )
    assert "The model at /models/churn said: ValueError: Input X contains infinity" in str(err)


def test_nan_is_not_named_when_the_model_refused_infinity():
    frame = pd.DataFrame({"tenure": [np.inf, 1.0], "calls": [np.nan, 1.0]})
    err = model_failure(frame, ValueError("Input X contains infinity or a value too large"), "/models/churn")
    assert "in column(s) tenure (inf: 1); " in str(err)


def test_nan_is_named_when_the_model_says_it_refuses_nan(linear_model):
    frame = pd.DataFrame({"tenure": [1.0, 2.0], "charges": [np.nan, 1.0], "calls": [0.0, 1.0]}, columns=FEATURES)
    err = refusal(linear_model, frame)
    assert isinstance(err, ModelInputError)
    assert "1 of 2 rows of a batch hold values the model refused, in column(s) charges (NaN: 1)" in str(err)


def test_any_other_model_failure_keeps_its_message_and_says_where_the_model_is():
    frame = pd.DataFrame({"tenure": [1.0, np.nan]})
    err = model_failure(frame, KeyError("plan"), "/models/churn")
    assert isinstance(err, ModelScoringError)
    assert str(err) == "the model at /models/churn failed on a batch of 2 rows: KeyError: 'plan'"


def test_the_scoring_stage_names_the_infinite_column_through_spark(spark, linear_model, tmp_path):
    import mlflow.sklearn

    model_dir = str(tmp_path / "model")
    mlflow.sklearn.save_model(linear_model, model_dir)
    rows = [(1, 1.0, 2.0, 0.0), (2, 2.0, float("inf"), 1.0), (3, 3.0, 1.0, 0.0)]
    schema = T.StructType([T.StructField("id", T.LongType())] + [T.StructField(f, T.DoubleType()) for f in FEATURES])
    outputs = T.StructType([T.StructField("prediction", T.DoubleType())])
    scored = spark.createDataFrame(rows, schema).coalesce(1).transform(score(model_dir, FEATURES, outputs, ["id"]))
    with pytest.raises(Exception) as err:
        scored.collect()
    line = scoring_error_line(err.value)
    assert line is not None and line.startswith("ModelInputError: 1 of 3 rows of a batch hold values the model refused")
    assert "column(s) charges (inf: 1)" in line and model_dir in line
