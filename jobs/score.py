"""The scoring job: ``spark-submit jobs/score.py --conf conf/jobs/churn.yaml --partition ds=2024-06-01``.

Partitions are named (``--partition``, repeatable), a range (``--from``/``--to``, resumable: what
is already scored with the same model version and config from unchanged input is skipped unless
``--force``), or ``--since-last-run``. ``--dry-run`` prints the plan and writes nothing.

Exit codes: 0 success, 2 usage/config/contract error (nothing written), 3 quality gate failed,
1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys

from jobs.config import ConfigError, JobConfig, load_config
from jobs.logs import setup_logging
from jobs.model.resolve import ModelError, RegistryUnavailableError, peek_version
from jobs.run import EXIT_FAILED, EXIT_OK, EXIT_USAGE, RunResult, run
from jobs.run.challengers import summary_lines
from jobs.run.partition_spec import PartitionError
from jobs.run.selection import Audit, Selection, describe, select
from jobs.session import spark_session
from jobs.tables import StorageCredentialsError, table_exists

log = logging.getLogger("lakescore.score")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lakescore-score", description=__doc__.split("\n")[0])
    p.add_argument("--conf", required=True, help="job config YAML, e.g. conf/jobs/churn.yaml")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--partition", action="append", metavar="COL=VALUE[,COL=VALUE]", help="input partition to score (repeatable)"
    )
    which.add_argument("--from", dest="start", metavar="VALUE", help="backfill: first partition value (inclusive)")
    which.add_argument("--since-last-run", action="store_true", help="score partitions that are new or changed since last scored")
    which.add_argument("--replay", metavar="RUN_ID", help="re-run an earlier run into scratch tables and compare its scores")
    p.add_argument(
        "--replay-into", metavar="PATH", help="with --replay: where the scratch tables go (default: beside the scored table)"
    )
    p.add_argument("--to", dest="end", metavar="VALUE", help="backfill: last partition value (inclusive; default: the newest)")
    p.add_argument("--force", action="store_true", help="with --from/--to: rescore partitions already scored")
    p.add_argument("--dry-run", action="store_true", help="print the plan (partitions, files, model version) and write nothing")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    args = p.parse_args(argv)
    if args.end and not args.start:
        p.error("--to needs --from")
    return args


def summary(result: RunResult) -> str:
    r = result.record
    lines = [
        f"LakeScore run {r.run_id}: {r.status} (exit {r.exit_code})",
        f"  partitions        {', '.join(r.partitions) or '-'}",
        f"  rows in           {r.rows_in if r.rows_in is not None else '-'}",
        f"  rows scored       {r.rows_scored if r.rows_scored is not None else '-'}",
        f"  rows quarantined  {r.rows_quarantined if r.rows_quarantined is not None else '-'}",
        f"  model             {r.model_name or r.model_uri} version {r.model_version or '-'} ({r.model_uri})",
        f"  input             {r.input_table} @ Delta version {r.input_version}",
        f"  scored table      {r.scored_table} @ Delta version {r.scored_version}",
        *summary_lines(r.challengers, result.stats_rows),
    ]
    if r.error:
        lines.append(f"  error             {r.error}")
    if result.report:
        lines.append(f"  report            {result.report}")
    return "\n".join(lines)


def selection_model_version(cfg: JobConfig) -> str | None:
    try:
        return peek_version(cfg.model)
    except (ModelError, RegistryUnavailableError):  # the plan is printed; the version is unknown
        return None


def _select(cfg: JobConfig, args: argparse.Namespace) -> Selection:
    """The run's partitions, settled from Delta logs before Spark starts."""
    if not table_exists(cfg.input.path):
        raise PartitionError(f"input table {cfg.input.path} does not exist or is not a Delta table")
    ranged = bool(args.start)
    named_only = bool(args.partition) and not (ranged or args.since_last_run or args.dry_run)
    try:
        return _plan(cfg, args, ranged)
    except (PartitionError, ModelError, StorageCredentialsError, RegistryUnavailableError):
        raise
    except Exception as exc:
        if not named_only:
            raise
        # a log delta-rs cannot read (a native-only feature such as v2 checkpoints): the named
        # partitions are still scored as given, Spark's reader checks them
        log.warning("could not plan from %s's log with delta-rs (%s); scoring the named partitions", cfg.input.path, exc)
        return Selection(tuple(args.partition))


def _plan(cfg: JobConfig, args: argparse.Namespace, ranged: bool) -> Selection:
    return select(
        cfg.input.path,
        cfg.input.partition_by,
        cfg.output.scored,
        partitions=args.partition or (),
        start=args.start,
        end=args.end,
        since_last_run=args.since_last_run,
        model_version=peek_version(cfg.model) if ranged and not args.force else None,
        config_hash=cfg.config_hash,
        resume=ranged and not args.force,
        audit=Audit(cfg.output.quarantine, cfg.output.stats, cfg.output.runs),
        config_sections=cfg.config_hashes,
    )


def replay(cfg: JobConfig, run_id: str, into: str | None) -> int:
    """Exit 0 when the replay reproduces the published scores, 1 when it does not, 2 when it cannot run."""
    from jobs.run import replay as rp

    try:
        original = rp.find_run(cfg.output.runs, run_id)
        scratch = into or f"{cfg.output.scored}__replay_{run_id}"
        rcfg = rp.replay_config(cfg, original, scratch)
    except rp.ReplayError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    log.info(
        "replaying run %s: %s at input version %d with %s into %s",
        run_id,
        list(original.partitions),
        original.input_version,
        original.model_resolved_uri,
        scratch,
    )
    with spark_session(cfg.spark) as spark:
        result = run(spark, rcfg, partitions=list(original.partitions), input_version=original.input_version)
        print(summary(result), flush=True)
        if result.exit_code != EXIT_OK:
            return result.exit_code
        join_on = list(dict.fromkeys([*cfg.keys, *cfg.input.partition_by]))
        comparison = rp.compare(
            spark, result.record.engine or "embedded", original, cfg.output.scored, rcfg.output.scored, join_on
        )
    print(comparison.describe(run_id, 1e-9), flush=True)
    return EXIT_OK if comparison.matches else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_format)
    try:
        cfg = load_config(args.conf, overrides=args.set)  # fails before Spark starts
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if args.replay:
        return replay(cfg, args.replay, args.replay_into)
    # the same plan whether or not it is a dry run: a partition the input lacks is refused by both
    try:
        selection = _select(cfg, args)
    except (PartitionError, ModelError, StorageCredentialsError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except RegistryUnavailableError as exc:  # the registry may be back soon: the scheduler retries
        log.error("%s", exc)
        return EXIT_FAILED
    for label, why in selection.skipped:
        log.info("skipping %s: %s", label, why)
    if args.dry_run:
        model = cfg.model.uri + (f" (version {selection_model_version(cfg)})" if cfg.model.uri.startswith("models:/") else "")
        print(describe(selection, model))
        return EXIT_OK
    if not selection.partitions:
        print(f"nothing to score: {len(selection.skipped)} partition(s) already up to date", flush=True)
        return EXIT_OK
    partitions = list(selection.partitions)
    with spark_session(cfg.spark) as spark:
        result = run(spark, cfg, partitions=partitions)
    print(summary(result), flush=True)
    print(
        f"  tables            scored={cfg.output.scored}\n"
        f"                    quarantine={cfg.output.quarantine}\n"
        f"                    stats={cfg.output.stats}\n"
        f"                    runs={cfg.output.runs}"
        + (f"\n                    shadow={cfg.output.shadow}" if cfg.model.challengers else ""),
        flush=True,
    )
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
