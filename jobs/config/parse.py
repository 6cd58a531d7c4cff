"""A parsed YAML document to a validated :class:`JobConfig`, section by section."""

from __future__ import annotations

import re
from typing import Any

from jobs.config.fields import (
    INT64_MAX,
    Where,
    boolean,
    bounded_int,
    identifier,
    identifiers,
    limits,
    mapping_of,
    number,
    positive_int,
    rate,
    required,
    scalar,
    string,
    table_path,
)
from jobs.config.sections import (
    CONTRACT_TYPES,
    DEGRADATION_METRICS,
    ENGINES,
    GATE_MODES,
    MAX_BATCH_SIZE,
    MAX_TOP_K,
    ContractConfig,
    DegradationConfig,
    DriftConfig,
    EvaluationConfig,
    GateConfig,
    InputConfig,
    JobConfig,
    ModelConfig,
    OutputConfig,
    PromotionConfig,
    ScoringConfig,
    SparkConfig,
    StatsConfig,
)
from jobs.config.specs import parse_rule, parse_steps

_MODEL_URI = re.compile(r"^(models:/[^/@]+(@[\w-]+|/\d+)|runs:/[0-9a-zA-Z]+/.+|file:/.+|/.+)$")


def _gate(raw: Any, where: Where) -> GateConfig:
    g = mapping_of(raw, where, {"mode", "min_rows", "max_quarantine_rate", "max_null_rate", "max_psi"})
    mode = g.get("mode", "fail")
    if mode not in GATE_MODES:
        raise (where / "mode").error(f"expected one of {', '.join(GATE_MODES)}, got {mode!r}")
    min_rows = g.get("min_rows")
    if min_rows is not None:
        min_rows = bounded_int(min_rows, where / "min_rows", 0, INT64_MAX, "a non-negative integer")

    def psi_limit(value: Any, w: Where) -> float:
        x = number(value, w)
        if x < 0:
            raise w.error(f"expected a non-negative number, got {value!r}")
        return x

    return GateConfig(
        mode=mode,
        min_rows=min_rows,
        max_quarantine_rate=rate(g["max_quarantine_rate"], where / "max_quarantine_rate")
        if g.get("max_quarantine_rate") is not None
        else None,
        max_null_rate=limits(g.get("max_null_rate"), where / "max_null_rate", rate),
        max_psi=limits(g.get("max_psi"), where / "max_psi", psi_limit),
    )


MAX_REGISTRY_TIMEOUT = 3600.0  # seconds: a registry that takes longer is down


def _model(raw: Any, where: Where) -> ModelConfig:
    """The model reference. A local directory (``/path``, ``file:/path``) is refused unless
    ``allow_local: true``: its code runs in every worker, unreviewed by any registry."""
    r = mapping_of(raw, where, {"uri", "tracking_uri", "features", "allow_local", "registry_timeout_seconds", "challengers"})
    uri = _model_uri(required(r, "uri", where), where / "uri")
    challengers_raw = r.get("challengers") or []
    if not isinstance(challengers_raw, list):
        raise (where / "challengers").error("expected a list of model references")
    challengers = tuple(_model_uri(c, where / "challengers" / i) for i, c in enumerate(challengers_raw))
    if uri in challengers or len(set(challengers)) != len(challengers):
        raise (where / "challengers").error("each challenger must be a reference of its own, not the champion's or another's")
    timeout = number(r.get("registry_timeout_seconds", 30), where / "registry_timeout_seconds")
    if not 0 < timeout <= MAX_REGISTRY_TIMEOUT:
        raise (where / "registry_timeout_seconds").error(f"expected seconds in (0, {MAX_REGISTRY_TIMEOUT:g}], got {timeout:g}")
    tracking = r.get("tracking_uri")
    model = ModelConfig(
        uri,
        string(tracking, where / "tracking_uri") if tracking else None,
        identifiers(r.get("features"), where / "features"),
        allow_local=boolean(r.get("allow_local", False), where / "allow_local"),
        registry_timeout_seconds=timeout,
        challengers=challengers,
    )
    for i, ref in enumerate((model.uri, *model.challengers)):
        if ref.startswith(("/", "file:")) and not model.allow_local:
            w = where / "uri" if i == 0 else where / "challengers" / (i - 1)
            raise w.error(
                f"{ref!r} is a local directory, whose code would run in every worker: only models:/ and runs:/ "
                "are loaded unless model.allow_local: true"
            )
    return model


