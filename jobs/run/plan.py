"""What a run does to every partition, settled once before the first one is read: the
preprocessing and its fitted values, the columns the contract requires, the quarantine table's
reason schema, and the bins drift is measured in (from the model's training reference, or from an
input partition the config names)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import JobConfig, StepConfig, diff_steps
from jobs.model.resolve import ResolvedModel
from jobs.model.training import fitted_values, profile
from jobs.run.partition_spec import parse_partition
from jobs.tables import read_table, table_exists, table_schema
from transforms.contract import SPARK_TYPES, ContractError, check_contract, conform
from transforms.preprocess import PipelineError, input_columns, output_columns, pipeline
from transforms.sql_guard import check_config_sql
from transforms.stats import Bins, fixed_bins, reference_bins
from transforms.validation import REASONS, passing_rows, rule_columns, validate

log = logging.getLogger("lakescore.run")


@dataclass(frozen=True)
class Plan:
    """What a run does to every partition, settled once before the first one is read."""

    steps: tuple[StepConfig, ...]
    fitted: dict[int, Any]
    reasons_with_code: bool = True  # False while the quarantine table predates the reason's code field
    feature_bins: dict[str, Bins] = field(default_factory=dict)  # from the reference: what drift is measured in
    prediction_bins: dict[str, Bins] = field(default_factory=dict)

    def prepare(
        self, casts: dict[str, T.DataType], copies: Mapping[str, str] | None = None, carried: Sequence[str] = ()
    ) -> Callable[[DataFrame], DataFrame]:
        """The input as the model's pipeline sees it: the contract's casts, then the steps.

        ``copies`` (column -> name) keeps the input's value of those columns, after the casts and
        before any step, under the new names: pass-through columns are the input's values even
        where a step rewrites the column for the model. ``carried``: columns of the input that
        ride through every step untouched (a challenger's own copy of the input).
        """
        copies = dict(copies or {})
        steps = pipeline(self.steps, self.fitted, [*copies.values(), *carried])

        def _(df: DataFrame) -> DataFrame:
            cast = df.transform(conform(casts))
            return cast.select("*", *[F.col(c).alias(name) for c, name in copies.items()]).transform(steps)

        return _


def choose_pipeline(cfg: JobConfig, model: ResolvedModel) -> tuple[StepConfig, ...]:
    """The preprocessing to run: the one the model was trained with, unless the config says otherwise.

    Raises:
        PipelineError: the config declares steps that differ from the model's, without
            ``preprocessing_override: true``. The message lists every difference.
    """
    if model.pipeline is None:
        if cfg.preprocessing is not None:
            log.info(
                "preprocessing: %d step(s) from the job config (model %s logged no pipeline)", len(cfg.preprocessing), model.uri
            )
        return cfg.preprocessing or ()
    if cfg.preprocessing is None or cfg.preprocessing == model.pipeline:
        log.info("preprocessing: %d step(s) from model %s (lakescore/pipeline.json)", len(model.pipeline), model.uri)
        return model.pipeline
    diffs = diff_steps(model.pipeline, cfg.preprocessing, "the model", "the config")
    if cfg.preprocessing_override:
        log.warning(
            "preprocessing_override: scoring with the config's preprocessing, not the one model %s was trained with: %s",
            model.uri,
            "; ".join(diffs),
        )
        return cfg.preprocessing
    raise PipelineError(
        f"{cfg.source}: preprocessing differs from the pipeline model {model.uri} was trained with "
        f"(lakescore/pipeline.json): {'; '.join(diffs)}. Remove preprocessing from the config to use the model's, "
        "or set preprocessing_override: true to score with the config's anyway"
    )


def required_columns(cfg: JobConfig, model: ResolvedModel, steps: Sequence[StepConfig]) -> dict[str, T.DataType | None]:
    """Columns the input must have: the declared contract with its types, then, of any type, what
    the rules and steps read and the features the steps do not create (their types are checked
    after preprocessing)."""
    needed: dict[str, T.DataType | None] = {c: SPARK_TYPES[t] for c, t in cfg.contract.columns}
    created = output_columns(steps)
    features = [f for f in model.features if f not in created]
    for c in (*cfg.keys, *cfg.output.passthrough, *sorted(rule_columns(cfg.rules)), *input_columns(steps), *features):
        needed.setdefault(c, None)
    return needed


def feature_types(model: ResolvedModel, passthrough: Sequence[str]) -> dict[str, T.DataType | None]:
    """What scoring needs after preprocessing: the features with the signature's types, and the
    pass-through columns (a ``select`` or ``rename`` step must keep them)."""
    declared = {f.name: f.dataType for f in model.inputs.fields}
    return {c: declared.get(c) for c in model.features} | {c: None for c in passthrough if c not in model.features}


def scored_columns(cfg: JobConfig) -> list[str]:
    """The input columns the scored table keeps: keys, pass-through and partition columns."""
    return list(dict.fromkeys([*cfg.keys, *cfg.output.passthrough, *cfg.input.partition_by]))


def contract_casts(
    cfg: JobConfig, model: ResolvedModel, plan: Plan, raw: DataFrame
) -> tuple[dict[str, T.DataType], dict[str, T.DataType], T.StructType]:
    """The casts both contracts settle for ``raw`` (the input as read): onto the input, before
    preprocessing, and onto the features, after it; and the schema the features then have.

    Feature types are a contract on what the model receives, so they are checked after
    preprocessing; Spark analyses the plan here, so a step that cannot run fails before any row is read.
    """
    input_casts = check_contract(raw.schema, required_columns(cfg, model, plan.steps), cfg.input.path)
    prepared = raw.transform(plan.prepare(input_casts))
    wanted = feature_types(model, scored_columns(cfg))
    feature_casts = check_contract(prepared.schema, wanted, f"{cfg.input.path} (after preprocessing)")
    return input_casts, feature_casts, prepared.transform(conform(feature_casts)).schema


def reasons_with_code(cfg: JobConfig, engine: str) -> bool:
    """Whether quarantine reasons carry ``code``: a table created before the field existed keeps its
    schema (the engines do not evolve schemas), so its rows are written without it."""
    if not table_exists(cfg.output.quarantine, engine):
        return True
    schema = table_schema(cfg.output.quarantine, engine=engine)
    reasons = schema[REASONS].dataType if REASONS in schema.fieldNames() else None
    if (
        isinstance(reasons, T.ArrayType)
        and isinstance(reasons.elementType, T.StructType)
        and "code" not in reasons.elementType.fieldNames()
    ):
        log.warning(
            "quarantine table %s predates the reasons' code field; writing reasons without it (recreate the table to get it)",
            cfg.output.quarantine,
        )
        return False
    return True


def drift_reference(
    spark: SparkSession,
    cfg: JobConfig,
    engine: str,
    model: ResolvedModel,
    plan: Plan,
    input_schema: T.StructType,
    version: int | None,
) -> dict[str, Any] | None:
    """What baseline drift compares with: the model's training reference, else the input partition
    named by ``drift.reference.partition`` (same snapshot), profiled as the model would see it: the
    rows that pass the rules, after preprocessing. None: no baseline drift (consecutive still runs)."""
    configured = cfg.drift.reference_partition
    if model.reference is not None:
        if configured:
            log.warning(
                "drift.reference.partition %s is not used: model %s carries its training reference", configured, model.uri
            )
        return model.reference
    if not configured:
        log.info("model %s has no training reference and drift.reference is not set: no baseline drift", model.uri)
        return None
    spec = parse_partition(configured, input_schema, cfg.input.partition_by)
    raw = read_table(spark, cfg.input.path, engine, [spec], version)
    casts = check_contract(raw.schema, required_columns(cfg, model, plan.steps), cfg.input.path)
    prepared = raw.transform(validate(cfg.rules)).transform(passing_rows).transform(plan.prepare(casts))
    reference = profile(prepared, [f for f in model.features if f in prepared.columns])
    if not reference["rows"]:
        raise ContractError(
            f"{cfg.source}: drift.reference.partition: {configured} of {cfg.input.path} has no rows that pass the rules"
        )
    log.info(
        "baseline drift against %s of %s (%d rows): model %s carries no training reference",
        configured,
        cfg.input.path,
        reference["rows"],
        model.uri,
    )
    return reference


def plan_run(
    spark: SparkSession, cfg: JobConfig, engine: str, model: ResolvedModel, input_schema: T.StructType, version: int
) -> Plan:
    """The run's plan: pipeline, fitted values, quarantine schema, and drift bins.

    A floating output the reference did not profile is counted in ten bins over [0, 1], so it
    still drifts against the previous partition.

    Every SQL expression of the config and of the model's pipeline is checked against the
    allow-list first (``transforms.sql_guard``): before any row is read, the reference included.
    """
    check_config_sql(spark, cfg.preprocessing or (), cfg.rules, cfg.source)
    check_config_sql(spark, model.pipeline or (), (), f"model {model.uri} lakescore/pipeline.json", steps_key="steps")
    steps = choose_pipeline(cfg, model)
    plan = Plan(
        steps,
        fitted_values(steps, model.reference, f"model {model.uri} lakescore/reference.json"),
        reasons_with_code(cfg, engine),
    )
    feature_bins, prediction_bins = reference_bins(drift_reference(spark, cfg, engine, model, plan, input_schema, version))
    fixed = {f.name: fixed_bins(f.name) for f in model.outputs.fields if isinstance(f.dataType, (T.DoubleType, T.FloatType))}
    return Plan(plan.steps, plan.fitted, plan.reasons_with_code, feature_bins, fixed | prediction_bins)
