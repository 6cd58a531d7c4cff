"""The train side of train/serve parity: fit the preprocessing pipeline, profile the training data,
and log both with the model as ``lakescore/pipeline.json`` and ``lakescore/reference.json``; fit the
calibration map CBPE estimates quality with (``lakescore/calibration.json``, :mod:`transforms.cbpe`)
and log the held-out split's metrics, by the evaluation's own definitions, as the version's baseline
(``validation.<metric>``, read back with :func:`validation_metrics`).

The trainer runs the very transforms the scoring job runs (``transforms.preprocess``) on a local
SparkSession, rather than a pandas copy of each step: one implementation cannot drift from itself.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from pyspark.sql import DataFrame, Row

from jobs.config import StepConfig, pipeline_spec
from transforms import training_profile as R
from transforms.numeric import QUANTILES
from transforms.preprocess import PipelineError, apply_step, describe

ARTIFACT_DIR = "lakescore"
PIPELINE_FILE = "pipeline.json"
REFERENCE_FILE = "reference.json"
TOP_CATEGORIES = 100  # beyond these, a categorical's remaining share is reported as one figure
# What a model LakeScore's trainer logs says of itself (MLmodel metadata: pass it to
# ``mlflow.pyfunc.log_model(metadata=...)``): the files it carries, so a model whose
# lakescore/pipeline.json went missing is refused rather than scored without its preprocessing.
METADATA_KEY = "lakescore_artifacts"
TRAINER_METADATA = {METADATA_KEY: [f"{ARTIFACT_DIR}/{PIPELINE_FILE}", f"{ARTIFACT_DIR}/{REFERENCE_FILE}"]}
CALIBRATION_FILE = "calibration.json"
# a trainer that logs a calibration map too (log_with_model(..., calibration=...)) declares it
CALIBRATED_METADATA = {METADATA_KEY: [*TRAINER_METADATA[METADATA_KEY], f"{ARTIFACT_DIR}/{CALIBRATION_FILE}"]}
VALIDATION = "validation."  # the MLflow run's metrics of the held-out split: validation.<name>[.lower|.upper]


def fit_pipeline(df: DataFrame, steps: Sequence[StepConfig]) -> tuple[DataFrame, list[dict[str, Any]]]:
    """Run ``steps`` on training data, fitting each statistic a step takes from it on the way.

    A ``fill_null`` from a reference statistic is fitted on the frame as it is at that step, so
    the value is the one the step would see, whatever ran before it.

    Returns:
        The prepared frame and the fitted values (``index``, ``column``, ``statistic``, ``value``).
    """
    fitted: list[dict[str, Any]] = []
    for i, s in enumerate(steps):
        value = None
        if s.kind == "fill_null" and s.param("reference") is not None:
            statistic = s.param("reference")
            if s.column not in df.columns:
                raise PipelineError(f"{describe(i, s)}: column {s.column!r} is not in its input")
            try:
                # an aggregate: one row
                value = cast(Row, df.select(R.statistic(df, s.column, statistic).alias("v")).first())["v"]
            except ValueError as exc:
                raise PipelineError(f"{describe(i, s)}: {exc}") from None
            if value is None:
                raise PipelineError(f"{describe(i, s)}: the training data has no value to take the {statistic} of")
            fitted.append({"index": i, "column": s.column, "statistic": statistic, "value": value})
        df = apply_step(df, i, s, value)
    return df, fitted


def fitted_values(steps: Sequence[StepConfig], reference: Mapping[str, Any] | None, source: str) -> dict[int, Any]:
    """Step index -> fitted value for the steps that need one, from a model's reference.

    A value fitted at the same index for the same column and statistic is taken first; otherwise
    any fitted for that column and statistic (the config's pipeline may order steps differently).
    """
    entries = list((reference or {}).get("fitted") or [])
    out = {}
    for i, s in enumerate(steps):
        if s.kind != "fill_null" or s.param("reference") is None:
            continue
        same = [e for e in entries if e.get("column") == s.column and e.get("statistic") == s.param("reference")]
        exact = [e for e in same if e.get("index") == i]
        if not same:
            raise PipelineError(f"{describe(i, s)}: {source} has no fitted {s.param('reference')} of {s.column}")
        out[i] = (exact or same)[0]["value"]
    return out


def _number(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def profile(df: DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """Per column: count, null rate, and mean/stddev/min/max, quantiles and 10 quantile bins (numerics)
    or category frequencies (everything else). A few Spark aggregations; the results are small."""
    row = cast(Row, df.transform(R.summary(columns)).first()).asDict()  # aggregates: one row
    rows = row["rows"]
    features: dict[str, Any] = {}
    for i, c in enumerate(columns):
        nulls = row[f"c{i}_nulls"]
        entry: dict[str, Any] = {
            "type": df.schema[c].dataType.simpleString(),
            "count": rows,
            "null_count": nulls,
            "null_rate": nulls / rows if rows else None,
        }
        if R.is_numeric(df.schema[c].dataType):
            edges = [float(e) for e in row[f"c{i}_edges"] or []]
            entry.update(
                kind="numeric",
                mean=_number(row[f"c{i}_mean"]),
                stddev=_number(row[f"c{i}_stddev"]),
                min=_number(row[f"c{i}_min"]),
                max=_number(row[f"c{i}_max"]),
                # no finite value at all: no quantiles rather than made-up ones
                quantiles={str(q): float(v) for q, v in zip(QUANTILES, row[f"c{i}_quantiles"], strict=True)}
                if row[f"c{i}_quantiles"]
                else {},
            )
            if edges:
                counts = cast(Row, df.transform(R.bin_counts(c, edges)).first())  # aggregates: one row
                total = sum(counts) or 1
                entry["bins"] = {"edges": edges, "proportions": [n / total for n in counts]}
            else:
                entry["bins"] = {"edges": [], "proportions": []}
        else:
            freq = df.transform(R.frequencies(c)).limit(TOP_CATEGORIES + 1).collect()
            non_null = rows - nulls
            top = freq[:TOP_CATEGORIES]
            entry.update(
                kind="categorical",
                distinct=row[f"c{i}_distinct"],
                frequencies={r["value"]: r["n"] / non_null for r in top},
                other_share=(non_null - sum(r["n"] for r in top)) / non_null if non_null else 0.0,
            )
        features[c] = entry
    return {"format": 1, "rows": rows, "features": features}


def reference(prepared: DataFrame, features: Sequence[str], fitted: list[dict[str, Any]]) -> dict[str, Any]:
    """The training reference: the profile of the features the model saw, and the fitted statistics."""
    return {**profile(prepared, features), "fitted": fitted}


def log_with_model(
    model_id: str, steps: Sequence[StepConfig], ref: Mapping[str, Any], calibration: Mapping[str, Any] | None = None
) -> None:
    """Store the pipeline spec, the reference and (when given) the calibration map with a logged
    model (so every version registered from it carries them, and downloading the model brings them
    along)."""
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / ARTIFACT_DIR
        folder.mkdir()
        (folder / PIPELINE_FILE).write_text(json.dumps(pipeline_spec(tuple(steps)), indent=2))
        (folder / REFERENCE_FILE).write_text(json.dumps(ref, indent=2, default=float))
        if calibration is not None:
            (folder / CALIBRATION_FILE).write_text(json.dumps(dict(calibration), indent=2))
        MlflowClient().log_model_artifacts(model_id, str(folder), artifact_path=ARTIFACT_DIR)


def calibration_map(labels: Any, scores: Any, score: str = "probability", decision: str = "label") -> dict[str, Any]:
    """The isotonic regression of held-out ``labels`` on their ``scores`` (clipped outside the scores
    seen, within [0, 1]) as the JSON map of ``transforms.cbpe.Calibration``: its thresholds, between
    which p̂ is interpolated linearly (``np.interp``), and the rows it was fitted on."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    y, s = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)
    xs, ys = fitted.X_thresholds_.tolist(), fitted.y_thresholds_.tolist()
    return {"score": score, "decision": decision, "x": [float(v) for v in xs], "y": [float(v) for v in ys], "rows": len(y)}


def held_out_metrics(spark: Any, labels: Any, scores: Any, decisions: Any) -> list[Any]:
    """The evaluation's metrics (``jobs.quality.metrics.binary_metrics``, intervals included) of
    held-out rows, from the evaluation's own statistics aggregation over a small Spark frame."""
    import numpy as np
    import pandas as pd

    from jobs.quality.metrics import binary_metrics, merge_statistics
    from transforms.evaluation import BinaryTarget, evaluation_statistics

    frame = pd.DataFrame(
        {
            "_row": np.arange(len(labels), dtype="int64"),
            "y": np.asarray(labels, dtype=float),
            "score": np.asarray(scores, dtype=float),
            "decision": np.asarray(decisions, dtype=float),
        }
    )
    target = BinaryTarget("score", "y", "score", "decision")
    stats = spark.createDataFrame(frame).transform(evaluation_statistics([target], ["_row"], []))
    return binary_metrics(merge_statistics([r.asDict() for r in stats.collect()], "score"))


def validation_names(metrics: Sequence[Any]) -> dict[str, float]:
    """The MLflow metrics of ``metrics`` (``MetricValue`` s): ``validation.<name>`` and, where the
    interval exists, ``.lower`` and ``.upper``; an undefined metric has none."""
    out: dict[str, float] = {}
    for m in metrics:
        if m.value is None:
            continue
        out[f"{VALIDATION}{m.name}"] = m.value
        if m.lower is not None and m.upper is not None:
            out[f"{VALIDATION}{m.name}.lower"], out[f"{VALIDATION}{m.name}.upper"] = m.lower, m.upper
    return out


def validation_metrics(client: Any, run_id: str) -> dict[str, tuple[float, float | None, float | None]]:
    """A model version's baseline: name -> (value, lower, upper) of the validation metrics its
    training run logged (``validation_names``; {} for a run that logged none). ``client``: an
    ``mlflow.MlflowClient``; ``run_id``: the version's ``run_id``."""
    logged = client.get_run(run_id).data.metrics
    names = [k.removeprefix(VALIDATION) for k in logged if k.startswith(VALIDATION) and not k.endswith((".lower", ".upper"))]
    return {
        n: (float(logged[VALIDATION + n]), logged.get(f"{VALIDATION}{n}.lower"), logged.get(f"{VALIDATION}{n}.upper"))
        for n in names
    }