def _model_uri(raw: Any, where: Where) -> str:
    uri = string(raw, where)
    if not _MODEL_URI.match(uri):
        raise where.error(f"{uri!r} is not models:/name@alias, models:/name/version, runs:/id/path or a path")
    return uri


def _promotion(raw: Any, where: Where) -> PromotionConfig:
    p = mapping_of(raw, where, {"min_partitions"})
    return PromotionConfig(
        bounded_int(p.get("min_partitions", 3), where / "min_partitions", 0, 100_000, "an integer in [0, 100000]")
    )


def _drift(raw: Any, where: Where) -> DriftConfig:
    d = mapping_of(raw, where, {"reference"})
    if d.get("reference") is None:
        return DriftConfig()
    ref = mapping_of(d["reference"], where / "reference", {"partition"})
    partition = string(required(ref, "partition", where / "reference"), where / "reference" / "partition")
    if not re.match(r"^\w+=[^,]+(,\w+=[^,]+)*$", partition):
        raise (where / "reference" / "partition").error(f"expected COL=VALUE[,COL=VALUE], got {partition!r}")
    return DriftConfig(partition)


EVALUATION_KEYS = {
    "labels",
    "label",
    "keys",
    "partition_by",
    "horizon_days",
    "min_labelled",
    "output",
    "output_column",
    "decision_column",
    "task",
    "degradation",
    "signals",
}
MAX_HORIZON_DAYS = 36_500
EVALUATION_TASKS = ("binary", "regression")
MAX_WINDOW_PARTITIONS = 1_000


def _degradation(raw: Any, where: Where) -> DegradationConfig:
    """The retraining signal's rule: δ per metric, k of n final partitions, a drift PSI."""
    if raw is None:
        return DegradationConfig()
    d = mapping_of(raw, where, {"max_drop", "k", "n", "drift_psi"})
    drops = mapping_of(d.get("max_drop"), where / "max_drop", set(d.get("max_drop") or {}))
    max_drop = []
    for metric, delta in drops.items():
        if metric not in DEGRADATION_METRICS:
            raise (where / "max_drop" / str(metric)).error(f"unknown metric; one of {sorted(DEGRADATION_METRICS)}")
        value = number(delta, where / "max_drop" / metric)
        if value < 0:
            raise (where / "max_drop" / metric).error(f"a drop is at least 0, got {value}")
        max_drop.append((str(metric), value))
    n = bounded_int(d.get("n", 3), where / "n", 1, MAX_WINDOW_PARTITIONS, "partitions")
    k = bounded_int(d.get("k", min(2, n)), where / "k", 1, n, f"partitions (at most n = {n})")
    psi = None
    if d.get("drift_psi") is not None:
        psi = number(d["drift_psi"], where / "drift_psi")
        if psi <= 0:
            raise (where / "drift_psi").error(f"a PSI limit is above 0, got {psi}")
    return DegradationConfig(tuple(sorted(max_drop)), k, n, psi)


def _subset(columns: tuple[str, ...], of: tuple[str, ...], where: Where, what: str) -> tuple[str, ...]:
    for i, column in enumerate(columns):
        if column not in of:
            raise (where / i).error(f"{column!r} is not one of {what} {list(of)}")
    if len(set(columns)) != len(columns):
        raise where.error(f"columns repeat: {list(columns)}")
    return columns


