"""Moving a job's champion alias forward to a shadow-scored challenger (promote) or back to the
version it replaced (rollback), each move logged in the model-events table (``jobs.model.events``).

The alias moves first and the event is appended after it. When the append fails, the alias is
moved back to where it was (and ``lakescore-promote`` exits 1), so the log never misses a move
that stands; only if moving it back fails too does the error say so, naming both versions, for a
person to settle. The registry has no compare-and-set: the alias is read again just before it
moves, and a move made meanwhile by someone else is refused, but two promotions racing within
that instant are not told apart.

A promotion is guarded: the version must have been shadow-scored (stats rows of scope
``comparison`` for it) on ``promotion.min_partitions`` distinct partitions, unless forced. A
rollback is not: it returns to a version that was champion before. The label-based comparison
(``lakescore-evaluate``'s evaluation table) joins the evidence when it exists, never the guard:
labels arrive weeks after the scores.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from jobs.config import ConfigError, JobConfig, ModelConfig
from jobs.model.events import ModelEvent, append_event, json_number, label_evidence, read_events
from jobs.model.resolve import ALIAS_URI, VERSION_URI, bounded_registry
from jobs.redact import redact
from jobs.tables import table_exists

COMPARISON = "comparison"  # the stats scope of a challenger's rows compared with the champion's


class PromotionError(ValueError):
    """The move cannot be made as asked (exit 2): nothing to move, the guard refused, no history."""


class EventLogError(RuntimeError):
    """The alias moved but its event could not be appended; ``restored`` says whether the alias
    was moved back (else it stands unlogged and the message says what to set it to)."""

    def __init__(self, message: str, restored: bool) -> None:
        super().__init__(message)
        self.restored = restored


def events_table(cfg: JobConfig) -> str:
    """The model-events table's path (``output.model_events``; parse_config fills in a default)."""
    if not cfg.output.model_events:
        raise ConfigError(f"{cfg.source}: output.model_events: not set")
    return cfg.output.model_events


def champion_reference(cfg: JobConfig) -> tuple[str, str]:
    """(registered model name, alias) of ``model.uri``, which must be ``models:/NAME@ALIAS``."""
    match = ALIAS_URI.match(cfg.model.uri)
    if match is None:
        raise ConfigError(
            f"{cfg.source}: model.uri: {redact(cfg.model.uri)!r} is not an alias reference (models:/NAME@ALIAS); "
            "lakescore-promote moves the alias the job scores with"
        )
    return match["name"], match["alias"]


