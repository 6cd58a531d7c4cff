"""One partition, stage by stage: read and check it, quarantine what breaks the rules, score the
rest, profile both, judge them by drift and the gate, account for every row, then write.

Each partition is its own unit: its statistics are committed first, then its quarantined rows and
its scores as one publication (``jobs.run.publish``), so a rerun of one partition replaces exactly
that partition in both tables and a crash never leaves published scores without statistics. A
partition that fails the gate (mode fail) publishes nothing: its quarantined rows go to the held
table, where the operator sees why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.faults import reach
from jobs.quality.drift import BASELINE, drift_rows
from jobs.quality.gate import Check, check_gate
from jobs.quality.profile import profile_partition
from jobs.quality.stats_table import previous_partition, write_stats
from jobs.run.challengers import (
    Challenger,
    challenger_columns,
    judge_challengers,
    prepare_beside,
    raw_copies,
    shadow_rows,
    versions,
)
from jobs.run.context import RunContext
from jobs.run.outcome import PartitionOutcome, PartitionResult, partition_result
from jobs.run.partition_spec import partition_label
from jobs.run.plan import contract_casts, scored_columns
from jobs.run.publish import Claim, claim, hold_quarantine, publish, publish_shadow
from jobs.run.timing import timed
from jobs.tables import read_table
from transforms.comparison import derive_comparisons, tag_challengers
from transforms.contract import conform
from transforms.scoring import ModelSpec, score_models, scored_rows
from transforms.validation import passing_rows, quarantined_rows, validate

log = logging.getLogger("lakescore.run")
Row = dict[str, Any]


@dataclass(frozen=True)
class CheckedInput:
    """A partition as read, and the casts its contract checks settled."""

    raw: DataFrame
    input_casts: dict[str, T.DataType]  # onto the input, before preprocessing
    feature_casts: dict[str, T.DataType]  # onto the features, after preprocessing


def read_partition(ctx: RunContext, spec: dict[str, Any]) -> CheckedInput:
    """Read the partition at the run's snapshot and check both contracts (``contract_casts``)."""
    cfg = ctx.cfg
    raw = read_table(ctx.spark, cfg.input.path, ctx.engine, [spec], ctx.input_version, cfg.scoring.batch_size)
    input_casts, feature_casts, _ = contract_casts(cfg, ctx.model, ctx.plan, raw)
    return CheckedInput(raw, input_casts, feature_casts)


def binned_features(ctx: RunContext) -> list[str]:
    """The features drift counts in bins that the scored table does not keep: they ride along in the
    cached model view, so one aggregation profiles what the model saw and what it said."""
    passthrough = scored_columns(ctx.cfg)
    return [f for f in ctx.plan.feature_bins if f in ctx.model.features and f not in passthrough]


def input_copies(ctx: RunContext) -> dict[str, str]:
    """Pass-through columns a preprocessing step rewrites, and the name their input value rides under."""
    rewritten = {s.column for s in ctx.plan.steps if s.column is not None}
    return {c: f"__lakescore_input_{c}" for c in scored_columns(ctx.cfg) if c in rewritten}


def model_view(ctx: RunContext, checked: DataFrame, casts: CheckedInput, binned: Sequence[str]) -> DataFrame:
    """The rows that passed the rules, preprocessed and scored, as the scored table's contract plus
    ``binned`` and the challengers' outputs. Pass-through columns hold the input's values, not what
    preprocessing made of them."""
    cfg, model = ctx.cfg, ctx.model
    copies = input_copies(ctx)
    passthrough = scored_columns(cfg)
    carried = [copies.get(c, c) for c in passthrough]
    raws = raw_copies(ctx.challengers, casts.raw.columns)
    rival_columns = challenger_columns(ctx.challengers, model.outputs)
    champion = ModelSpec(ctx.model_location, tuple(model.features), model.outputs)
    models = [champion, *[ch.spec(model.outputs) for ch in ctx.challengers]]
    return (
        checked.transform(passing_rows)
        .select("*", *[F.col(c).alias(name) for name, c in raws.items()])
        .transform(ctx.plan.prepare(casts.input_casts, copies, carried=list(raws)))
        .transform(conform(casts.feature_casts))
        .transform(prepare_beside(ctx.challengers, casts.raw.columns))
        .transform(score_models(models, list(dict.fromkeys([*carried, *binned]))))
        .transform(
            scored_rows(
                passthrough,
                model.outputs,
                model.name,
                model.version,
                ctx.run_id,
                ctx.scored_at,
                cfg.input.partition_by,
                [*binned, *rival_columns],
                copies,
            )
        )
    )


