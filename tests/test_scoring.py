import os

import numpy as np
import pandas as pd
from pyspark.sql import types as T

from transforms.scoring import score

OUTPUTS = T.StructType([T.StructField("probability", T.DoubleType()), T.StructField("label", T.LongType())])


def features_frame(rows: int, seed: int) -> pd.DataFrame:
    from jobs.demo.train import training_frame

    x, _ = training_frame(rows, seed)
    return x.assign(customer_id=np.arange(rows, dtype="int64"))


def test_scoring_udf_matches_pyfunc_predict_on_the_same_rows(spark, model_dir):
    import mlflow.pyfunc

    from jobs.demo.data import FEATURES

    pdf = features_frame(400, seed=3)
    df = spark.createDataFrame(pdf).repartition(3)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "50")  # many batches per task
    try:
        scored = df.transform(score(model_dir, FEATURES, OUTPUTS, ["customer_id"])).toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    expected = mlflow.pyfunc.load_model(model_dir).predict(pdf[FEATURES])
    got = scored.sort_values("customer_id").reset_index(drop=True)
    assert list(got.columns) == ["customer_id", "probability", "label"]
    np.testing.assert_allclose(got["probability"].to_numpy(), expected["probability"].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(got["label"].to_numpy(), expected["label"].to_numpy())


def test_model_loads_once_per_python_worker_not_per_batch(spark, model_dir):
    from transforms import model_cache

    def probe(batches):
        for pdf in batches:
            model_cache.get(model_dir)
            yield pd.DataFrame({"pid": [os.getpid()], "loads": [model_cache.loads[model_dir]], "rows": [len(pdf)]})

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10")
    try:
        out = spark.range(0, 400, numPartitions=4).mapInPandas(probe, "pid long, loads long, rows long").toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert out["rows"].sum() == 400 and len(out) >= 40  # 40+ batches went through
    assert out.groupby("pid")["loads"].max().max() == 1  # yet no worker loaded the model twice


def test_empty_input_scores_to_an_empty_typed_frame(spark, model_dir):
    from jobs.demo.data import FEATURES

    df = spark.createDataFrame(features_frame(5, seed=1)).limit(0)
    out = df.transform(score(model_dir, FEATURES, OUTPUTS, ["customer_id"]))
    assert out.count() == 0
    assert out.schema.simpleString() == "struct<customer_id:bigint,probability:double,label:bigint>"
