"""Quality statistics as Spark aggregations, in long format: one row per (partition, scope, column, metric, bucket).

Three profiles, each one Spark query over an already-cached frame:

* :func:`input_profile`: the validated input as it came (scope ``rows`` and ``input``): counts,
  null and NaN counts, numeric summaries and approximate quantiles, in one aggregation;
* :func:`category_profile`: the input's categorical columns (scope ``input``): top-k category
  counts, the rest as ``other_count``, and ``unseen_count`` (not in the training reference);
* :func:`prediction_profile`: what the model saw and said (scopes ``model_input`` and
  ``prediction``): each feature's counts over its reference bins (for drift) and the prediction
  distribution, and each challenger's against the champion's (:mod:`transforms.comparison`), in
  one aggregation.

The frames returned are small (a few rows per column and metric); the job collects them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.cbpe import Calibration, estimate_bins, estimate_sums
from transforms.comparison import challenger_scope, comparison_metrics
from transforms.numeric import QUANTILES, finite, is_floating
from transforms.validation import REASONS, is_quarantined

HIST_BINS = 10
# A category's value is stored as its bucket with at most this many characters: a longer one keeps
# its first MAX_BUCKET_CHARS - 1 and ends in BUCKET_ELLIPSIS (a 1 MiB value made the stats table and
# the report megabytes large). Values alike up to there share one bucket, their counts added.
MAX_BUCKET_CHARS = 200
BUCKET_ELLIPSIS = "\u2026"
OTHER = "<other>"  # the bucket of a categorical's values that are not among the reference's categories
Key = tuple[str, str, str, str | None]  # (scope, column, metric, bucket)
Metric = tuple[Key, Column]  # one aggregate
ArrayMetric = tuple[tuple[Key, ...], Column]  # one array-valued aggregate, a key per element


@dataclass(frozen=True)
class Bins:
    """The bins a column's distribution is counted in, and the reference's shares of them.

    Numeric (``edges``): ``len(edges) - 1`` half-open bins ``[e_i, e_i+1)``, the first open to
    -inf and the last to +inf, so every finite value lands in one (the reference's edges span
    its min..max, so its shares are unchanged by that). Categorical (``categories``): one bin
    per reference category and a last one, ``<other>``, for every other non-null value.
    """

    column: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    reference: tuple[float, ...] | None = None  # shares per bin; None: no reference (fixed bins)
    reference_mean: float | None = None
    open_ends: bool = True  # label the end bins -inf/inf (they take every value beyond the edges either way)

    def __post_init__(self) -> None:
        if bool(self.edges) == bool(self.categories):
            raise ValueError(f"bins of {self.column}: give edges or categories, not both or neither")
        if self.edges and (len(self.edges) < 2 or any(b < a for a, b in zip(self.edges, self.edges[1:], strict=False))):
            raise ValueError(f"bins of {self.column}: edges must be at least two non-decreasing numbers")
        if self.reference is not None and len(self.reference) != len(self.labels):
            raise ValueError(f"bins of {self.column}: {len(self.reference)} reference shares for {len(self.labels)} bins")

    @property
    def ordered(self) -> bool:
        return bool(self.edges)

    @property
    def labels(self) -> tuple[str, ...]:
        if self.categories:
            return (*self.categories, OTHER)
        n = len(self.edges) - 1
        # the index keeps labels unique and sortable where ties repeat an edge
        lo = lambda i: "-inf" if i == 0 and self.open_ends else _g(self.edges[i])  # noqa: E731
        hi = lambda i: ("inf)" if self.open_ends else _g(self.edges[-1]) + "]") if i == n - 1 else _g(self.edges[i + 1]) + ")"  # noqa: E731
        return tuple(f"{i:02d} [{lo(i)},{hi(i)}" for i in range(n))

    def counts(self, col: Column) -> list[Column]:
        """One count per bin, in the order of :attr:`labels`; ``col`` must already hold only
        finite values (numerics) or strings (categoricals), nulls being skipped."""
        if self.categories:
            known = F.coalesce(col.isin(list(self.categories)), F.lit(False))
            return [_count_where(col == F.lit(c)) for c in self.categories] + [_count_where(col.isNotNull() & ~known)]
        n = len(self.edges) - 1
        out = []
        for i in range(n):
            lower = F.lit(True) if i == 0 else col >= F.lit(self.edges[i])
            upper = F.lit(True) if i == n - 1 else col < F.lit(self.edges[i + 1])
            out.append(_count_where(col.isNotNull() & lower & upper))
        return out


def _g(x: float) -> str:
    return format(x, ".6g")


def fixed_bins(column: str) -> Bins:
    """Ten equal bins over [0, 1], for a floating output without a reference (probabilities; a value
    outside lands in the end bin on its side)."""
    return Bins(column, edges=tuple(i / HIST_BINS for i in range(HIST_BINS + 1)), open_ends=False)


def bins_from_profile(column: str, entry: Mapping[str, Any]) -> Bins | None:
    """A column's bins from its entry in a reference profile (``jobs.model.training.profile``), or None
    when the entry has none (an all-null training column)."""
    if entry.get("kind") == "categorical":
        freq = dict(entry.get("frequencies") or {})
        if not freq:
            return None
        cats = tuple(sorted(freq, key=lambda c: (-freq[c], c)))
        return Bins(column, categories=cats, reference=(*[freq[c] for c in cats], float(entry.get("other_share") or 0.0)))
    bins = entry.get("bins") or {}
    edges, shares = bins.get("edges") or [], bins.get("proportions") or []
    if len(edges) < 2:
        return None
    mean = entry.get("mean")
    return Bins(
        column,
        edges=tuple(map(float, edges)),
        reference=tuple(map(float, shares)),
        reference_mean=None if mean is None else float(mean),
    )


def reference_bins(reference: Mapping[str, Any] | None) -> tuple[dict[str, Bins], dict[str, Bins]]:
    """Bins of the features and of the predictions (``predictions``, when the trainer profiled them)
    from a model's training reference."""
    if not reference:
        return {}, {}
    features = {c: b for c, e in (reference.get("features") or {}).items() if (b := bins_from_profile(c, e)) is not None}
    predictions = {c: b for c, e in (reference.get("predictions") or {}).items() if (b := bins_from_profile(c, e)) is not None}
    return features, predictions


