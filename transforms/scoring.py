"""Scoring with an MLflow pyfunc model inside ``mapInArrow``, the model loaded once per Python worker.

Why Arrow and not a pandas UDF over a struct of the features: pyspark turns a struct column
that holds strings into pandas row by row, which on the demo model cost more than the model
itself (bench/scoring.py measures both). Here each Arrow batch is converted by pyarrow in one
call, only the feature columns become pandas, and pass-through columns go back to the JVM as the
same Arrow buffers, untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_type

from transforms import model_cache


class ModelInputError(ValueError):
    """The model refused a batch because feature columns hold non-finite values (inf, -inf, or NaN
    where the model takes none) that no rule quarantined. The message names the columns and the
    rows; the same input fails the same way again, so it is the data's (or the rules') to fix."""


class ModelScoringError(RuntimeError):
    """The model raised on a batch for another reason: its own message and where it was loaded from."""


_NONFINITE: dict[str, Callable[[np.ndarray], np.ndarray]] = {"inf": np.isposinf, "-inf": np.isneginf, "NaN": np.isnan}


def _refused_cells(frame: pd.DataFrame, message: str) -> dict[str, dict[str, np.ndarray]]:
    """Per floating feature column holding any, a mask per kind of non-finite value the model's
    error may be about: infinities always (no model takes them), NaN only when the message speaks
    of NaN (many models take NaN as missing)."""
    kinds = ["inf", "-inf", *(["NaN"] if "nan" in message.lower() else [])]
    cells = {}
    for name in frame.columns:
        if pd.api.types.is_float_dtype(frame[name].dtype):
            values = frame[name].to_numpy(dtype="float64", na_value=np.nan)
            masks = {kind: _NONFINITE[kind](values) for kind in kinds}
            if any(mask.any() for mask in masks.values()):
                cells[str(name)] = masks
    return cells


def model_failure(frame: pd.DataFrame, err: Exception, model_location: str) -> Exception:
    """The error a model raised on ``frame`` (its features), said in the data's terms.

    A ModelInputError naming the feature columns with the non-finite values the model refused, and
    how many rows have one, when the batch has such values; else a ModelScoringError with the
    model's own message and location.
    """
    said = f"{type(err).__name__}: {str(err).strip()}"
    cells = _refused_cells(frame, said)
    if not cells:
        return ModelScoringError(f"the model at {model_location} failed on a batch of {len(frame)} rows: {said}")
    rows = int(np.logical_or.reduce([mask for masks in cells.values() for mask in masks.values()]).sum())
    columns = ", ".join(
        f"{name} ({', '.join(f'{kind}: {int(mask.sum())}' for kind, mask in masks.items() if mask.any())})"
        for name, masks in cells.items()
    )
    return ModelInputError(
        f"{rows} of {len(frame)} rows of a batch hold values the model refused, in column(s) {columns}; "
        "quarantine them with a range rule (validation.rules) or fix them in preprocessing. "
        f"The model at {model_location} said: {said.splitlines()[0]}"
    )


_SCORING_ERROR = re.compile(r"^(?:[\w.]+\.)?((?:ModelInputError|ModelScoringError): .*)$", re.MULTILINE)


def scoring_error_line(err: BaseException) -> str | None:
    """``"ModelInputError: ..."`` (or ``"ModelScoringError: ..."``) out of the error Spark raises on the
    driver for a failed scoring task, whose text holds the worker's traceback: the line a driver
    prefixes with the partition's name. None when the error is neither."""
    found = _SCORING_ERROR.findall(str(err))
    return found[-1].strip() if found else None


def _predict(model: Any, features: pd.DataFrame, model_location: str) -> Any:
    try:
        return model.predict(features)
    except Exception as err:
        raise model_failure(features, err, model_location) from err


