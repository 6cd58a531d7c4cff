"""Airflow DAGs for LakeScore: ``lakescore_churn`` scores one partition per logical date;
``lakescore_churn_evaluation`` evaluates the scored partitions against the labels that have landed
and branches to a ``retrain`` task when the model degraded.

Copy it into the DAGs folder of an Airflow 2.7+ (or 3.x) installation that can run ``spark-submit``.
Both rely on the jobs' exit codes (README):

- 0 success;
- 1 a failure worth another try: Airflow retries it;
- 2 bad config or input, and 3 quality gate failed (scores not published): fail at once, without
  retries, because running the same input again gives the same answer; a person must act;
- 4 (evaluation only) model degraded, retraining recommended: the ``evaluate`` task succeeds and
  the DAG follows its ``retrain`` task, which runs ``LAKESCORE_RETRAIN_COMMAND`` (split like a shell
  line, run in ``LAKESCORE_HOME`` with ``LAKESCORE_CONF`` and ``LAKESCORE_DS`` set) or, when that is
  unset, logs what to do. On 0 the branch follows nothing and ``retrain`` is skipped.

Scoring backfills are Airflow's own (``airflow dags backfill -s 2024-06-01 -e 2024-06-07
lakescore_churn``): each logical date is one run that replaces its partition, so re-running a date
is safe. The evaluation runs daily after the labels land and re-evaluates every partition from
``LAKESCORE_EVALUATE_DAYS`` (default 35: the 30-day label horizon and some slack) days before its
logical date to that date, so a partition is evaluated again as its labels arrive, until it is final;
each rerun replaces that partition's evaluation.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shlex
import subprocess

from airflow.exceptions import AirflowException, AirflowFailException

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.7+
    from airflow.decorators import dag, task

LAKESCORE_HOME = os.environ.get("LAKESCORE_HOME", "/opt/lakescore")
SPARK_SUBMIT = os.environ.get("SPARK_SUBMIT", "spark-submit")
CONF = "conf/jobs/churn.yaml"
EVALUATE_DAYS = int(os.environ.get("LAKESCORE_EVALUATE_DAYS", "35"))
# the jobs' exit codes (jobs.run.outcome; this file imports no LakeScore code: it runs in Airflow's Python)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_GATE, EXIT_DEGRADED = 0, 1, 2, 3, 4
RETRAIN_TASK = "retrain"
log = logging.getLogger("lakescore.airflow")


def check_exit(code: int, what: str) -> None:
    """Raise what Airflow makes of a job's failing exit code: 2 and 3 fail without retries, any
    other non-zero code is retried. 0 (and 4, handled by the caller) return."""
    if code in (EXIT_OK, EXIT_DEGRADED):
        return
    if code == EXIT_GATE:
        raise AirflowFailException(f"LakeScore quality gate failed for {what}: scores withheld; read the run report")
    if code == EXIT_USAGE:
        raise AirflowFailException(f"LakeScore refused {what}: configuration or input contract error (see the log)")
    raise AirflowException(f"LakeScore failed for {what} with exit {code}; Airflow will retry")


def run_partition(conf: str, ds: str) -> None:
    """Score ``ds=<ds>`` and map the exit code onto Airflow's retry semantics."""
    argv = [SPARK_SUBMIT, "jobs/score.py", "--conf", conf, "--partition", f"ds={ds}", "--log-format", "json"]
    code = subprocess.run(argv, cwd=LAKESCORE_HOME, check=False).returncode
    if code == EXIT_DEGRADED:  # the scoring job never exits 4: an unknown code, retried
        raise AirflowException(f"LakeScore scoring of ds={ds} exited {code}, which it never should; Airflow will retry")
    check_exit(code, f"ds={ds}")


def evaluation_window(ds: str, days: int = EVALUATE_DAYS) -> tuple[str, str]:
    """The first and last partition day a run for logical date ``ds`` evaluates."""
    end = dt.date.fromisoformat(ds)
    return (end - dt.timedelta(days=days)).isoformat(), end.isoformat()


def evaluate_partitions(conf: str, ds: str) -> str | None:
    """Evaluate the window ending at ``ds``; the task to follow: ``retrain`` on exit 4, none on 0
    (the downstream task is skipped); raise on the others as ``check_exit`` does."""
    start, end = evaluation_window(ds)
    argv = [SPARK_SUBMIT, "jobs/evaluate.py", "--conf", conf, "--from", start, "--to", end, "--log-format", "json"]
    code = subprocess.run(argv, cwd=LAKESCORE_HOME, check=False).returncode
    what = f"the evaluation of {start}..{end}"
    check_exit(code, what)
    if code == EXIT_DEGRADED:
        log.warning("model degraded: retraining recommended (%s, %s); see the signals table", conf, what)
        return RETRAIN_TASK
    return None


def retrain(conf: str, ds: str) -> None:
    """Run ``LAKESCORE_RETRAIN_COMMAND`` (a failure is retried), or say what to do when it is unset."""
    command = os.environ.get("LAKESCORE_RETRAIN_COMMAND")
    if not command:
        log.warning(
            "model degraded for %s (evaluation of %s): retrain the model, register it as @challenger and "
            "promote it once shadow-scored (lakescore-promote); set LAKESCORE_RETRAIN_COMMAND to do it here",
            conf,
            ds,
        )
        return
    env = {**os.environ, "LAKESCORE_CONF": conf, "LAKESCORE_DS": ds}
    code = subprocess.run(shlex.split(command), cwd=LAKESCORE_HOME, env=env, check=False).returncode
    if code != 0:
        raise AirflowException(f"the retraining command exited {code}; Airflow will retry")


# one run per logical date, retries for exit 1 (the others fail without: see check_exit)
DAG_ARGS = {
    "start_date": dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": {"retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    "tags": ["lakescore"],
}


@dag(
    dag_id="lakescore_churn",
    schedule="15 2 * * *",
    **DAG_ARGS,
)
def lakescore_churn():
    @task(task_id="score")
    def score(ds: str | None = None) -> None:
        run_partition(CONF, ds)

    score()


@dag(
    dag_id="lakescore_churn_evaluation",
    schedule="15 6 * * *",  # after the scoring (02:15) and after the labels land
    **DAG_ARGS,
)
def lakescore_churn_evaluation():
    @task.branch(task_id="evaluate")
    def evaluate(ds: str | None = None) -> str | None:
        return evaluate_partitions(CONF, ds)

    @task(task_id=RETRAIN_TASK)
    def retrain_model(ds: str | None = None) -> None:
        retrain(CONF, ds)

    evaluate() >> retrain_model()


lakescore_churn()
lakescore_churn_evaluation()
