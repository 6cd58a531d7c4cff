"""Scoring with an MLflow pyfunc model inside ``mapInPandas``, the model loaded once per worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

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


def score(
    model_location: str,
    features: Sequence[str],
    outputs: T.StructType,
    passthrough: Sequence[str],
) -> Callable[[DataFrame], DataFrame]:
    """Score ``df`` with the pyfunc model at ``model_location``.

    An iterator pandas UDF over a struct of the features: only the features travel to Python and
    only the outputs come back; pass-through columns stay in the JVM.

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

    @F.pandas_udf(outputs)
    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = model_cache.get(model_location)
        for pdf in batches:
            yield _as_frame(model.predict(pdf), names, len(pdf))

    def _(df: DataFrame) -> DataFrame:
        scored = df.select(*passthrough, predict(F.struct(*[F.col(c) for c in features])).alias("_prediction"))
        return scored.select(*passthrough, *[F.col("_prediction")[n].alias(n) for n in names])

    return _
