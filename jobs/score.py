"""The scoring job: ``spark-submit jobs/score.py --conf conf/jobs/churn.yaml --partition ds=2024-06-01``.

Exit codes: 0 success, 2 usage/config/contract error (nothing written), 3 quality gate failed,
1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys

from jobs.config import ConfigError, load_config
from jobs.logs import setup_logging
from jobs.runner import EXIT_USAGE, RunResult, run
from jobs.session import spark_session

log = logging.getLogger("lakescore.score")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lakescore-score", description=__doc__.split("\n")[0])
    p.add_argument("--conf", required=True, help="job config YAML, e.g. conf/jobs/churn.yaml")
    p.add_argument(
        "--partition", action="append", required=True, metavar="COL=VALUE", help="input partition to score (repeatable)"
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    return p.parse_args(argv)


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
    ]
    if r.error:
        lines.append(f"  error             {r.error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_format)
    try:
        cfg = load_config(args.conf, overrides=args.set)  # fails before Spark starts
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    with spark_session(cfg.spark) as spark:
        result = run(spark, cfg, partitions=args.partition)
    print(summary(result), flush=True)
    print(
        f"  tables            scored={cfg.output.scored}\n"
        f"                    quarantine={cfg.output.quarantine}\n"
        f"                    stats={cfg.output.stats}\n"
        f"                    runs={cfg.output.runs}",
        flush=True,
    )
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