def _evaluation(raw: Any, where: Where, keys: tuple[str, ...], inp: InputConfig, out: OutputConfig) -> EvaluationConfig:
    """The labels the evaluation job joins to the scores. Absent: no evaluation (the evaluation job
    refuses to run). The keys must be the job's (the shadow table holds no other), the partition
    columns the input's (the scored table is pruned by them)."""
    if raw is None:
        return EvaluationConfig()
    e = mapping_of(raw, where, EVALUATION_KEYS)
    labels = table_path(required(e, "labels", where), where / "labels")
    label = identifier(required(e, "label", where), where / "label")
    eval_keys = (
        keys if e.get("keys") is None else _subset(identifiers(e["keys"], where / "keys"), keys, where / "keys", "the job's keys")
    )
    partition_by = inp.partition_by
    if e.get("partition_by") is not None:
        named = identifiers(e["partition_by"], where / "partition_by")
        partition_by = _subset(named, inp.partition_by, where / "partition_by", "input.partition_by")
    if not eval_keys or set(eval_keys) <= set(partition_by):
        raise (where / "keys").error("at least one key column that is not a partition column is required")
    if not partition_by:
        raise (where / "partition_by").error("at least one partition column is required (e.g. [ds])")
    if label in (*eval_keys, *partition_by):
        raise (where / "label").error(f"{label!r} is a key or partition column, not a label")
    task = e.get("task", "binary")
    if task not in EVALUATION_TASKS:
        raise (where / "task").error(f"expected one of {list(EVALUATION_TASKS)}, got {task!r}")
    output_column = identifier(e.get("output_column", "probability"), where / "output_column")
    decision_column = identifier(e.get("decision_column", "label"), where / "decision_column")
    if task == "binary" and output_column == decision_column:
        raise (where / "decision_column").error(f"the decision must be another model output than the score {output_column!r}")
    default_output = f"{out.stats.rstrip('/')}_evaluation"
    cfg = EvaluationConfig(
        labels=labels,
        label=label,
        keys=eval_keys,
        partition_by=partition_by,
        horizon_days=bounded_int(e.get("horizon_days", 30), where / "horizon_days", 0, MAX_HORIZON_DAYS, "days"),
        min_labelled=rate(e.get("min_labelled", 0.9), where / "min_labelled"),
        output=table_path(e["output"], where / "output") if e.get("output") is not None else default_output,
        task=task,
        output_column=output_column,
        decision_column=decision_column,
        degradation=_degradation(e.get("degradation"), where / "degradation"),
        signals=table_path(e["signals"], where / "signals")
        if e.get("signals") is not None
        else f"{out.stats.rstrip('/')}_signals",
    )
    tables = [inp.path, out.scored, out.quarantine, out.stats, out.runs, out.held, out.shadow, out.model_events]
    own = (
        ("labels", cfg.labels),
        ("output", cfg.output),
        ("output", cfg.history),
        ("output", cfg.windows),
        ("signals", cfg.signals),
    )
    for key, path in own:
        if path in tables:
            raise (where / key).error(f"{path} is already one of the job's tables; the evaluation's must be its own")
        tables.append(path)
    return cfg


def _spark(raw: Any, where: Where, name: str) -> SparkConfig:
    """Session settings. ``conf`` keys are Spark's own dotted names, taken whole; a value must be a
    scalar, since Spark takes every setting as a string (a mapping there is a key split on its dots)."""
    s = mapping_of(raw, where, {"master", "app_name", "conf"})
    conf = mapping_of(s.get("conf"), where / "conf", set(s.get("conf") or {}))
    settings = []
    for key, value in conf.items():
        value = scalar(value, where / "conf" / str(key))
        settings.append((str(key), str(value).lower() if isinstance(value, bool) else str(value)))
    return SparkConfig(
        string(s["master"], where / "master") if s.get("master") is not None else None,
        string(s["app_name"], where / "app_name") if s.get("app_name") is not None else f"lakescore-{name}",
        tuple(sorted(settings)),
    )


