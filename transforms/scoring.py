"""Scoring with an MLflow pyfunc model inside ``mapInArrow``, the model loaded once per Python worker.

Why Arrow and not a pandas UDF over a struct of the features: pyspark turns a struct column
that holds strings into pandas row by row, which on the demo model cost more than the model
itself (bench/scoring.py measures both). Here each Arrow batch is converted by pyarrow in one
call, only the feature columns become pandas, and pass-through columns go back to the JVM as the
same Arrow buffers, untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_type

from transforms import model_cache


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


def score(
    model_location: str,
    features: Sequence[str],
    outputs: T.StructType,
    passthrough: Sequence[str],
) -> Callable[[DataFrame], DataFrame]:
    """Score ``df`` with the pyfunc model at ``model_location``.

    One ``mapInArrow`` stage: per Arrow batch (``spark.sql.execution.arrow.maxRecordsPerBatch``
    rows, the job's ``scoring.batch_size``) the features become one pandas frame for
    ``model.predict``; the model comes from the per-process cache, so it loads once per worker.

    Args:
        model_location: a local model directory, or the name it was shipped under with ``addFile``.
        features: the model's input columns, passed as one named frame so the model sees names.
        outputs: the model's output columns and types (from its signature).
        passthrough: columns copied from input to output (keys, partition columns).

    Returns:
        A transform whose output is ``passthrough`` + ``outputs``, in that order.
    """
    features, passthrough = list(features), list(passthrough)
    names = outputs.fieldNames()
    clash = sorted(set(names) & set(passthrough))
    if clash:
        raise ValueError(f"model outputs {clash} have the same names as pass-through columns")

    def predict(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = model_cache.get(model_location)
        for batch in batches:
            rows = batch.num_rows
            frame = (
                _as_frame(model.predict(features_to_pandas(batch, features)), names, rows)
                if rows
                else pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
            )
            kept = [batch.column(c) for c in passthrough]
            yield pa.RecordBatch.from_arrays(kept + outputs_to_arrow(frame, outputs), names=passthrough + names)

    def _(df: DataFrame) -> DataFrame:
        inputs = list(dict.fromkeys([*passthrough, *features]))
        result_schema = T.StructType([df.schema[c] for c in passthrough] + list(outputs.fields))
        return df.select(*[F.col(c) for c in inputs]).mapInArrow(predict, result_schema)

    return _


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
) -> Callable[[DataFrame], DataFrame]:
    """The scored table's contract: keys and pass-through, the model's outputs, lineage (``LINEAGE``),
    then the partition columns. ``extra`` columns ride along at the end (for profiling; drop them
    before the write)."""

    def _(df: DataFrame) -> DataFrame:
        return df.select(
            *[c for c in passthrough if c not in partition_by],
            *outputs.fieldNames(),
            F.lit(model_name).alias("model_name"),
            F.lit(model_version).cast("string").alias("model_version"),
            F.lit(run_id).alias("run_id"),
            F.lit(scored_at).alias("scored_at"),
            *partition_by,
            *extra,
        )

    return _
