"""Train the demo churn model on data passed through the LakeScore preprocessing pipeline, log it
with a signature, an input example, the pipeline spec and the training reference, register it, alias it.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.config import StepConfig, steps_from_spec
from jobs.demo.data import FEATURES, INPUT_SCHEMA, customers

log = logging.getLogger("lakescore.demo")
MODEL_CODE = str(Path(__file__).with_name("churn_model.py"))
NUMERIC = FEATURES[:4]
CATEGORICAL = FEATURES[4:]

# The preprocessing the demo model is trained with; the scoring job reads it back from the model
# (lakescore/pipeline.json), so conf/jobs/churn.yaml need not repeat it.
DEMO_PIPELINE: list[dict[str, Any]] = [
    {"step": "cast", "column": "tenure_months", "to": "double"},
    {"step": "cast", "column": "support_calls", "to": "double"},
    {"step": "fill_null", "column": "monthly_charges", "value": {"reference": "median"}},
    {"step": "clip", "column": "support_calls", "lower": 0, "upper": 20},
    {
        "step": "map_categories",
        "column": "region",
        "other": "other",
        "mapping": {"north": "north", "south": "south", "east": "east", "west": "west"},
    },
]


def demo_steps(raw: list[dict[str, Any]] | None = None) -> tuple[StepConfig, ...]:
    """Steps from their YAML form (default: the demo pipeline), validated like a job config's."""
    return steps_from_spec({"steps": raw if raw is not None else DEMO_PIPELINE}, "jobs/demo/train.py pipeline")


@contextlib.contextmanager
def _spark() -> Iterator[Any]:
    """The caller's SparkSession if there is one, else a small local one for the pipeline."""
    from jobs.config import SparkConfig
    from jobs.session import spark_session

    with spark_session(SparkConfig(master="local[2]", app_name="lakescore-demo-train")) as spark:
        yield spark


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version: str
    run_id: str
    auc: float


def raw_frame(spark, rows: int, seed: int):
    """Training rows as the scoring job reads them (the input table's schema) plus the ``churned`` label."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = pa.schema(
        [f for f in INPUT_SCHEMA if f.name != "ds"] + [pa.field("churned", pa.int64()), pa.field("_row", pa.int64())]
    )
    frame = customers(rows, seed=seed).assign(_row=np.arange(rows, dtype="int64"))  # to split and order by
    return spark.createDataFrame(frame[schema.names], from_arrow_schema(schema))


def prepared_frame(spark, steps: tuple[StepConfig, ...], rows: int, seed: int, fit_rows: int):
    """The rows passed through ``steps`` by the scoring job's own transforms, statistics fitted on
    the first ``fit_rows`` (the training split) only.

    Returns:
        (features, label, fitted values, the prepared training split as a Spark frame)
    """
    from pyspark.sql import functions as F

    from jobs.model.training import fit_pipeline
    from transforms.preprocess import pipeline

    raw = raw_frame(spark, rows, seed)
    fit, rest = raw.where(F.col("_row") < fit_rows), raw.where(F.col("_row") >= fit_rows)
    train, fitted = fit_pipeline(fit, steps)
    test = rest.transform(pipeline(steps, {e["index"]: e["value"] for e in fitted}))
    frame: pd.DataFrame = train.unionByName(test).orderBy("_row").toPandas()
    return frame[FEATURES], frame["churned"], fitted, train


def model_input_frame(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` demo customers as the scoring job hands them to the model: through the demo
    pipeline (statistics fitted on these rows), as pandas. For benchmarks and tests."""
    with _spark() as spark:
        x, _, _, _ = prepared_frame(spark, demo_steps(), rows, seed, rows)
    return x


def build_pipeline(max_iter: int = 60, learning_rate: float = 0.1):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), NUMERIC),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                CATEGORICAL,
            ),
        ]
    )
    return Pipeline(
        [
            ("prep", prep),
            ("model", HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=learning_rate, random_state=0)),
        ]
    )


def train_and_register(
    tracking_uri: str,
    artifact_root: str,
    name: str = "lakescore_churn",
    alias: str = "champion",
    rows: int = 20_000,
    seed: int = 7,
    max_iter: int = 60,
    steps: tuple[StepConfig, ...] | None = None,
    learning_rate: float = 0.1,
) -> TrainedModel:
    """Fit the model on rows passed through ``steps`` (default: the demo pipeline), log it as a
    pyfunc model with ``lakescore/pipeline.json``, ``lakescore/reference.json`` and
    ``lakescore/calibration.json`` (fitted on the held-out split) and the held-out split's
    ``validation.*`` metrics, register it and give it ``alias``."""
    import joblib
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.metrics import roc_auc_score

    from jobs.model.resolve import use_tracking
    from jobs.model.training import (
        CALIBRATED_METADATA,
        calibration_map,
        held_out_metrics,
        log_with_model,
        profile,
        reference,
        validation_names,
    )

    use_tracking(tracking_uri)
    experiment = "lakescore-demo-training"
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=Path(artifact_root).resolve().as_uri())
    mlflow.set_experiment(experiment)

    steps = demo_steps() if steps is None else steps
    split = int(rows * 0.8)
    with _spark() as spark:
        x, y, fitted, train = prepared_frame(spark, steps, rows, seed, split)
        ref = reference(train, FEATURES, fitted)
        pipeline = build_pipeline(max_iter, learning_rate).fit(x[:split], y[:split])
        held_out = pipeline.predict_proba(x[split:])[:, 1]
        # the predictions' reference is what the model says on rows it was not fitted on: what
        # scoring should look like, so the job can measure baseline drift of the scores too
        ref["predictions"] = profile(spark.createDataFrame(pd.DataFrame({"probability": held_out})), ["probability"])["features"]
        # the version's baseline, judged by the evaluation's own definitions, and the map from its
        # scores to observed churn rates that the scoring job estimates quality with before labels
        decisions = (held_out >= 0.5).astype(np.int64)
        validation = validation_names(held_out_metrics(spark, y[split:].to_numpy(), held_out, decisions))
    calibration = calibration_map(y[split:].to_numpy(), held_out)
    auc = float(roc_auc_score(y[split:], held_out))
    example = x.head(5)
    probability = pipeline.predict_proba(example)[:, 1]
    outputs = pd.DataFrame({"probability": probability, "label": (probability >= 0.5).astype(np.int64)})

    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=f"train-{name}") as run:
        path = Path(tmp) / "pipeline.joblib"
        joblib.dump(pipeline, path)
        mlflow.log_params({"rows": rows, "seed": seed, "max_iter": max_iter, "learning_rate": learning_rate})
        mlflow.log_metric("auc", auc)
        mlflow.log_metrics(validation)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=MODEL_CODE,
            artifacts={"pipeline": str(path)},
            signature=infer_signature(example, outputs),
            input_example=example,
            metadata=CALIBRATED_METADATA,
        )
        # before registering, so no version of the model is ever without its pipeline, reference and calibration
        log_with_model(info.model_id, steps, ref, calibration)
    version = str(mlflow.register_model(info.model_uri, name).version)
    MlflowClient().set_registered_model_alias(name, alias, version)
    log.info("registered %s version %s as @%s (auc %.3f, run %s)", name, version, alias, auc, run.info.run_id)
    return TrainedModel(name, version, run.info.run_id, auc)
