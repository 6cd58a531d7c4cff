# Sourced by run-daily.sh and evaluate-daily.sh: with_retries WHAT COMMAND... runs COMMAND, again
# after LAKESCORE_RETRY_DELAY seconds (default 60) while it exits 1, at most LAKESCORE_RETRIES
# (default 2) more times: only a plain failure is worth another try. Sets $code to the last exit.
with_retries() {
  local what=$1 retries=${LAKESCORE_RETRIES:-2} delay=${LAKESCORE_RETRY_DELAY:-60} attempt
  shift
  for attempt in $(seq 0 "$retries"); do
    "$@"; code=$?
    [ "$code" -ne 1 ] && break
    [ "$attempt" -lt "$retries" ] || break
    echo "lakescore: $what attempt $((attempt + 1)) failed (exit 1), retrying in ${delay}s" >&2
    sleep "$delay"
  done
}