def bounded_bucket(value: Column) -> Column:
    """``value`` cut to ``MAX_BUCKET_CHARS`` characters, in the aggregation, so that no long value
    is ever collected whole."""
    keep = MAX_BUCKET_CHARS - len(BUCKET_ELLIPSIS)
    cut = F.concat(F.substring(value, 1, keep), F.lit(BUCKET_ELLIPSIS))
    return F.when(F.length(value) > F.lit(MAX_BUCKET_CHARS), cut).otherwise(value)


def _count_where(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0))


def _broke(rule: str) -> Column:
    return F.exists(F.col(REASONS), lambda r: r["rule"] == F.lit(rule))


def _numeric_summary(scope: str, name: str, col: Column) -> list[Metric]:
    return [
        ((scope, name, "min", None), F.min(col)),
        ((scope, name, "max", None), F.max(col)),
        ((scope, name, "mean", None), F.avg(col)),
        ((scope, name, "stddev", None), F.stddev_samp(col)),
    ]


def _quantiles(scope: str, name: str, col: Column) -> ArrayMetric:
    keys = tuple((scope, name, "quantile", str(q)) for q in QUANTILES)
    return keys, F.percentile_approx(col, list(QUANTILES))


def _long(df: DataFrame, group_by: Sequence[str], metrics: list[Metric], arrays: Sequence[ArrayMetric] = ()) -> DataFrame:
    """Aggregate once, then turn the one wide row per group into one row per metric.

    An array-valued aggregate (``percentile_approx`` over all quantiles) is computed once and
    spread over one row per element.
    """
    aggs = [agg.alias(f"m{i}") for i, (_, agg) in enumerate(metrics)] + [agg.alias(f"a{j}") for j, (_, agg) in enumerate(arrays)]
    wide = df.groupBy(*group_by).agg(*aggs)
    cells: list[tuple[Key, Column]] = [(key, F.col(f"m{i}")) for i, (key, _) in enumerate(metrics)]
    for j, (keys, _) in enumerate(arrays):
        cells.extend((key, F.col(f"a{j}")[k]) for k, key in enumerate(keys))
    entries = [
        F.struct(
            F.lit(scope).alias("scope"),
            F.lit(column).alias("column"),
            F.lit(metric).alias("metric"),
            F.lit(bucket).cast("string").alias("bucket"),
            value.cast("double").alias("value"),
        )
        for (scope, column, metric, bucket), value in cells
    ]
    return wide.select(*group_by, F.inline(F.array(*entries)))


