#!/usr/bin/env bash
# Evaluate the scored partitions against the labels that have landed, for cron: evaluate-daily.sh CONF [YYYY-MM-DD]
# Evaluates every partition from LAKESCORE_EVALUATE_DAYS (default 35: the 30-day label horizon and
# some slack) days before the day (default yesterday, UTC) to the day, so each partition is evaluated
# again as its labels arrive, until it is final; a rerun replaces that partition's evaluation.
# Exit codes (README): 0 ok, 1 failure (retried here), 2 bad config/input (a person must act),
# 4 model degraded: retraining recommended (logged as a warning; the signal is in the signals table).
# SPARK_SUBMIT overrides the spark-submit run (default .venv/bin/spark-submit).
set -uo pipefail
source "$(dirname "$0")/retry.sh"
conf=$1 day=${2:-$(date -u -d yesterday +%F)}
start=$(date -u -d "$day - ${LAKESCORE_EVALUATE_DAYS:-35} days" +%F) || exit 2
submit() {
  "${SPARK_SUBMIT:-.venv/bin/spark-submit}" jobs/evaluate.py --conf "$conf" --from "$start" --to "$day" --log-format json
}

with_retries evaluation submit
case $code in
  0) ;;
  4) logger -t lakescore -p user.warning "model degraded: retraining recommended for $conf (evaluated $start..$day): see the signals table" ;;
  *) logger -t lakescore -p user.err "evaluation failed for $conf ($start..$day) with exit $code" ;;
esac
exit "$code"