def _as_frame(predictions: Any, names: Sequence[str], rows: int) -> pd.DataFrame:
    """The model's output as columns ``names``, whatever shape pyfunc returned it in."""
    if isinstance(predictions, pd.DataFrame):
        missing = [n for n in names if n not in predictions.columns]
        if missing and len(predictions.columns) == len(names):
            predictions = predictions.set_axis(list(names), axis=1)
        elif missing:
            raise ValueError(f"model output has columns {list(predictions.columns)}, expected {list(names)}")
        frame = predictions[list(names)]
    else:
        values = predictions.to_numpy() if isinstance(predictions, pd.Series) else np.asarray(predictions)
        if values.ndim == 1:
            values = values.reshape(-1, 1)
        if values.shape[1] != len(names):
            raise ValueError(f"model returned {values.shape[1]} output column(s), expected {list(names)}")
        frame = pd.DataFrame(values, columns=list(names))
    if len(frame) != rows:
        raise ValueError(f"model returned {len(frame)} rows for a batch of {rows}")
    return frame.reset_index(drop=True)


def features_to_pandas(batch: pa.RecordBatch, features: Sequence[str]) -> pd.DataFrame:
    """The feature columns as the model expects them, converted the way pyspark's pandas UDFs do.

    Dates stay ``datetime.date`` objects and timestamps become naive (the job runs its session in
    UTC), so a model sees the same frame here as through ``mlflow.pyfunc.spark_udf``.
    """
    frame = batch.select(list(features)).to_pandas(date_as_object=True)
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


def outputs_to_arrow(frame: pd.DataFrame, outputs: T.StructType) -> list[pa.Array]:
    """One Arrow array per output column, of the Spark type the model signature declares.

    The cast is safe: a model that returns 0.7 for a ``long`` output fails loudly, never truncates.
    """
    arrays = []
    for field in outputs.fields:
        target = to_arrow_type(field.dataType)
        array = pa.Array.from_pandas(frame[field.name])
        arrays.append(array if array.type == target else array.cast(target, safe=True))
    return arrays


@dataclass(frozen=True)
class ModelSpec:
    """One model of a scoring stage: where it loads from, what it takes and what it says.

    Attributes:
        location: a local model directory, or the name it was shipped under with ``addArchive``.
        features: the model's input columns, passed as one named frame so the model sees names.
        outputs: the model's output columns and types (from its signature).
        feature_columns: where each feature is in the frame (default: under its own name).
        output_columns: the frame's names for the outputs (default: their own names).
        error_column: set for a model whose failure must not fail the stage (a challenger): a
            batch it cannot load or score gets null outputs and the reason in this column; unset,
            any failure fails the task.
    """

    location: str
    features: tuple[str, ...]
    outputs: T.StructType
    feature_columns: tuple[str, ...] = ()
    output_columns: tuple[str, ...] = ()
    error_column: str | None = None

    @property
    def columns_in(self) -> list[str]:
        return list(self.feature_columns or self.features)

    @property
    def columns_out(self) -> list[str]:
        return list(self.output_columns or self.outputs.fieldNames())

    def result_fields(self) -> list[T.StructField]:
        fields = [T.StructField(name, f.dataType, True) for name, f in zip(self.columns_out, self.outputs.fields, strict=True)]
        return fields + ([T.StructField(self.error_column, T.StringType(), True)] if self.error_column else [])


def _model_arrays(spec: ModelSpec, features: pd.DataFrame, rows: int, failed: dict[str, str]) -> list[pa.Array]:
    """The arrays ``spec`` adds to a batch: its outputs (and, when isolated, its error column)."""
    names = spec.outputs.fieldNames()
    if spec.error_column is None:
        return outputs_to_arrow(_scored_frame(spec, features, rows, names), spec.outputs)
    try:
        if spec.location in failed:  # this task already failed to load it: do not load again per batch
            raise model_cache.ModelLoadError(failed[spec.location])
        arrays = outputs_to_arrow(_scored_frame(spec, features, rows, names), spec.outputs)
        return [*arrays, pa.nulls(rows, pa.string())]
    except Exception as err:
        said = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        if isinstance(err, model_cache.ModelLoadError):
            failed[spec.location] = str(err)
        nulls = [pa.nulls(rows, to_arrow_type(f.dataType)) for f in spec.outputs.fields]
        return [*nulls, pa.array([said[:1000]] * rows, pa.string())]