def assess(
    ctx: RunContext, spec: dict[str, Any], rows: list[Row], earlier: Sequence[Row], score_seconds: float
) -> tuple[list[Row], list[Check]]:
    """``rows`` plus the scoring speed, drift (baseline and against the previous partition) and the gate checks."""
    cfg, plan = ctx.cfg, ctx.plan

    def row(scope: str, column: str, metric: str, value: float | None) -> Row:
        return {"scope": scope, "column": column, "metric": metric, "bucket": None, "value": value}

    scored = next((r["value"] for r in rows if (r["scope"], r["column"], r["metric"]) == ("rows", "*", "rows_scored")), 0)
    speed = scored / score_seconds if score_seconds > 0 else None
    rows = [*rows, row("timing", "*", "score_seconds", score_seconds), row("timing", "*", "rows_per_second", speed)]
    before, before_rows = previous_partition(
        ctx.spark, cfg.output.stats, ctx.engine, cfg.name, cfg.input.partition_by, spec, earlier
    )
    if before is None:
        log.info("partition %s: no earlier partition has statistics; no consecutive drift", partition_label(spec))
    rows += drift_rows(rows, plan.feature_bins, plan.prediction_bins, before_rows, before)
    _warn_of_large_drift(partition_label(spec), rows)
    features = [f for f in ctx.model.features if any(r["column"] == f for r in rows)]
    checks = check_gate(cfg.gate, rows, features, [f.name for f in ctx.model.outputs.fields], cfg.source)
    for c in checks:
        if c.outcome == "fail":
            log.warning(
                "partition %s: gate check %s(%s) failed: %s against a limit of %g",
                partition_label(spec),
                c.name,
                c.column,
                c.observed,
                c.limit,
            )
    return rows + [c.row() for c in checks], checks


# PSI above 0.25 is the conventional "significant shift" rule of thumb of credit scoring:
# logged as a warning whatever the gate says, so a run with no gate still tells someone
LARGE_PSI = 0.25


def _warn_of_large_drift(label: str, rows: Sequence[Row]) -> None:
    for r in rows:
        if r["scope"] == BASELINE and r["metric"] == "psi" and r["value"] is not None and r["value"] > LARGE_PSI:
            js = next(
                (x["value"] for x in rows if (x["scope"], x["column"], x["metric"]) == (BASELINE, r["column"], "js_distance")),
                None,
            )
            log.warning(
                "partition %s: %s drifted far from the training reference: PSI %.3g > %g%s",
                label,
                r["column"],
                r["value"],
                LARGE_PSI,
                f", JS distance {js:.3g}" if js is not None else "",
            )