@dataclass(frozen=True)
class Registry:
    """The MLflow model registry of a job's model: every call bounded by
    ``model.registry_timeout_seconds`` and its failures sorted (``jobs.model.resolve``)."""

    model: ModelConfig
    client: Any

    @classmethod
    def connect(cls, cfg: JobConfig) -> Registry:
        """A client of ``model.tracking_uri``, else of ``MLFLOW_TRACKING_URI``; MLflow's global
        tracking URI is left alone (a caller in the same process keeps its own)."""
        from mlflow import MlflowClient
        from mlflow.environment_variables import MLFLOW_TRACKING_URI

        uri = cfg.model.tracking_uri or MLFLOW_TRACKING_URI.get()
        if not uri:
            # MLflow would make an empty store in the working directory and find no model there
            raise ConfigError(
                f"{cfg.source}: model.tracking_uri: not set, nor MLFLOW_TRACKING_URI: which registry holds the alias?"
            )
        return cls(cfg.model, MlflowClient(tracking_uri=uri, registry_uri=uri))

    def _about(self, uri: str):
        return bounded_registry(dataclasses.replace(self.model, uri=uri))

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at (None: at none yet)."""
        with self._about(f"models:/{name}@{alias}"):
            version = self.client.get_registered_model(name).aliases.get(alias)
        return None if version is None else str(version)

    def version(self, uri: str) -> tuple[str, str]:
        """(name, version) a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` reference resolves to."""
        with self._about(uri):
            if match := ALIAS_URI.match(uri):
                mv = self.client.get_model_version_by_alias(match["name"], match["alias"])
            elif match := VERSION_URI.match(uri):
                mv = self.client.get_model_version(match["name"], match["version"])
            else:
                raise ValueError(f"{uri!r} is not a registry reference")
        return mv.name, str(mv.version)

    def point(self, name: str, alias: str, version: str | None) -> None:
        """Point ``alias`` at ``version`` (None: remove it, as it was before a first promotion)."""
        with self._about(f"models:/{name}@{alias}"):
            if version is None:
                self.client.delete_registered_model_alias(name, alias)
            else:
                self.client.set_registered_model_alias(name, alias, version)


@dataclass(frozen=True)
class Move:
    """One alias move, planned: what ``apply_move`` does and the event records."""

    model_name: str
    alias: str
    action: str  # promote | rollback
    from_version: str | None
    to_version: str
    forced: bool
    evidence: dict[str, Any]

    def event(self, job: str, reason: str | None) -> ModelEvent:
        return ModelEvent.new(
            job=job,
            model_name=self.model_name,
            alias=self.alias,
            action=self.action,
            from_version=self.from_version,
            to_version=self.to_version,
            reason=reason,
            forced=self.forced,
            evidence=json.dumps(self.evidence, sort_keys=True),
        )

    def describe(self, user: str, reason: str | None, done: bool) -> str:
        """One line: what moved (or would move), from where to where, by whom and why."""
        verb = {"promote": ("promoted", "would promote"), "rollback": ("rolled back", "would roll back")}[self.action]
        forced = " [forced: the guard refused it]" if self.forced else ""
        line = (
            f"{verb[0 if done else 1]} {self.model_name}@{self.alias}: version {self.from_version or '(none)'} -> "
            f"{self.to_version} by {user}, reason: {reason or '(none given)'}{forced}"
        )
        return redact(line)


def plan_promotion(cfg: JobConfig, registry: Registry, to: str, force: bool) -> Move:
    """The move of the champion alias to ``to`` (``challenger`` or a version number), guarded.

    Raises:
        ConfigError: ``model.uri`` is not an alias; the challenger is missing or another model's.
        PromotionError: the version is already champion, or the guard refuses it.
        ModelError: the version or alias does not exist in the registry.
        RegistryUnavailableError: the registry did not answer.
    """
    name, alias = champion_reference(cfg)
    current = registry.alias_version(name, alias)
    target = _target(cfg, registry, name, to)
    if target == current:
        raise PromotionError(f"version {target} of {name} is already @{alias}: nothing to move")
    count, comparison = shadow_evidence(cfg.output.stats, cfg.name, target)
    needed = cfg.promotion.min_partitions
    refused = count < needed
    if refused and not force:
        raise PromotionError(
            f"version {target} of {name} was shadow-scored on {count} partition(s) (stats table {redact(cfg.output.stats)}, "
            f"job {cfg.name}); promotion.min_partitions needs {needed}: score it as a challenger on more partitions, "
            "or pass --force to promote it anyway"
        )
    evidence = _evidence(target, current, count, needed, comparison, label_evidence(cfg, target, current))
    return Move(name, alias, "promote", current, target, refused, evidence)


def plan_rollback(cfg: JobConfig, registry: Registry) -> Move:
    """The move of the champion alias back to the version it replaced: the ``from_version`` of the
    latest logged move to the current champion.

    Raises:
        PromotionError: no champion now, or no earlier one recorded.
    """
    name, alias = champion_reference(cfg)
    current = registry.alias_version(name, alias)
    if current is None:
        raise PromotionError(f"{name} has no @{alias}: nothing to roll back")
    history = read_events(events_table(cfg), cfg.name, name, alias)
    arrival = next((e for e in reversed(history) if e.to_version == current), None)
    if arrival is None or arrival.from_version is None:
        raise PromotionError(
            f"no earlier champion recorded in {redact(events_table(cfg))} for {name}@{alias} (version {current}, job {cfg.name}): "
            "nothing to roll back to; move it with --to VERSION"
        )
    count, comparison = shadow_evidence(cfg.output.stats, cfg.name, current)
    labels = label_evidence(cfg, current, arrival.from_version)
    evidence = _evidence(current, arrival.from_version, count, cfg.promotion.min_partitions, comparison, labels)
    return Move(name, alias, "rollback", current, arrival.from_version, False, evidence)


def _target(cfg: JobConfig, registry: Registry, name: str, to: str) -> str:
    """The version ``--to`` names: the first challenger's, or version ``to`` of the champion's model."""
    if to != "challenger":
        return registry.version(f"models:/{name}/{to}")[1]
    if not cfg.model.challengers:
        raise ConfigError(f"{cfg.source}: model.challengers: none configured; --to challenger promotes the first one")
    ref = cfg.model.challengers[0]
    match = ALIAS_URI.match(ref) or VERSION_URI.match(ref)
    where = f"{cfg.source}: model.challengers[0]"
    if match is None:
        raise ConfigError(f"{where}: {redact(ref)!r} is not a registry reference (models:/NAME@ALIAS or models:/NAME/VERSION)")
    if match["name"] != name:
        raise ConfigError(
            f"{where}: {ref!r} is model {match['name']!r}, not the champion's {name!r}: an alias moves within one model"
        )
    return registry.version(ref)[1]


def _evidence(
    version: str, other: str | None, count: int, needed: int, comparison: dict[str, Any], labels: dict[str, Any] | None
) -> dict[str, Any]:
    """The event's evidence: the latest shadow comparison of ``version`` (the challenger that
    becomes champion, or the champion rolled back from) with the champion it was scored beside,
    and the label-based one (``jobs.model.events.label_evidence``)."""
    return {
        "version": version,
        "other_version": other,
        "partitions_shadow_scored": count,
        "min_partitions": needed,
        **comparison,
        "labels": labels,
    }


def shadow_evidence(stats_path: str, job: str, version: str) -> tuple[int, dict[str, Any]]:
    """How many distinct partitions ``job`` shadow-scored ``version`` on, and its comparison rows
    of the latest run that wrote any: ``{"run_id", "computed_at", "comparison": {partition:
    {column: {metric[/bucket]: value}}}}`` (the run None and the comparison empty when there are
    none)."""
    rows = _comparison_rows(stats_path, job, version)
    latest = max(rows, key=lambda r: r["computed_at"], default=None)
    latest_run = latest["run_id"] if latest else None
    comparison: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in rows:
        if r["run_id"] == latest_run:
            metric = f"{r['metric']}/{r['bucket']}" if r["bucket"] else r["metric"]
            comparison.setdefault(r["partition"], {}).setdefault(r["column"], {})[metric] = json_number(r["value"])
    evidence = {
        "run_id": latest_run,
        "computed_at": latest["computed_at"].isoformat() if latest else None,
        "comparison": comparison,
    }
    return len({r["partition"] for r in rows}), evidence


def _comparison_rows(stats_path: str, job: str, version: str) -> list[dict[str, Any]]:
    """``job``'s stats rows of scope comparison for ``version``, read with delta-rs (only these rows
    and the columns the evidence holds)."""
    import pyarrow.dataset as ds

    from jobs.tables.embedded.snapshot import open_table

    if not table_exists(stats_path):
        return []
    dataset = open_table(stats_path).to_pyarrow_dataset()
    if "model_version" not in dataset.schema.names:  # a stats table from before challengers: none compared
        return []
    wanted = (ds.field("job") == job) & (ds.field("scope") == COMPARISON) & (ds.field("model_version") == version)
    columns = ["run_id", "partition", "column", "metric", "bucket", "value", "computed_at"]
    return dataset.to_table(columns=columns, filter=wanted).to_pylist()


def apply_move(
    spark: SparkSession, cfg: JobConfig, registry: Registry, move: Move, reason: str | None, engine: str
) -> ModelEvent:
    """Move the alias, then append the event; an event that cannot be appended moves it back.

    Raises:
        PromotionError: the alias moved meanwhile (it is left where the other move put it).
        EventLogError: the append failed (``restored``: the alias was moved back).
        RegistryUnavailableError, ModelError: the registry refused the move (nothing moved).
    """
    now = registry.alias_version(move.model_name, move.alias)
    if now != move.from_version:
        raise PromotionError(
            f"{move.model_name}@{move.alias} moved to version {now} while this move was planned "
            f"(it was {move.from_version}): nothing changed; run again"
        )
    event = move.event(cfg.name, reason)
    table = events_table(cfg)
    registry.point(move.model_name, move.alias, move.to_version)
    try:
        append_event(spark, table, engine, event)
    except Exception as exc:
        why = redact(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        try:
            registry.point(move.model_name, move.alias, move.from_version)
        except Exception as back:
            raise EventLogError(
                f"{move.model_name}@{move.alias} moved to version {move.to_version} but the event could not be appended "
                f"to {redact(table)} ({why}) and moving it back failed ({redact(str(back))}): set it back to "
                f"version {move.from_version} by hand",
                restored=False,
            ) from exc
        raise EventLogError(
            f"the event could not be appended to {redact(table)} ({why}): {move.model_name}@{move.alias} "
            f"was moved back to version {move.from_version or '(none)'}; nothing changed",
            restored=True,
        ) from exc
    return event


def scored_partitions(scored_path: str, partition_by: Sequence[str], version: str) -> list[str]:
    """The partitions (labels, ``ds=2024-06-01``, sorted) whose scored rows carry ``version``.
    DuckDB over delta-rs's snapshot reads only the partition and ``model_version`` columns."""
    import duckdb

    from jobs.run.partition_spec import partition_label
    from jobs.tables.embedded.snapshot import open_table

    if not table_exists(scored_path):
        return []
    con = duckdb.connect()
    try:
        con.register("scored", open_table(scored_path).to_pyarrow_dataset())
        cols = ", ".join('"' + c.replace('"', '""') + '"' for c in partition_by)
        query = f"select distinct {cols} from scored where model_version = ? order by {cols} nulls first"
        rows = con.execute(query, [version]).fetchall()
    finally:
        con.close()
    return [partition_label(dict(zip(partition_by, row, strict=True))) for row in rows]


def backfill_command(conf: str, overrides: Sequence[str], partitions: Sequence[str]) -> str:
    """The ``jobs/score.py`` command that rescores ``partitions`` with the config as given here.

    Each partition is named (``--partition``, repeatable) rather than a ``--from/--to --force``
    range: a range would also rescore the partitions between them that another version scored.
    """
    argv = ["spark-submit", "jobs/score.py", "--conf", conf]
    argv += [arg for o in overrides for arg in ("--set", o)]
    argv += [arg for p in partitions for arg in ("--partition", p)]
    return redact(shlex.join(argv))
