"""Challengers: models scored beside the champion on the same rows, in the same pass, never in its way.

* Each reference of ``model.challengers`` resolves once at run start, like the champion; one that
  does not resolve, is not usable, or cannot take the input is dropped from the run with a warning.
* A challenger whose pipeline (steps and fitted values) and feature types are the champion's
  takes the champion's prepared rows. One with its own pipeline gets its own preparation of the
  same rows: a copy of the input columns rides through the champion's steps untouched, then the
  challenger's steps run on it with every other column hidden under a name no step can touch.
  Challengers that share a pipeline share that preparation.
* All models score in one ``mapInArrow`` stage (``transforms.scoring.score_models``). A
  challenger that cannot load or score a batch fills its outputs with nulls and says why in its
  error column; the partition's profile counts those rows, and a challenger with any is failed
  for the partition: no shadow rows, no comparison, the champion published as if it were absent.
* The shadow table (``output.shadow``) holds the challengers' outputs, the keys, lineage and the
  partition columns, replaced per partition after the scores, under the same app transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import JobConfig, ModelConfig
from jobs.model.resolve import ResolvedModel, release_model, resolve_model
from jobs.model.ship import ship_model
from jobs.model.training import fitted_values
from jobs.redact import redact
from jobs.run.plan import Plan, feature_types, required_columns
from transforms.contract import check_contract, conform
from transforms.scoring import ModelSpec

log = logging.getLogger("lakescore.run")
PREFIX = "__lakescore_c"


@dataclass(frozen=True)
class Challenger:
    """A resolved challenger and the names its columns take in the partition's model view.

    ``prepared_by``: the tag of the challenger whose preparation of the rows this one takes
    (itself, when its pipeline is its own), or None for the champion's.
    """

    tag: str
    reference: str
    model: ResolvedModel
    location: str
    plan: Plan
    input_casts: dict[str, T.DataType]
    feature_casts: dict[str, T.DataType]
    prepared_by: str | None

    @property
    def label(self) -> str:
        return f"{self.reference} (version {self.model.version or '-'})"

    def output_column(self, name: str) -> str:
        return f"{PREFIX}{self.tag}_{name}"

    @property
    def error_column(self) -> str:
        return f"{PREFIX}{self.tag}__error"

    def feature_column(self, name: str) -> str:
        return name if self.prepared_by is None else f"{PREFIX}{self.prepared_by}_in_{name}"

    def raw_column(self, name: str) -> str:
        return f"{PREFIX}{self.tag}_raw_{name}"

    def output_columns(self, outputs: T.StructType) -> dict[str, str]:
        """The champion's output names -> this challenger's columns of them."""
        return {name: self.output_column(name) for name in outputs.fieldNames()}

    def spec(self, outputs: T.StructType) -> ModelSpec:
        """Its place in the scoring stage: the champion's outputs, under its own column names."""
        names = outputs.fieldNames()
        mine = T.StructType([self.model.outputs[n] for n in names])
        return ModelSpec(
            self.location,
            tuple(self.model.features),
            mine,
            tuple(self.feature_column(f) for f in self.model.features),
            tuple(self.output_column(n) for n in names),
            self.error_column,
        )


@dataclass
class ChallengerStatus:
    """What became of one configured challenger in this run: the ledger's and the report's row."""

    reference: str
    version: str | None = None
    status: str = "scored"  # scored | failed
    error: str | None = None
    failed_partitions: list[str] = field(default_factory=list)

    def fail(self, error: str, partition: str | None = None) -> None:
        self.status = "failed"
        self.error = self.error or redact(error)[:1000]
        if partition is not None:
            self.failed_partitions.append(partition)

    def row(self) -> dict[str, Any]:
        return {
            "reference": redact(self.reference),
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "failed_partitions": list(self.failed_partitions),
        }


def _usable(champion: ResolvedModel, model: ResolvedModel) -> str | None:
    """Why ``model`` cannot be compared with the champion, or None."""
    theirs = {f.name: f.dataType for f in model.outputs.fields}
    for f in champion.outputs.fields:
        if f.name not in theirs:
            return f"it has no output {f.name!r} (the champion's outputs: {', '.join(champion.outputs.fieldNames())})"
        if theirs[f.name] != f.dataType:
            return f"its output {f.name!r} is {theirs[f.name].simpleString()}, the champion's {f.dataType.simpleString()}"
    if champion.uri == model.uri:
        return "it resolves to the champion's own version"
    return None


def _challenger_plan(cfg: JobConfig, model: ResolvedModel, champion: Plan) -> Plan:
    """Its own pipeline and fitted values; the champion's, fitted values and all, when it logged none."""
    if model.pipeline is None:
        return Plan(champion.steps, champion.fitted)
    return Plan(model.pipeline, fitted_values(model.pipeline, model.reference, f"model {model.uri} lakescore/reference.json"))