def score_partition(ctx: RunContext, spec: dict[str, Any], earlier: Sequence[Row] = ()) -> PartitionOutcome:
    """Score one input partition. ``earlier``: this run's statistics rows so far (consecutive drift).

    Everything is computed, counted and judged before anything is committed; then the partition's
    statistics, then its quarantined rows and scores (``jobs.run.publish``), or, when it fails the
    gate, its quarantined rows in the held table and nothing published.
    """
    cfg, model = ctx.cfg, ctx.model
    label = partition_label(spec)
    timings: dict[str, float] = {}
    claimed = claim(ctx, spec)
    casts = read_partition(ctx, spec)
    checked = casts.raw.transform(validate(cfg.rules)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        binned = binned_features(ctx)
        rivals = challenger_columns(ctx.challengers, model.outputs)
        view = model_view(ctx, checked, casts, binned).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            with timed(timings, "score", f"partition {label}: validating, scoring with {model.uri} and profiling"):
                profiled = [f for f in model.features if f in casts.raw.columns]
                bins = (ctx.plan.feature_bins, ctx.plan.prediction_bins)
                rows = profile_partition(cfg, model, bins, checked, view, profiled, ctx.challengers)
            rows, compared = judge_challengers(ctx.challengers, ctx.challenger_statuses, label, view, rows)
            rows = tag_challengers(derive_comparisons(rows), versions(ctx.challengers))
            rows, checks = assess(ctx, spec, rows, earlier, timings["score"])
            stamp = {"run_id": ctx.run_id, "job": cfg.name, "partition": label, "computed_at": ctx.scored_at, **spec}
            rows = [r | stamp for r in rows]
            result = partition_result(label, rows)
            _check_accounting(label, result)
            failed = tuple(c for c in checks if c.outcome == "fail") if cfg.gate.mode == "fail" else ()
            with timed(timings, "stats_write", f"partition {label}: writing statistics"):
                write_stats(
                    ctx.spark,
                    cfg.output.stats,
                    ctx.engine,
                    rows,
                    [ctx.input_schema[c] for c in cfg.input.partition_by],
                    ctx.run_id,
                )
            reach("stats_written")
            quarantined = checked.transform(
                quarantined_rows(casts.raw.columns, ctx.run_id, ctx.scored_at, ctx.plan.reasons_with_code)
            )
            version = None
            if failed:
                with timed(
                    timings, "held_write", f"partition {label}: gate failed; keeping its quarantined rows in {cfg.output.held}"
                ):
                    hold_quarantine(ctx, quarantined)
            else:
                with timed(timings, "publish", f"partition {label}: publishing quarantined rows and scores"):
                    version = publish(ctx, spec, claimed, quarantined, view.drop(*binned, *rivals))
                if ctx.challengers:
                    _publish_shadow(ctx, spec, claimed, view, compared, timings)
        finally:
            view.unpersist()
    finally:
        checked.unpersist()
    return PartitionOutcome(result, tuple(rows), version, timings, failed)


def _publish_shadow(
    ctx: RunContext,
    spec: dict[str, Any],
    claimed: Claim,
    view: DataFrame,
    compared: Sequence[Challenger],
    timings: dict[str, float],
) -> None:
    """The challengers' rows of the partition, those that scored every row; the partition is
    replaced even when none did, so it never shows an older run's challengers as this one's."""
    cfg, label = ctx.cfg, partition_label(spec)
    rows = shadow_rows(
        view, compared or ctx.challengers, ctx.model.outputs, cfg.keys, cfg.input.partition_by, ctx.run_id, ctx.scored_at
    )
    with timed(timings, "shadow", f"partition {label}: writing {len(compared)} challenger(s)' rows to {cfg.output.shadow}"):
        error = publish_shadow(ctx, spec, claimed, rows if compared else rows.limit(0))
    if error is not None:
        for ch in compared:
            ctx.status_of(ch).fail(f"shadow write: {error}", label)


def _check_accounting(label: str, result: PartitionResult) -> None:
    """Every row in is scored or quarantined: a run that lost one must not report success."""
    if result.rows_in != result.rows_scored + result.rows_quarantined:
        raise RuntimeError(
            f"partition {label}: rows in ({result.rows_in}) != scored ({result.rows_scored}) + "
            f"quarantined ({result.rows_quarantined}); refusing to report success"
        )
    log.info(
        "partition %s: %d rows in, %d scored, %d quarantined", label, result.rows_in, result.rows_scored, result.rows_quarantined
    )
    if result.rows_in == 0:
        log.warning("partition %s: the input partition has no rows; publishing it empty in both tables", label)