def input_profile(
    features: Sequence[str], rule_names: Sequence[str], group_by: Sequence[str]
) -> Callable[[DataFrame], DataFrame]:
    """Row counts (in, quarantined, by rule) and per feature: ``null_count`` and ``null_rate``
    (NaN included), ``nan_count`` and ``nan_rate`` (NaN alone), and for numerics
    ``min``/``max``/``mean``/``stddev`` and approximate ``quantile`` s (finite values; bucket = the
    quantile) or for the rest ``distinct_count``. One aggregation.

    Expects the output of :func:`transforms.validation.validate`.
    """

    def _(df: DataFrame) -> DataFrame:
        rows = F.count(F.lit(1))
        metrics: list[Metric] = [
            (("rows", "*", "rows_in", None), rows),
            (("rows", "*", "rows_quarantined", None), _count_where(is_quarantined())),
        ]
        arrays: list[ArrayMetric] = []
        for rule in rule_names:
            metrics.append((("rows", rule, "quarantined_by_rule", None), _count_where(_broke(rule))))
        for name in features:
            nan = F.isnan(F.col(name)) if is_floating(df.schema[name].dataType) else F.lit(False)
            missing = F.col(name).isNull() | nan
            metrics += [
                (("input", name, "null_count", None), _count_where(missing)),
                (("input", name, "null_rate", None), _count_where(missing) / rows),
                (("input", name, "nan_count", None), _count_where(nan)),
                (("input", name, "nan_rate", None), _count_where(nan) / rows),
            ]
            if isinstance(df.schema[name].dataType, T.NumericType):
                metrics.extend(_numeric_summary("input", name, finite(df, name)))
                arrays.append(_quantiles("input", name, finite(df, name)))
            else:
                metrics.append((("input", name, "distinct_count", None), F.count_distinct(F.col(name))))
        return _long(df, group_by, metrics, arrays)

    return _


