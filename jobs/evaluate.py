"""The evaluation job: ``spark-submit jobs/evaluate.py --conf conf/jobs/churn.yaml --from 2024-06-01``.

Joins the labels table (config section ``evaluation``) to the scored and shadow tables' partitions
and writes each model version's label coverage, counts, sufficient statistics and metrics with
their intervals, ``provisional`` or ``final``, to the evaluation table (a partition's rows replaced
when it is evaluated again) and its history (appended). Run it daily, after the labels land.

Exit codes: 0 success, 4 model degraded: retraining recommended (``evaluation.degradation``'s rule
holds for the serving version; the signal is in the signals table and tagged on the version), 2
usage/config error (no ``evaluation`` section, a missing table or column, a bad partition; nothing
written), 1 anything else (retry: a rerun replaces what this one wrote and finds the same signal).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from pyspark.sql import SparkSession

from jobs.config import ConfigError, JobConfig, load_config
from jobs.logs import setup_logging
from jobs.quality.evaluation import CHALLENGER, ModelEvaluation, partition_date
from jobs.quality.metrics import MetricValue
from jobs.quality.windows import WindowError, WindowModel, WindowResult, parse_window, roll_up
from jobs.run.evaluation import EvaluationError, EvaluationPlan, EvaluationResult, evaluate, plan_evaluation
from jobs.run.outcome import EXIT_FAILED, EXIT_OK, EXIT_USAGE, describe_error
from jobs.run.partition_spec import PartitionError, partition_label
from jobs.session import spark_session
from jobs.tables import StorageCredentialsError, resolve_engine

log = logging.getLogger("lakescore.evaluate")


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lakescore-evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--conf", required=True, help="job config YAML with an evaluation section, e.g. conf/jobs/churn.yaml")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--partition", action="append", metavar="COL=VALUE[,COL=VALUE]", help="scored partition to evaluate (repeatable)"
    )
    which.add_argument("--from", dest="start", metavar="VALUE", help="first scored partition to evaluate (inclusive)")
    p.add_argument("--to", dest="end", metavar="VALUE", help="last partition (inclusive; default: the newest)")
    p.add_argument(
        "--as-of",
        type=_day,
        default=dt.datetime.now(dt.UTC).date(),
        metavar="DATE",
        help="the day label maturity is judged on: a partition is final once it is evaluation.horizon_days "
        "older and evaluation.min_labelled of its rows are labelled (default: today, UTC)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument(
        "--window",
        metavar="Nd",
        help="also roll up the N days ending at the newest partition evaluated (e.g. 7d) from the evaluation "
        "table's statistics into evaluation.windows",
    )
    args = p.parse_args(argv)
    if args.end and not args.start:
        p.error("--to needs --from")
    try:
        args.window_days = parse_window(args.window) if args.window else None
    except WindowError as exc:
        p.error(str(exc))
    return args


def _metric(m: MetricValue | None, digits: int = 3) -> str:
    if m is None or m.value is None:
        return "undefined" + (f" ({m.reason})" if m is not None and m.reason else "")
    text = f"{m.value:.{digits}f}"
    if m.lower is not None and m.upper is not None:
        text += f" [{m.lower:.{digits}f}, {m.upper:.{digits}f}]"
    return text + (f" ±{m.error_bound:.1g}" if m.error_bound else "")


def _headline(m: ModelEvaluation | WindowModel) -> list[str]:
    """A classifier's accuracy and ROC AUC, or a regressor's MAE and RMSE, with their intervals."""
    shown = ("accuracy", "roc_auc") if m.metric("accuracy") else ("mae", "rmse")
    return [f"{name} {_metric(m.metric(name))}" for name in shown]


def _model_line(m: ModelEvaluation) -> str:
    coverage = "-" if m.coverage is None else f"{m.coverage:.1%}"
    head = (
        f"    {m.role:<10} {m.model_name or '-'} version {m.model_version or '-'}: labelled {m.labelled:,.0f} of "
        f"{m.evaluated:,.0f} ({coverage}), {m.maturity}" + (f" ({m.why})" if m.why else "")
    )
    said = _headline(m)
    if m.role == CHALLENGER and m.paired:
        said += [f"mcnemar p {_metric(m.metric('mcnemar_p_value'), 4)}", f"Δauc {_metric(m.metric('delta_roc_auc'), 4)}"]
    said.append(f"labels never scored {m.counts['labels_unscored']:,.0f}, keys scored twice {m.counts['scored_duplicates']:,.0f}")
    return head + "\n      " + "; ".join(said)


def summary(cfg: JobConfig, plan: EvaluationPlan, result: EvaluationResult) -> str:
    e = cfg.evaluation
    status = {0: "succeeded", 1: "failed", 2: "rejected", 4: "model degraded: retraining recommended"}.get(
        result.exit_code, "failed"
    )
    lines = [
        f"LakeScore evaluation {result.run_id}: {status} (exit {result.exit_code})",
        f"  labels            {e.labels} @ Delta version {plan.labels_version}",
        f"  as of             {plan.as_of} (final: {e.horizon_days} days old and {e.min_labelled:.0%} labelled)",
        f"  evaluation table  {e.output} (history {e.history})",
    ]
    for p in result.partitions:
        c = p.counts
        lines.append(
            f"  {p.partition}: {c.get('label_rows', 0):,.0f} label rows, {c.get('labels_duplicates', 0):,.0f} repeated, "
            f"{c.get('labels_conflicting', 0):,.0f} conflicting (evaluation table version {p.version})"
        )
        lines += [_model_line(m) for m in p.models]
    if e.degradation.enabled and result.judged:
        name, version = result.judged
        rule = e.degradation
        lines.append(f"  retraining rule   {name} version {version}: {rule.k} of the last {rule.n} partitions")
        if not result.signals:
            lines.append("    no degradation")
        for r in result.signals:
            lines.append(
                f"    SIGNAL {r.signal.kind} {r.signal.signal_id}{'' if r.new else ' (already raised)'}: {r.signal.describe()}"
            )
        if result.signals:
            lines.append(f"    signals table     {e.signals}; registry tag lakescore.retraining=recommended")
    if result.report:
        lines.append(f"  report            {result.report}")
    lines += [f"  error             {error}" for error in result.errors]
    return "\n".join(lines)


def _window_summary(w: WindowResult) -> str:
    lines = [f"  window {w.window}     {w.start} to {w.end}, {len(w.partitions)} partitions (windows table version {w.version})"]
    for m in w.models:
        coverage = "-" if m.coverage is None else f"{m.coverage:.1%}"
        lines.append(
            f"    {m.role:<10} {m.model_name or '-'} version {m.model_version or '-'}: {m.partitions} partitions, "
            f"labelled {coverage}, {m.maturity}; " + "; ".join(_headline(m))
        )
    return "\n".join(lines)


def window(spark: SparkSession, cfg: JobConfig, plan: EvaluationPlan, result: EvaluationResult, days: int) -> str:
    """Roll up the ``days`` ending at the newest partition this run evaluated; its summary, or the
    error (then in ``result.errors`` too, and the run fails: exit 1 unless it already did worse)."""
    done = {p.partition for p in result.partitions}
    ends = [d for s in plan.partitions if partition_label(s) in done and (d := partition_date(s)) is not None]
    try:
        if not ends:
            raise WindowError(f"window {days}d: no partition with a date was evaluated")
        engine = resolve_engine(spark, cfg.engine)
        return _window_summary(roll_up(spark, cfg, engine, days, max(ends), result.run_id, dt.datetime.now(dt.UTC)))
    except Exception as exc:  # the partitions are written: the roll-up is the next run's to redo
        log.error("window %dd failed", days, exc_info=exc)
        result.errors.append(f"window {days}d: {describe_error(exc)}")
        if result.exit_code == EXIT_OK:  # a degraded model's exit 4 still says so
            result.exit_code = EXIT_FAILED
        return f"  window {days}d     failed: {describe_error(exc)}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_format)
    try:
        cfg = load_config(args.conf, overrides=args.set)  # fails before Spark starts
        plan = plan_evaluation(cfg, args.partition or (), args.start, args.end, args.as_of)
    except (ConfigError, EvaluationError, PartitionError, StorageCredentialsError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except Exception:  # a Delta log that cannot be read, storage that does not answer: retry later
        log.exception("could not plan the evaluation")
        return EXIT_FAILED
    with spark_session(cfg.spark) as spark:
        result = evaluate(spark, cfg, plan)
        if args.window_days:
            print(window(spark, cfg, plan, result, args.window_days), flush=True)
    print(summary(cfg, plan, result), flush=True)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