def resolve_challengers(
    spark: SparkSession,
    cfg: JobConfig,
    champion: ResolvedModel,
    plan: Plan,
    input_schema: T.StructType,
    prepared_schema: T.StructType,
) -> tuple[tuple[Challenger, ...], list[ChallengerStatus]]:
    """Resolve, check and ship each configured challenger; a failure drops that one alone.

    ``prepared_schema``: the input as the champion's pipeline leaves it (after its feature casts).
    """
    resolved: list[Challenger] = []
    statuses: list[ChallengerStatus] = []
    pipelines: dict[tuple[Any, ...], str] = {}
    empty = spark.createDataFrame([], input_schema)
    for index, reference in enumerate(cfg.model.challengers):
        status = ChallengerStatus(reference)
        statuses.append(status)
        model = None
        try:
            model = resolve_model(_as_model_config(cfg.model, reference))
            status.version = model.version
            why = _usable(champion, model)
            if why is not None:
                raise ValueError(f"challenger {reference} cannot be compared with the champion {champion.uri}: {why}")
            own = _challenger_plan(cfg, model, plan)
            input_casts = check_contract(input_schema, required_columns(cfg, model, own.steps), cfg.input.path)
            wanted = feature_types(model, ())
            key = (own.steps, tuple(sorted(own.fitted.items(), key=lambda kv: kv[0])), tuple(sorted(input_casts.items())))
            shares = (own.steps, own.fitted) == (plan.steps, plan.fitted) and not check_contract(
                prepared_schema, wanted, f"{cfg.input.path} (after preprocessing)"
            )
            prepared = empty.transform(own.prepare(input_casts))
            feature_casts = check_contract(prepared.schema, wanted, f"{cfg.input.path} (after challenger preprocessing)")
            tag = str(index)
            prepared_by = None if shares else pipelines.setdefault(key, tag)
            location = ship_model(spark, model)
            resolved.append(Challenger(tag, reference, model, location, own, input_casts, feature_casts, prepared_by))
            log.info(
                "challenger %s resolved to %s; %s",
                reference,
                model.uri,
                "it shares the champion's prepared rows"
                if prepared_by is None
                else f"its own pipeline ({len(own.steps)} step(s))",
            )
        except Exception as exc:
            if model is not None:
                release_model(model)
            status.fail(f"{type(exc).__name__}: {exc}")
            log.warning("challenger %s is not scored in this run: %s", reference, status.error)
    return tuple(resolved), statuses


def _as_model_config(champion: ModelConfig, reference: str) -> ModelConfig:
    """The champion's registry settings, with the challenger's reference."""
    return ModelConfig(
        reference,
        champion.tracking_uri,
        (),  # a challenger's features come from its own signature
        allow_local=champion.allow_local,
        registry_timeout_seconds=champion.registry_timeout_seconds,
    )


def raw_copies(challengers: Sequence[Challenger], columns: Sequence[str]) -> dict[str, str]:
    """The copies of the input each challenger with a pipeline of its own prepares: name -> column."""
    return {ch.raw_column(c): c for ch in challengers if ch.prepared_by == ch.tag for c in columns}


def prepare_beside(challengers: Sequence[Challenger], columns: Sequence[str]):
    """The transform that adds, for each challenger with its own pipeline, its prepared features
    (``feature_column`` names) from its copy of the input (``raw_copies``), every other column
    untouched."""

    def one(df: DataFrame, ch: Challenger) -> DataFrame:
        mine = {ch.raw_column(c): c for c in columns}
        others = [c for c in df.columns if c not in mine]
        hidden = {c: f"{PREFIX}{ch.tag}_hidden_{i}" for i, c in enumerate(others)}
        scoped = df.select(*[F.col(c).alias(hidden[c]) for c in others], *[F.col(r).alias(c) for r, c in mine.items()])
        prepared = scoped.transform(ch.plan.prepare(ch.input_casts, carried=list(hidden.values()))).transform(
            conform(ch.feature_casts)
        )
        restored: list[Column] = [F.col(h).alias(c) for c, h in hidden.items()]
        return prepared.select(*restored, *[F.col(f).alias(ch.feature_column(f)) for f in ch.model.features])

    def _(df: DataFrame) -> DataFrame:
        for ch in challengers:
            if ch.prepared_by == ch.tag:
                df = one(df, ch)
        return df

    return _


def challenger_columns(challengers: Sequence[Challenger], outputs: T.StructType) -> list[str]:
    """The model view's columns the challengers add: their outputs and error columns."""
    return [c for ch in challengers for c in [*ch.output_columns(outputs).values(), ch.error_column]]


