"""One partition's evaluation (issue 15): its labels joined to the champion's and the challengers'
scores, the sufficient statistics of every model version and of each champion–challenger pair in
one aggregation, the counts of what could not be joined, the metrics, and the maturity.

Nothing is dropped silently and nothing counted twice: a key scored more than once by one model
version is counted (``scored_duplicates``) and left out of its statistics; a key whose label rows
disagree is counted (``labels_conflicting``) and taken as unlabelled; repeated identical label rows
count once (``labels_duplicates``); a label whose key the version never scored is counted
(``labels_unscored``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.quality.estimates import estimate_rows
from jobs.quality.metrics import (
    MetricValue,
    Row,
    is_regression,
    merge_statistics,
    metric_rows,
    model_metrics,
    paired_metrics,
)
from transforms.evaluation import BinaryTarget, PairedTarget, RegressionTarget, Settings, Target, evaluation_statistics

CHAMPION, CHALLENGER = "champion", "challenger"
EVALUATION, PAIRED = "evaluation", "paired"  # the scopes: one model's rows; champion against a challenger
FINAL, PROVISIONAL = "final", "provisional"
TABLE = "*"  # the column of the counts rows
MODEL = ("role", "model_name", "model_version")
# the counts of one model version, then those of the labels' partition (the same for every version)
MODEL_COUNTS = ("scored_rows", "scored_keys", "scored_duplicates", "scored_duplicate_rows", "labels_matched", "labels_unscored")
LABEL_COUNTS = ("label_rows", "label_keys", "labels_duplicates", "labels_conflicting", "labels_null")
_Y, _S, _D, _N = "_lakescore_y", "_lakescore_score", "_lakescore_decision", "_lakescore_n"
_CS, _CD, _HS, _HD = "_lakescore_cs", "_lakescore_cd", "_lakescore_hs", "_lakescore_hd"
_LN, _LV, _SCOPE = "_lakescore_label_rows", "_lakescore_label_values", "_lakescore_scope"


@dataclass(frozen=True)
class Columns:
    """What is joined and judged: ``keys`` identify a row within a partition (the evaluation's keys
    that are not partition columns), ``label`` is the labels table's column, ``score`` and
    ``decision`` the model outputs; ``regression``: the score is a prediction of a numeric label,
    and there is no decision (nor a champion–challenger pairing, which is of decisions and AUCs)."""

    keys: tuple[str, ...]
    label: str
    score: str
    decision: str
    regression: bool = False

    @property
    def paired(self) -> str:
        """The paired target's name inside the aggregation (its rows are written as ``score``'s)."""
        return f"{self.score}#paired"


def model_rows(scored: DataFrame, role: str, c: Columns) -> DataFrame:
    """A scored (or shadow) table's rows of one partition as the evaluation takes them."""
    return scored.select(
        *[F.col(k) for k in c.keys],
        F.lit(role).alias("role"),
        F.col("model_name").cast("string").alias("model_name"),
        F.col("model_version").cast("string").alias("model_version"),
        F.col(c.score).cast("double").alias(_S),
        (F.lit(None) if c.regression else F.col(c.decision)).cast("double").alias(_D),
    )


def label_rows(labels: DataFrame, c: Columns) -> DataFrame:
    """One row per key of the labels' partition: its label when its rows agree (null when they
    disagree, or have none), how many rows and distinct labels it had."""
    y = F.col(c.label).cast("double")
    return (
        labels.groupBy(*c.keys)
        .agg(F.count(F.lit(1)).alias(_LN), F.countDistinct(y).alias(_LV), F.max(y).alias(_Y))
        .select(*c.keys, _LN, _LV, F.when(F.col(_LV) == 1, F.col(_Y)).alias(_Y))
    )


def joined(models: DataFrame, labels: DataFrame, c: Columns) -> DataFrame:
    """One row per model version and key it scored (``_N``: how many times), with the key's label."""
    once = models.groupBy(*MODEL, *c.keys).agg(F.count(F.lit(1)).alias(_N), F.first(_S).alias(_S), F.first(_D).alias(_D))
    return once.join(labels, on=list(c.keys), how="left")


def model_counts(rows: DataFrame) -> DataFrame:
    """Per model version: rows and keys scored, keys scored more than once (and their rows), keys
    with a label row (a key scored twice included: it was scored)."""
    twice = F.col(_N) > 1
    return rows.groupBy(*MODEL).agg(
        F.sum(_N).cast("double").alias("scored_rows"),
        F.count(F.lit(1)).cast("double").alias("scored_keys"),
        F.sum(F.when(twice, 1).otherwise(0)).cast("double").alias("scored_duplicates"),
        F.sum(F.when(twice, F.col(_N)).otherwise(0)).cast("double").alias("scored_duplicate_rows"),
        F.count(F.col(_LN)).cast("double").alias("labels_matched"),
    )


