#!/usr/bin/env bash
# Score one day for cron: run-daily.sh CONF YYYY-MM-DD
# Exit codes (README): 0 ok, 1 failure (worth a retry), 2 bad config/input (a person must act),
# 3 quality gate failed (scores not published; a person must look at the run report).
set -uo pipefail
conf=$1 day=$2 retries=${LAKESCORE_RETRIES:-2}
submit() { .venv/bin/spark-submit jobs/score.py --conf "$conf" --partition "ds=$day" --log-format json; }

for attempt in $(seq 0 "$retries"); do
  submit; code=$?
  [ "$code" -ne 1 ] && break        # only a plain failure is worth another try
  echo "lakescore: attempt $((attempt + 1)) failed (exit 1), retrying in 60s" >&2
  sleep 60
done
case $code in
  0) ;;
  3) logger -t lakescore -p user.warning "gate failed for $conf ds=$day: scores withheld, see the run report" ;;
  *) logger -t lakescore -p user.err "run failed for $conf ds=$day with exit $code" ;;
esac
exit "$code"