def _scored_frame(spec: ModelSpec, features: pd.DataFrame, rows: int, names: Sequence[str]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
    model = model_cache.get(spec.location)
    frame = features if list(features.columns) == spec.columns_in else features[spec.columns_in]
    if spec.columns_in != list(spec.features):
        frame = frame.set_axis(list(spec.features), axis=1)
    return _as_frame(_predict(model, frame, spec.location), names, rows)


def score_models(models: Sequence[ModelSpec], passthrough: Sequence[str]) -> Callable[[DataFrame], DataFrame]:
    """Score ``df`` with every model of ``models`` in one ``mapInArrow`` stage.

    Per Arrow batch (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, the job's
    ``scoring.batch_size``) the feature columns of all the models become one pandas frame, and
    each model predicts on its columns of it: one JVM-Python round trip per batch, whatever the
    number of models. Each model comes from the per-process cache, so it loads once per worker.

    Returns:
        A transform whose output is ``passthrough``, then each model's output columns (and its
        error column, when it has one), in the order of ``models``.
    """
    models, passthrough = list(models), list(passthrough)
    if not models:
        raise ValueError("score_models needs at least one model")
    produced = [c for m in models for c in m.columns_out + ([m.error_column] if m.error_column else [])]
    clash = sorted(set(produced) & set(passthrough)) or sorted({c for c in produced if produced.count(c) > 1})
    if clash:
        raise ValueError(f"model outputs {clash} have the same names as pass-through columns or as another model's outputs")
    inputs = list(dict.fromkeys(c for m in models for c in m.columns_in))

    def predict(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        failed: dict[str, str] = {}  # isolated models this task could not load, and why
        for batch in batches:
            rows = batch.num_rows
            features = features_to_pandas(batch, inputs)
            arrays = [batch.column(c) for c in passthrough]
            for spec in models:
                arrays.extend(_model_arrays(spec, features, rows, failed))
            yield pa.RecordBatch.from_arrays(arrays, names=passthrough + produced)

    def _(df: DataFrame) -> DataFrame:
        result_schema = T.StructType([df.schema[c] for c in passthrough] + [f for m in models for f in m.result_fields()])
        selected = list(dict.fromkeys([*passthrough, *inputs]))
        return df.select(*[F.col(c) for c in selected]).mapInArrow(predict, result_schema)

    return _


def score(
    model_location: str,
    features: Sequence[str],
    outputs: T.StructType,
    passthrough: Sequence[str],
) -> Callable[[DataFrame], DataFrame]:
    """Score ``df`` with the pyfunc model at ``model_location`` (:func:`score_models` with one model).

    Returns:
        A transform whose output is ``passthrough`` + ``outputs``, in that order.
    """
    names = outputs.fieldNames()
    clash = sorted(set(names) & set(passthrough))
    if clash:
        raise ValueError(f"model outputs {clash} have the same names as pass-through columns")
    return score_models([ModelSpec(model_location, tuple(features), outputs)], passthrough)


# what every scored row says of where it came from
LINEAGE = ("model_name", "model_version", "run_id", "scored_at")


def scored_rows(
    passthrough: Sequence[str],
    outputs: T.StructType,
    model_name: str,
    model_version: int | str | None,  # None: a model outside the registry (a null model_version)
    run_id: str,
    scored_at: Any,
    partition_by: Sequence[str],
    extra: Sequence[str] = (),
    sources: Mapping[str, str] | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """The scored table's contract: keys and pass-through, the model's outputs, lineage (``LINEAGE``),
    then the partition columns. ``extra`` columns ride along at the end (for profiling; drop them
    before the write). ``sources``: pass-through column -> the column of ``df`` holding its value
    (the input's value where preprocessing rewrote the column)."""
    sources = dict(sources or {})

    def column(name: str) -> Column:
        return F.col(sources[name]).alias(name) if name in sources else F.col(name)

    def _(df: DataFrame) -> DataFrame:
        return df.select(
            *[column(c) for c in passthrough if c not in partition_by],
            *outputs.fieldNames(),
            F.lit(model_name).alias("model_name"),
            F.lit(model_version).cast("string").alias("model_version"),
            F.lit(run_id).alias("run_id"),
            F.lit(scored_at).alias("scored_at"),
            *[column(c) for c in partition_by],
            *extra,
        )

    return _
