"""Train the demo churn model, log it with a signature and an input example, register it, alias it."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.demo.data import FEATURES, customers

log = logging.getLogger("lakescore.demo")
MODEL_CODE = str(Path(__file__).with_name("churn_model.py"))
NUMERIC = FEATURES[:4]
CATEGORICAL = FEATURES[4:]


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version: str
    run_id: str
    auc: float


def training_frame(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Features as the scoring job hands them to the model: numerics as double, categoricals as string."""
    frame = customers(rows, seed=seed)
    x = frame[FEATURES].copy()
    x[NUMERIC] = x[NUMERIC].astype("float64")
    return x, frame["churned"]


def build_pipeline(max_iter: int = 60):
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
    return Pipeline([("prep", prep), ("model", HistGradientBoostingClassifier(max_iter=max_iter, random_state=0))])


def train_and_register(
    tracking_uri: str,
    artifact_root: str,
    name: str = "lakescore_churn",
    alias: str = "champion",
    rows: int = 20_000,
    seed: int = 7,
    max_iter: int = 60,
) -> TrainedModel:
    """Fit the pipeline, log it as a pyfunc model and register it with ``alias``."""
    import joblib
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.metrics import roc_auc_score

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    experiment = "lakescore-demo-training"
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=Path(artifact_root).resolve().as_uri())
    mlflow.set_experiment(experiment)

    x, y = training_frame(rows, seed)
    split = int(len(x) * 0.8)
    pipeline = build_pipeline(max_iter).fit(x[:split], y[:split])
    auc = float(roc_auc_score(y[split:], pipeline.predict_proba(x[split:])[:, 1]))
    example = x.head(5)
    probability = pipeline.predict_proba(example)[:, 1]
    outputs = pd.DataFrame({"probability": probability, "label": (probability >= 0.5).astype(np.int64)})

    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=f"train-{name}") as run:
        path = Path(tmp) / "pipeline.joblib"
        joblib.dump(pipeline, path)
        mlflow.log_params({"rows": rows, "seed": seed, "max_iter": max_iter})
        mlflow.log_metric("auc", auc)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=MODEL_CODE,
            artifacts={"pipeline": str(path)},
            signature=infer_signature(example, outputs),
            input_example=example,
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(name, alias, version)
    log.info("registered %s version %s as @%s (auc %.3f, run %s)", name, version, alias, auc, run.info.run_id)
    return TrainedModel(name, version, run.info.run_id, auc)
