#!/usr/bin/env bash
# Score one day for cron: run-daily.sh CONF YYYY-MM-DD
# Exit codes (README): 0 ok, 1 failure (worth a retry), 2 bad config/input (a person must act),
# 3 quality gate failed (scores not published; a person must look at the run report).
# The model's quality once labels land, and exit 4 (retraining recommended): evaluate-daily.sh.
# SPARK_SUBMIT overrides the spark-submit run (default .venv/bin/spark-submit).
set -uo pipefail
source "$(dirname "$0")/retry.sh"
conf=$1 day=$2
submit() { "${SPARK_SUBMIT:-.venv/bin/spark-submit}" jobs/score.py --conf "$conf" --partition "ds=$day" --log-format json; }

with_retries scoring submit
case $code in
  0) ;;
  3) logger -t lakescore -p user.warning "gate failed for $conf ds=$day: scores withheld, see the run report" ;;
  *) logger -t lakescore -p user.err "run failed for $conf ds=$day with exit $code" ;;
esac
exit "$code"
