import numpy as np
import pandas as pd
from pyspark.sql import types as T

from transforms.scoring import score

OUTPUTS = T.StructType([T.StructField("probability", T.DoubleType()), T.StructField("label", T.LongType())])


def features_frame(rows: int, seed: int) -> pd.DataFrame:
    from jobs.demo.train import model_input_frame

    x = model_input_frame(rows, seed)
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


COUNTING_MODEL = """
import os
import mlflow
import pandas as pd

LOAD_LOG = {load_log!r}


class Counting(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        with open(LOAD_LOG, "a") as f:
            f.write(f"{os.getpid()}\\n")

    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"pid": [os.getpid()] * len(model_input), "batch_rows": [len(model_input)] * len(model_input)})


mlflow.models.set_model(Counting())
"""


def test_model_loads_once_per_python_worker_across_tasks_and_batches(spark, tmp_path):
    """The scoring stage itself (not a probe of the cache) over 40 batches: each worker loads once."""
    import mlflow.pyfunc

    load_log = tmp_path / "loads.txt"
    code = tmp_path / "counting.py"
    code.write_text(COUNTING_MODEL.replace("{load_log!r}", repr(str(load_log))))
    model_path = tmp_path / "counting_model"
    mlflow.pyfunc.save_model(str(model_path), python_model=str(code))
    outputs = T.StructType([T.StructField("pid", T.LongType()), T.StructField("batch_rows", T.LongType())])

    df = (
        spark.range(0, 400, numPartitions=4)
        .withColumnRenamed("id", "customer_id")
        .selectExpr("customer_id", "customer_id * 2.0 AS x")
    )
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10")
    try:
        out = df.transform(score(str(model_path), ["x"], outputs, ["customer_id"])).toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")

    assert sorted(out["customer_id"]) == list(range(400))
    assert set(out["batch_rows"]) == {10}  # the batch size setting reached the model: 40 batches of 10
    loads = [int(line) for line in load_log.read_text().split()]
    assert set(out["pid"]) <= set(loads)  # every worker that scored had loaded the model ...
    assert len(loads) == len(set(loads))  # ... exactly once, though it scored many batches


def test_empty_input_scores_to_an_empty_typed_frame(spark, model_dir):
    from jobs.demo.data import FEATURES

    df = spark.createDataFrame(features_frame(5, seed=1)).limit(0)
    out = df.transform(score(model_dir, FEATURES, OUTPUTS, ["customer_id"]))
    assert out.count() == 0
    assert out.schema.simpleString() == "struct<customer_id:bigint,probability:double,label:bigint>"