def label_counts(labels: DataFrame) -> DataFrame:
    """The labels' partition: rows, keys, keys given more than once with one label, keys whose
    labels disagree, keys whose label is null."""
    return labels.agg(
        F.coalesce(F.sum(_LN), F.lit(0)).cast("double").alias("label_rows"),
        F.count(F.lit(1)).cast("double").alias("label_keys"),
        F.sum(F.when((F.col(_LN) > 1) & (F.col(_LV) <= 1), 1).otherwise(0)).cast("double").alias("labels_duplicates"),
        F.sum(F.when(F.col(_LV) > 1, 1).otherwise(0)).cast("double").alias("labels_conflicting"),
        F.sum(F.when(F.col(_LV) == 0, 1).otherwise(0)).cast("double").alias("labels_null"),
    )


def statistics(rows: DataFrame, c: Columns, settings: Settings | None = None) -> DataFrame:
    """The sufficient statistics of each model version (scope ``evaluation``) and of the champion
    against each challenger on the keys both scored once (scope ``paired``, the challenger's
    version), in one aggregation; rows ``scope, role, model_name, model_version, column, metric,
    bucket, value``, column = the score column.

    One aggregation over both row sets: each row belongs to one scope, and carries nulls for the
    other scope's target, whose statistics of it are dropped after."""
    unique = rows.where(F.col(_N) == 1)
    none = F.lit(None).cast("double")
    keys = [F.col(k) for k in c.keys]
    models = unique.select(
        F.lit(EVALUATION).alias(_SCOPE), *MODEL, *keys, _Y, _S, _D, *[none.alias(x) for x in (_CS, _CD, _HS, _HD)]
    )
    champion = unique.where(F.col("role") == CHAMPION).select(*keys, _Y, F.col(_S).alias(_CS), F.col(_D).alias(_CD))
    challengers = unique.where(F.col("role") == CHALLENGER).select(*MODEL, *keys, F.col(_S).alias(_HS), F.col(_D).alias(_HD))
    pairs = champion.join(challengers, on=list(c.keys), how="inner").select(
        F.lit(PAIRED).alias(_SCOPE), *MODEL, *keys, _Y, none.alias(_S), none.alias(_D), _CS, _CD, _HS, _HD
    )
    targets: list[Target] = [BinaryTarget(c.score, _Y, _S, _D), PairedTarget(c.paired, _Y, _CS, _CD, _HS, _HD)]
    rows_of = models.unionByName(pairs)
    if c.regression:
        targets, rows_of = [RegressionTarget(c.score, _Y, _S)], models
    stats = rows_of.transform(evaluation_statistics(targets, c.keys, [_SCOPE, *MODEL], settings))
    own = ((F.col(_SCOPE) == EVALUATION) & (F.col("column") == c.score)) | (
        (F.col(_SCOPE) == PAIRED) & (F.col("column") == c.paired)
    )
    return stats.where(own).select(
        F.col(_SCOPE).alias("scope"), *MODEL, F.lit(c.score).alias("column"), "metric", "bucket", "value"
    )


def joined_statistics(
    models: DataFrame, labels: DataFrame, c: Columns, settings: Settings | None = None
) -> tuple[list[dict[str, Any]], dict[str, float], list[dict[str, Any]]]:
    """One partition's Spark work: the labels (one row per key) and the joined rows kept, each read
    once; collected, the versions' counts (:func:`model_counts`), the labels' (:func:`label_counts`,
    0 when there are none) and the statistics (:func:`statistics`): aggregates, not rows."""
    keyed = label_rows(labels, c).persist()
    rows = joined(models, keyed, c).persist()
    try:
        counts = [r.asDict() for r in model_counts(rows).collect()]
        totals = label_counts(keyed).first()
        stats = [r.asDict() for r in statistics(rows, c, settings).collect()]
    finally:
        rows.unpersist()
        keyed.unpersist()
    return counts, {k: float(v or 0) for k, v in (totals.asDict() if totals else {}).items()}, stats


def partition_date(spec: Mapping[str, Any]) -> dt.date | None:
    """The day a partition is of: its first date or timestamp partition value, or a string one in
    ISO form (``ds=2024-06-01``); None when it has none."""
    for value in spec.values():
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value[:10])
            except ValueError:
                continue
    return None


def maturity(
    day: dt.date | None, as_of: dt.date, horizon_days: int, coverage: float | None, min_labelled: float
) -> tuple[str, str | None]:
    """``final`` when the partition's day is at least ``horizon_days`` before ``as_of`` (a partition
    without a day is judged on coverage alone) and at least ``min_labelled`` of its scored rows are
    labelled; else ``provisional`` and why."""
    why = []
    if day is not None and (as_of - day).days < horizon_days:
        why.append(f"{(as_of - day).days} of {horizon_days} days since {day.isoformat()}")
    if coverage is None:
        why.append("no scored rows")
    elif coverage < min_labelled:
        why.append(f"coverage {coverage:.1%} < {min_labelled:.0%}")
    return (PROVISIONAL, "; ".join(why)) if why else (FINAL, None)


