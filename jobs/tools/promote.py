"""Move a job's champion alias to a challenger or back, logged in the model-events table: ``lakescore-promote``.

``lakescore-promote --conf conf/jobs/churn.yaml --to challenger --reason "AUC +0.02 on a week of shadow scores"``
(or ``--to 5``, or ``--rollback``). ``--dry-run`` prints what would happen and changes nothing;
``--force`` promotes a version shadow-scored on fewer than ``promotion.min_partitions`` partitions.
The alias moves, then its event is appended; when the append fails the alias is moved back (see
``jobs.model.promote``). Afterwards it prints the partitions the outgoing version scored and the
``jobs/score.py`` command that rescores them with the new champion. The evidence it prints and logs
includes the label-based comparison (McNemar's p-value, the difference in ROC AUC with its interval,
per labelled partition) once ``lakescore-evaluate`` has written it; the guard does not wait for it.

Exit codes: 0 moved (or dry run), 1 the registry did not answer or the event could not be
appended (retry; nothing changed), 2 usage or config error or a refused move (nothing changed).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from jobs.config import ConfigError, JobConfig, load_config
from jobs.logs import setup_logging
from jobs.model.events import VERSION_METRICS, ModelEvent, current_user
from jobs.model.promote import (
    EventLogError,
    Move,
    PromotionError,
    Registry,
    apply_move,
    backfill_command,
    events_table,
    plan_promotion,
    plan_rollback,
    scored_partitions,
)
from jobs.model.resolve import ModelError, RegistryUnavailableError
from jobs.redact import redact
from jobs.run.outcome import EXIT_FAILED, EXIT_OK, EXIT_USAGE, describe_error
from jobs.session import spark_session
from jobs.tables import SchemaMismatchError, StorageCredentialsError, UnsupportedFeatureError, resolve_engine

log = logging.getLogger("lakescore.promote")
# an events table the append cannot write as it is: retrying will not help
USAGE_WRITE_ERRORS = (SchemaMismatchError, StorageCredentialsError, UnsupportedFeatureError)
LABEL_LINES = 5  # the newest partitions of the label-based comparison printed; the event holds them all


def _version_or_challenger(text: str) -> str:
    if text == "challenger":
        return text
    if text.isascii() and text.isdigit():
        return str(int(text))
    raise argparse.ArgumentTypeError(f"expected 'challenger' or a version number, got {text!r}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lakescore-promote", description=__doc__.split("\n")[0])
    p.add_argument("--conf", required=True, help="job config YAML, e.g. conf/jobs/churn.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--to",
        type=_version_or_challenger,
        metavar="challenger|VERSION",
        help="promote the first model.challengers reference's version, or this version of the champion's model",
    )
    which.add_argument("--rollback", action="store_true", help="move the champion back to the version it replaced")
    p.add_argument("--reason", help="why, for the model-events table")
    p.add_argument("--force", action="store_true", help="promote even if shadow-scored on fewer than promotion.min_partitions")
    p.add_argument("--dry-run", action="store_true", help="print what would happen and change nothing")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_format)
    try:
        cfg = load_config(args.conf, overrides=args.set)
        registry = Registry.connect(cfg)
        move = plan_rollback(cfg, registry) if args.rollback else plan_promotion(cfg, registry, args.to, args.force)
        if args.dry_run:
            print(move.describe(current_user(), args.reason, done=False) + " (dry run: nothing changed)", flush=True)
            _aftermath(cfg, args, move)
            return EXIT_OK
        event = _apply(cfg, registry, move, args.reason)
    except (ConfigError, PromotionError, ModelError) as exc:
        return _fail(exc, EXIT_USAGE)
    except RegistryUnavailableError as exc:  # the registry may be back soon: nothing moved, retry
        return _fail(exc, EXIT_FAILED)
    except EventLogError as exc:
        return _fail(exc, EXIT_USAGE if isinstance(exc.__cause__, USAGE_WRITE_ERRORS) else EXIT_FAILED)
    except Exception as exc:  # anything else (a session that would not start, a table unreadable): retry
        log.debug("lakescore-promote failed", exc_info=True)
        return _fail(describe_error(exc), EXIT_FAILED)
    print(
        move.describe(event.user, event.reason, done=True) + f"; event {event.event_id} in {redact(events_table(cfg))}",
        flush=True,
    )
    _aftermath(cfg, args, move)
    return EXIT_OK


def _apply(cfg: JobConfig, registry: Registry, move: Move, reason: str | None) -> ModelEvent:
    """The move, made in a SparkSession: the events table is written like every LakeScore table."""
    with spark_session(cfg.spark) as spark:
        return apply_move(spark, cfg, registry, move, reason, resolve_engine(spark, cfg.engine))


def _aftermath(cfg: JobConfig, args: argparse.Namespace, move: Move) -> None:
    """The evidence in a line, then the partitions the outgoing version scored and the command rescoring them."""
    evidence = move.evidence
    print(
        f"evidence: version {evidence['version']} shadow-scored on {evidence['partitions_shadow_scored']} partition(s) "
        f"(promotion.min_partitions {evidence['min_partitions']}), latest comparison run {evidence.get('run_id') or '(none)'}",
        flush=True,
    )
    _print_labels(evidence.get("labels"))
    outgoing, scored = move.from_version, redact(cfg.output.scored)
    if outgoing is None:
        print("no outgoing version: nothing to rescore", flush=True)
        return
    try:
        partitions = scored_partitions(cfg.output.scored, cfg.input.partition_by, outgoing)
    except Exception as exc:  # the move stands and is logged: say what could not be listed, exit 0
        print(f"could not list the partitions of {scored} scored by version {outgoing}: {redact(str(exc))}", file=sys.stderr)
        return
    if not partitions:
        print(f"no partition of {scored} is scored by version {outgoing}: nothing to rescore", flush=True)
        return
    print(f"partitions of {scored} scored by the outgoing version {outgoing}: {' '.join(partitions)}", flush=True)
    print(f"rescore them with the new champion: {backfill_command(args.conf, args.set, partitions)}", flush=True)


def _print_labels(labels: dict[str, Any] | None) -> None:
    """The label-based comparison in the evidence: a summary, then the newest partitions' line each."""
    if labels is None:
        print("no label-based comparison: the job config has no evaluation section", flush=True)
        return
    partitions, version = labels["partitions"], labels["version"]
    if not partitions:
        print(
            f"no label-based comparison yet of version {version} in {labels['table']}: "
            "lakescore-evaluate writes it once labels land",
            flush=True,
        )
        return
    shown = list(partitions.items())[-LABEL_LINES:]
    newest = f"; the newest {len(shown)}:" if len(shown) < len(partitions) else ":"
    print(
        f"label-based comparison of version {version} with the champion on {len(partitions)} partition(s) "
        f"({labels['final_partitions']} final) in {labels['table']}{newest}",
        flush=True,
    )
    for label, p in shown:
        own = ", ".join(
            f"{metric} {_cell(m[metric])} (version {v})"
            for v, m in p["versions"].items()
            for metric in VERSION_METRICS
            if metric in m
        )
        coverage = "unknown" if p["label_coverage"] is None else f"{p['label_coverage']:.1%}"
        print(
            f"  {label} {p['maturity']}, label coverage {coverage}: McNemar p {_cell(p.get('mcnemar_p_value'))}, "
            f"delta AUC {_cell(p.get('delta_roc_auc'), signed=True)}" + (f"; {own}" if own else ""),
            flush=True,
        )


def _cell(cell: dict[str, Any] | None, signed: bool = False) -> str:
    """A metric's value with its interval and error bound, or why it is undefined."""
    if cell is None:
        return "(not written)"
    if cell["value"] is None:
        return f"undefined ({cell.get('reason') or 'no reason given'})"
    number = "{:+.4f}" if signed else "{:.4f}"
    text = number.format(cell["value"])
    if cell.get("lower") is not None and cell.get("upper") is not None:
        text += f" [{number.format(cell['lower'])}, {number.format(cell['upper'])}]"
    return text + (f" ±{cell['error_bound']:.1g}" if cell.get("error_bound") else "")


def _fail(error: BaseException | str, code: int) -> int:
    """One line on stderr, credentials masked."""
    text = " ".join(str(error).split()) or type(error).__name__
    print(f"lakescore-promote: {redact(text)}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
