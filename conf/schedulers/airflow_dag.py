"""An Airflow DAG for LakeScore: one run per logical date, the date passed as the partition.

Copy it into the DAGs folder of an Airflow 2.7+ installation that can run ``spark-submit``.
It relies on the job's exit codes: 1 is retried by Airflow; 2 (bad config or input) and 3
(quality gate failed, scores not published) fail at once without retries, because running the
same input again gives the same answer; a person must act. Backfills are Airflow's own
(``airflow dags backfill -s 2024-06-01 -e 2024-06-07 lakescore_churn``): each logical date is one
run that replaces its partition, so re-running a date is safe.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess

from airflow.decorators import dag, task
from airflow.exceptions import AirflowException, AirflowFailException

LAKESCORE_HOME = os.environ.get("LAKESCORE_HOME", "/opt/lakescore")
SPARK_SUBMIT = os.environ.get("SPARK_SUBMIT", "spark-submit")


def run_partition(conf: str, ds: str) -> None:
    """Run the job for ``ds=<ds>`` and map its exit code onto Airflow's retry semantics."""
    argv = [SPARK_SUBMIT, "jobs/score.py", "--conf", conf, "--partition", f"ds={ds}", "--log-format", "json"]
    code = subprocess.run(argv, cwd=LAKESCORE_HOME, check=False).returncode
    if code == 0:
        return
    if code == 3:
        raise AirflowFailException(f"LakeScore quality gate failed for ds={ds}: scores withheld; read the run report")
    if code == 2:
        raise AirflowFailException(f"LakeScore refused ds={ds}: configuration or input contract error (see the log)")
    raise AirflowException(f"LakeScore failed for ds={ds} with exit {code}; Airflow will retry")


@dag(
    dag_id="lakescore_churn",
    schedule="15 2 * * *",
    start_date=dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    tags=["lakescore"],
)
def lakescore_churn():
    @task(task_id="score")
    def score(ds: str | None = None) -> None:
        run_partition("conf/jobs/churn.yaml", ds)

    score()


lakescore_churn()