@dataclass(frozen=True)
class Judgement:
    """How a partition's maturity is judged: its day, the day it is judged on, the thresholds."""

    day: dt.date | None
    as_of: dt.date
    horizon_days: int
    min_labelled: float


@dataclass
class ModelEvaluation:
    """One model version's evaluation of one partition: its counts, metrics (and, for a challenger,
    the paired comparison with the champion), coverage, maturity, and the long rows to write."""

    role: str
    model_name: str | None
    model_version: str | None
    counts: dict[str, float]
    metrics: list[MetricValue]
    paired: list[MetricValue] = field(default_factory=list)
    coverage: float | None = None
    labelled: float = 0.0  # scored keys (once) with a label
    evaluated: float = 0.0  # scored keys (once): the coverage's denominator
    maturity: str = PROVISIONAL
    why: str | None = None
    rows: list[Row] = field(default_factory=list)

    def metric(self, name: str) -> MetricValue | None:
        return next((m for m in (*self.metrics, *self.paired) if m.name == name), None)


def _model(row: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    return (row["role"], row["model_name"], row["model_version"])


def evaluations(
    counts: Sequence[Mapping[str, Any]],
    labels: Mapping[str, Any],
    stats: Sequence[Mapping[str, Any]],
    score_column: str,
    judgement: Judgement,
    estimates: Sequence[Mapping[str, Any]] = (),
) -> list[ModelEvaluation]:
    """Each model version's evaluation from the collected counts and statistics, the champion first.
    A partition the champion scored no row of still gets its (empty) evaluation: its labels are
    counted as never scored. ``estimates``: the stats table's ``estimate`` rows of the partition (the
    champion's CBPE, ``jobs.quality.estimates``), written beside the champion's realized metrics."""
    by_model: dict[tuple[str, str | None, str | None], list[Mapping[str, Any]]] = {}
    for r in stats:
        by_model.setdefault(_model(r), []).append(r)
    rows = sorted(counts, key=lambda r: (r["role"] != CHAMPION, str(r["model_name"]), str(r["model_version"])))
    if not rows or rows[0]["role"] != CHAMPION:
        rows.insert(0, {"role": CHAMPION, "model_name": None, "model_version": None})
    partition_counts = {k: float(labels.get(k) or 0) for k in LABEL_COUNTS}
    out: list[ModelEvaluation] = []
    for row in rows:
        model = _model(row)
        mine = by_model.get(model, [])
        n = {k: float(row.get(k) or 0) for k in MODEL_COUNTS if k != "labels_unscored"}
        n["labels_unscored"] = partition_counts["label_keys"] - n["labels_matched"]
        s = merge_statistics(mine, score_column, EVALUATION)
        metrics = model_metrics(s)
        coverage = next(m.value for m in metrics if m.name == "label_coverage")
        state, why = maturity(judgement.day, judgement.as_of, judgement.horizon_days, coverage, judgement.min_labelled)
        labelled = s.get("n") + s.get("missing_score") + s.get("invalid_label")
        ev = ModelEvaluation(*model, n, metrics, coverage=coverage, maturity=state, why=why)
        ev.labelled, ev.evaluated = labelled, labelled + s.get("unlabelled")
        paired_state = PROVISIONAL
        if model[0] == CHALLENGER and not is_regression(s):
            ev.paired = paired_metrics(merge_statistics(mine, score_column, PAIRED))
            # a comparison is final when both models' evaluations are
            paired_state = FINAL if state == FINAL and out[0].maturity == FINAL else PROVISIONAL
        ev.rows = _rows(
            ev, mine, {**n, **partition_counts}, score_column, paired_state, estimates if model[0] == CHAMPION else ()
        )
        out.append(ev)
    return out


def _rows(
    ev: ModelEvaluation,
    stats: Sequence[Mapping[str, Any]],
    counts: Mapping[str, float],
    column: str,
    paired_maturity: str,
    estimates: Sequence[Mapping[str, Any]] = (),
) -> list[Row]:
    """The version's long rows: counts (column ``*``), statistics and metrics, with its model,
    coverage and maturity (the paired rows' own: final when both models' are); for the champion its
    estimate beside the realized metrics (scope ``estimate``)."""
    rows: list[Row] = [
        {"scope": EVALUATION, "column": TABLE, "metric": name, "bucket": None, "value": value} for name, value in counts.items()
    ]
    rows += [{k: r[k] for k in ("scope", "column", "metric", "bucket", "value")} for r in stats]
    rows += metric_rows(ev.metrics, column, EVALUATION)
    rows += metric_rows(ev.paired, column, PAIRED)
    rows += estimate_rows(estimates, ev.metrics, column)
    model = {"role": ev.role, "model_name": ev.model_name, "model_version": ev.model_version}
    return [
        {**r, **model, "maturity": paired_maturity if r["scope"] == PAIRED else ev.maturity, "label_coverage": ev.coverage}
        for r in rows
    ]