SHADOW_LINEAGE = ("model_name", "model_version", "model_reference", "run_id", "scored_at")


def shadow_rows(
    view: DataFrame,
    challengers: Sequence[Challenger],
    outputs: T.StructType,
    keys: Sequence[str],
    partition_by: Sequence[str],
    run_id: str,
    scored_at: Any,
) -> DataFrame:
    """The shadow table's rows of a partition: per challenger, the keys, its outputs (under the
    champion's output names), lineage and the partition columns. No challenger: no rows."""

    def rows(ch: Challenger) -> DataFrame:
        return view.select(
            *[F.col(k) for k in keys if k not in partition_by],
            *[F.col(ch.output_column(f.name)).cast(f.dataType).alias(f.name) for f in outputs.fields],
            F.lit(ch.model.name).alias("model_name"),
            F.lit(ch.model.version).cast("string").alias("model_version"),
            F.lit(redact(ch.reference)).alias("model_reference"),
            F.lit(run_id).alias("run_id"),
            F.lit(scored_at).alias("scored_at"),
            *[F.col(c) for c in partition_by],
        )

    if not challengers:
        raise ValueError("shadow_rows needs at least one challenger")
    frames = [rows(ch) for ch in challengers]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def failed_rows(view: DataFrame, ch: Challenger) -> str | None:
    """The reason the first of a challenger's failed rows gives (one row to the driver), or None."""
    first = view.where(F.col(ch.error_column).isNotNull()).select(ch.error_column).first()
    return None if first is None else str(first[0])


def versions(challengers: Sequence[Challenger]) -> Mapping[str, str]:
    """Tag -> the version a stats row of that challenger records."""
    return {ch.tag: str(ch.model.version or ch.model.uri) for ch in challengers}


def judge_challengers(
    challengers: Sequence[Challenger],
    statuses: Sequence[ChallengerStatus],
    label: str,
    view: DataFrame,
    rows: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], tuple[Challenger, ...]]:
    """The partition's statistics rows without those of the challengers that failed on it (their
    ``rows_failed`` count stays), and the challengers that scored every row.

    Expects rows whose scope is still ``challenger#<tag>`` / ``comparison#<tag>``.
    """
    scored: list[Challenger] = []
    dropped: set[str] = set()
    for ch in challengers:
        failed = next(
            (r["value"] for r in rows if (r["scope"], r["column"], r["metric"]) == (f"challenger#{ch.tag}", "*", "rows_failed")),
            0,
        )
        if not failed:
            scored.append(ch)
            continue
        why = failed_rows(view, ch) or "unknown"
        statuses[int(ch.tag)].fail(why, label)
        dropped |= {f"challenger#{ch.tag}", f"comparison#{ch.tag}"}
        log.warning(
            "partition %s: challenger %s failed on %d row(s): %s; its shadow rows and comparison are not written, "
            "the champion's scores are",
            label,
            ch.label,
            int(failed),
            redact(why),
        )
    kept = [r for r in rows if r["scope"] not in dropped or r["metric"] == "rows_failed"]
    return kept, tuple(scored)


def summary_lines(statuses: Sequence[ChallengerStatus], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per configured challenger for the run's summary: how it compared with the champion
    over the run's partitions (agreement, mean |difference|, weighted by the rows compared), or why
    it was not compared."""
    lines = []
    for status in statuses:
        head = f"  challenger        {redact(status.reference)} version {status.version or '-'}"
        if status.status != "scored":
            lines.append(f"{head}: failed ({status.error})")
            continue
        mine = [r for r in rows if r["scope"] == "comparison" and r.get("model_version") == status.version]
        said = []
        for column in dict.fromkeys(r["column"] for r in mine):
            for metric, label in (("agreement", "agreement"), ("mean_abs_diff", "mean |diff|")):
                pooled = _weighted(mine, column, metric)
                if pooled is not None:
                    shown = f"{pooled:.1%}" if metric == "agreement" else f"{pooled:.4g}"
                    said.append(f"{label} {shown} ({column})")
        lines.append(f"{head}: {', '.join(said) or 'no rows compared'}")
    return lines


def _weighted(rows: Sequence[Mapping[str, Any]], column: str, metric: str) -> float | None:
    """``metric`` of ``column`` over every partition, each weighted by its rows compared."""
    by_partition = {r["partition"]: r["value"] for r in rows if (r["column"], r["metric"]) == (column, metric)}
    weights = {r["partition"]: r["value"] or 0 for r in rows if (r["column"], r["metric"]) == (column, "compared")}
    pairs = [(v, weights.get(p, 0)) for p, v in by_partition.items() if v is not None]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None