def parse_config(raw: Any, source: str) -> JobConfig:
    """Turn a parsed YAML document into a validated :class:`JobConfig`."""
    root = Where(source)
    raw = mapping_of(
        raw,
        root,
        {
            "name",
            "engine",
            "keys",
            "input",
            "output",
            "model",
            "validation",
            "preprocessing",
            "preprocessing_override",
            "contract",
            "scoring",
            "spark",
            "gate",
            "stats",
            "drift",
            "promotion",
            "evaluation",
        },
    )
    engine = raw.get("engine", "auto")
    if engine not in ENGINES:
        raise (root / "engine").error(f"expected one of {', '.join(ENGINES)}, got {engine!r}")

    w = root / "input"
    r = mapping_of(required(raw, "input", root), w, {"path", "partition_by"})
    inp = InputConfig(table_path(required(r, "path", w), w / "path"), identifiers(r.get("partition_by"), w / "partition_by"))
    if not inp.partition_by:
        raise (w / "partition_by").error("the input must be partitioned (e.g. [ds]); LakeScore scores partitions")

    w = root / "output"
    r = mapping_of(
        required(raw, "output", root),
        w,
        {"scored", "quarantine", "stats", "runs", "passthrough", "reports", "held", "shadow", "model_events"},
    )
    stats_path = table_path(required(r, "stats", w), w / "stats")
    scored, quarantine, stats, runs = (table_path(required(r, k, w), w / k) for k in ("scored", "quarantine", "stats", "runs"))
    out = OutputConfig(
        scored,
        quarantine,
        stats,
        runs,
        passthrough=identifiers(r.get("passthrough"), w / "passthrough"),
        # beside the tables by default: <folder of the stats table>/reports
        reports=table_path(r["reports"], w / "reports")
        if r.get("reports") is not None
        else f"{stats_path.rsplit('/', 1)[0]}/reports",
        held=table_path(r["held"], w / "held") if r.get("held") is not None else f"{quarantine.rstrip('/')}_held",
        shadow=table_path(r["shadow"], w / "shadow") if r.get("shadow") is not None else f"{scored.rstrip('/')}_shadow",
        model_events=table_path(r["model_events"], w / "model_events")
        if r.get("model_events") is not None
        else f"{runs.rstrip('/')}_model_events",
    )
    paths = [inp.path, out.scored, out.quarantine, out.stats, out.runs, out.held, out.shadow, out.model_events]
    if len(set(paths)) != len(paths):
        raise w.error(
            "the input and the seven output tables (scored, quarantine, held, shadow, stats, runs, model_events) "
            "must all be different paths"
        )

    model = _model(required(raw, "model", root), root / "model")

    w = root / "validation"
    v = mapping_of(raw.get("validation"), w, {"rules"})
    rules_raw = v.get("rules") or []
    if not isinstance(rules_raw, list):
        raise (w / "rules").error("expected a list of rules")
    rules = tuple(parse_rule(x, w / "rules" / i) for i, x in enumerate(rules_raw))
    names = [x.name for x in rules]
    if len(set(names)) != len(names):
        raise (w / "rules").error(f"rule names must be unique: {names}")

    # absent means "use the model's pipeline"; an empty list declares that there are no steps
    steps = parse_steps(raw["preprocessing"], root / "preprocessing") if raw.get("preprocessing") is not None else None
    override = boolean(raw.get("preprocessing_override", False), root / "preprocessing_override")

    w = root / "contract"
    c = mapping_of(raw.get("contract"), w, {"columns"})
    declared = mapping_of(c.get("columns"), w / "columns", set(c.get("columns") or {}))
    contract_columns = []
    for col, typ in declared.items():
        identifier(col, w / "columns")
        if not isinstance(typ, str) or typ.lower() not in CONTRACT_TYPES:
            raise (w / "columns" / col).error(f"unknown type {typ!r} (known: {', '.join(CONTRACT_TYPES)})")
        contract_columns.append((col, CONTRACT_TYPES[typ.lower()]))
    contract = ContractConfig(tuple(contract_columns))

    w = root / "scoring"
    s = mapping_of(raw.get("scoring"), w, {"batch_size"})
    scoring = ScoringConfig(positive_int(s.get("batch_size", 100_000), w / "batch_size", MAX_BATCH_SIZE))

    keys = identifiers(required(raw, "keys", root), root / "keys")
    if not keys:
        raise (root / "keys").error("at least one key column is required")
    return JobConfig(
        name=identifier(required(raw, "name", root), root / "name"),
        source=source,
        engine=engine,
        keys=keys,
        input=inp,
        output=out,
        model=model,
        rules=rules,
        preprocessing=steps,
        preprocessing_override=override,
        contract=contract,
        scoring=scoring,
        spark=_spark(raw.get("spark"), root / "spark", raw.get("name", "job")),
        gate=_gate(raw.get("gate"), root / "gate"),
        stats=StatsConfig(
            positive_int(
                mapping_of(raw.get("stats"), root / "stats", {"top_k"}).get("top_k", 10), root / "stats" / "top_k", MAX_TOP_K
            )
        ),
        drift=_drift(raw.get("drift"), root / "drift"),
        promotion=_promotion(raw.get("promotion"), root / "promotion"),
        evaluation=_evaluation(raw.get("evaluation"), root / "evaluation", keys, inp, out),
    )