def category_profile(
    columns: Sequence[str], group_by: Sequence[str], top_k: int, known: Mapping[str, Sequence[str]] | None = None
) -> Callable[[DataFrame], DataFrame]:
    """Per categorical column: the ``top_k`` most frequent values (``top_count``, bucket = the value;
    ties broken by value), the rest of the non-null rows as ``other_count``, and, for columns in
    ``known`` (the training reference's categories), ``unseen_count``: non-null rows whose value is
    not among them. Metrics of a column with no non-null value are absent. Buckets are cut to
    ``MAX_BUCKET_CHARS`` (:func:`bounded_bucket`) after the values are counted and ranked.

    One query: count per (group, column, value) over the columns stacked, rank, fold to long rows.
    """
    known = known or {}

    def _(df: DataFrame) -> DataFrame:
        if not columns:
            schema = ", ".join(
                [f"`{g}` {df.schema[g].dataType.simpleString()}" for g in group_by]
                + ["scope string", "column string", "metric string", "bucket string", "value double"]
            )
            return df.sparkSession.createDataFrame([], schema)
        stacked = df.select(
            *group_by,
            F.explode(
                F.array(*[F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value")) for c in columns])
            ).alias("e"),
        ).select(*group_by, F.col("e.column").alias("column"), F.col("e.value").alias("value"))
        counts = stacked.where(F.col("value").isNotNull()).groupBy(*group_by, "column", "value").agg(F.count(F.lit(1)).alias("n"))
        rank = F.row_number().over(Window.partitionBy(*group_by, "column").orderBy(F.col("n").desc(), F.col("value")))
        seen = F.lit(False)
        for c, values in known.items():
            seen = seen | ((F.col("column") == F.lit(c)) & F.col("value").isin(list(values)))
        has_reference = F.col("column").isin(list(known)) if known else F.lit(False)
        top = F.col("rank") <= F.lit(top_k)
        entries = F.array(
            F.struct(
                F.when(top, F.lit("top_count")).otherwise(F.lit("other_count")).alias("metric"),
                F.when(top, bounded_bucket(F.col("value"))).alias("bucket"),
                F.col("n").alias("value"),
            ),
            F.struct(
                F.when(has_reference, F.lit("unseen_count")).alias("metric"),
                F.lit(None).cast("string").alias("bucket"),
                F.when(seen, 0).otherwise(F.col("n")).alias("value"),
            ),
        )
        return (
            counts.select("*", rank.alias("rank"))
            .select(*group_by, "column", F.inline(entries))
            .where(F.col("metric").isNotNull())
            .groupBy(*group_by, "column", "metric", "bucket")
            .agg(F.sum("value").cast("double").alias("value"))
            .select(*group_by, F.lit("input").alias("scope"), "column", "metric", "bucket", "value")
        )

    return _


def output_metrics(
    df: DataFrame,
    scope: str,
    outputs: T.StructType,
    prediction_bins: Mapping[str, Bins] | None = None,
    column_of: Mapping[str, str] | None = None,
) -> list[Metric]:
    """Per numeric model output, over its finite values: ``min``/``max``/``mean``/``stddev``,
    ``positive_rate`` for an integral output and, for a floating one, a ``histogram`` (bucket = the bin
    label) over its bins in ``prediction_bins`` or else ten bins over [0, 1].

    Args:
        scope: the metrics' scope (``prediction`` for the champion).
        outputs: the model signature's outputs: their names key the metrics and the bins, their
            types choose the metrics.
        column_of: output name -> the frame's column holding it (default: the name itself); an output
            absent from a given mapping is skipped. The bins stay the output's, so a challenger's
            histogram is counted in the champion's bins.
    """
    prediction_bins = prediction_bins or {}
    metrics: list[Metric] = []
    for field in outputs.fields:
        column = field.name if column_of is None else column_of.get(field.name)
        if column is None or not isinstance(field.dataType, T.NumericType):
            continue
        col = finite(df, column)
        metrics.extend(_numeric_summary(scope, field.name, col))
        if isinstance(field.dataType, T.IntegralType):
            metrics.append(((scope, field.name, "positive_rate", None), F.avg((F.col(column) == 1).cast("double"))))
        if is_floating(field.dataType):
            bins = prediction_bins.get(field.name) or fixed_bins(field.name)
            metrics.extend(
                ((scope, field.name, "histogram", label), count)
                for label, count in zip(bins.labels, bins.counts(col), strict=True)
            )
    return metrics


def prediction_profile(
    outputs: T.StructType,
    group_by: Sequence[str],
    feature_bins: Mapping[str, Bins] | None = None,
    prediction_bins: Mapping[str, Bins] | None = None,
    challengers: Sequence[tuple[str, Mapping[str, str]]] = (),
    failures: Mapping[str, str] | None = None,
    estimate: Calibration | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """Scored row count; per numeric model output a summary (the ``mean`` of a 0/1 label is its
    positive rate, also given as ``positive_rate`` for integral outputs) and, for floating outputs,
    a ``histogram`` over its reference bins (``prediction_bins``) or else ten bins over [0, 1]
    (:func:`output_metrics`); per feature in ``feature_bins`` (scope ``model_input``, the values
    after preprocessing) its ``bin_count`` s, ``mean`` and ``count`` of the values binned. One
    aggregation, challengers included.

    Args:
        challengers: per challenger ``(tag, column_of)``: a short tag (its index, ``"0"``) and the
            frame's column of each champion output it has. Adds scope ``challenger#<tag>`` (the
            challenger's :func:`output_metrics`, in the champion's bins) and ``comparison#<tag>``
            (:func:`transforms.comparison.comparison_metrics`); κ and PSI are derived once the rows
            are collected (:func:`transforms.comparison.derive_comparisons`).
        failures: tag -> the challenger's error column (non-null where it could not score the
            row): counted as ``rows_failed`` (scope ``challenger#<tag>``, column ``*``).
        estimate: the champion's calibration map: adds scope ``estimate``, the sums CBPE estimates
            its quality from (:mod:`transforms.cbpe`; the bins' masses keyed by bin, unioned).

    Expects a frame holding the model outputs (the challengers' too) and the binned features.
    """
    feature_bins = feature_bins or {}
    tags = [tag for tag, _ in challengers]
    if len(set(tags)) != len(tags):
        raise ValueError(f"challenger tags must be unique, got {tags}")

    def _(df: DataFrame) -> DataFrame:
        metrics: list[Metric] = [
            (("rows", "*", "rows_scored", None), F.count(F.lit(1))),
            *output_metrics(df, "prediction", outputs, prediction_bins),
        ]
        for name, bins in feature_bins.items():
            if name not in df.columns:
                continue
            col = F.col(name).cast("string") if bins.categories else finite(df, name)
            metrics.extend(
                (("model_input", name, "bin_count", label), count)
                for label, count in zip(bins.labels, bins.counts(col), strict=True)
            )
            metrics.append((("model_input", name, "count", None), F.count(col)))
            if bins.edges:
                metrics.append((("model_input", name, "mean", None), F.avg(col)))
        for tag, column_of in challengers:
            if failures and tag in failures:
                metrics.append(
                    ((challenger_scope(tag), "*", "rows_failed", None), _count_where(F.col(failures[tag]).isNotNull()))
                )
            metrics.extend(output_metrics(df, challenger_scope(tag), outputs, prediction_bins, column_of))
            metrics.extend(comparison_metrics(df, tag, outputs, column_of))
        if estimate is None:
            return _long(df, group_by, metrics)
        return _long(df, group_by, [*metrics, *estimate_sums(estimate)]).unionByName(
            df.transform(estimate_bins(estimate, group_by))
        )

    return _
