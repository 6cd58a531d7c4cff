"""What every profile of numbers shares: which columns are floating, their finite values, and the
quantiles reported. NaN and +/-inf are left out of numeric summaries (they would make them NaN)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def is_floating(dtype: T.DataType) -> bool:
    return isinstance(dtype, (T.DoubleType, T.FloatType))


def not_finite(col: Column) -> Column:
    """NaN or +/-inf (null for a null)."""
    return F.isnan(col) | (F.abs(col) == F.lit(float("inf")))


def finite(df: DataFrame, column: str) -> Column:
    """The column as double with NaN and +/-inf as null, so numeric summaries stay numbers."""
    col = F.col(column).cast("double")
    if is_floating(df.schema[column].dataType):
        return F.when(~not_finite(col), col)
    return col
