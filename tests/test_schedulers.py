"""The scheduler examples in conf/schedulers: the Airflow DAGs' exit-code mapping (loaded with a tiny
stand-in for the ``airflow`` package, which the venv does not install) and the cron wrappers (run
with a fake ``spark-submit`` and a fake ``logger`` that record what they were given)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from jobs.run.outcome import EXIT_DEGRADED, EXIT_FAILED, EXIT_GATE, EXIT_OK, EXIT_USAGE
from tests.helpers import REPO

SCHEDULERS = REPO / "conf/schedulers"
WINDOW = ["--from", "2024-06-05", "--to", "2024-07-10"]  # 35 days up to the logical date 2024-07-10


class AirflowException(Exception):
    pass


class AirflowFailException(AirflowException):
    pass


class FakeTask:
    """What ``@task`` makes of a function: called in a DAG body it is an instance, ``>>`` records the edge."""

    def __init__(self, fn, task_id: str, kind: str, graph: dict) -> None:
        self.fn, self.task_id, self.kind, self.graph = fn, task_id, kind, graph
        self.downstream: list[str] = []

    def __call__(self) -> FakeTask:
        self.graph["tasks"][self.task_id] = self
        return self

    def __rshift__(self, other: FakeTask) -> FakeTask:
        self.downstream.append(other.task_id)
        return other


def fake_airflow(monkeypatch) -> dict:
    """``airflow.decorators`` (dag, task, task.branch) and ``airflow.exceptions`` in sys.modules; the
    DAGs defined are recorded in the returned dict, by dag_id."""
    dags: dict = {}
    current: dict = {}

    def decorator(kind):
        def make(task_id, **_):
            return lambda fn: FakeTask(fn, task_id, kind, current)

        return make

    task = decorator("task")
    task.branch = decorator("branch")

    def dag(dag_id, **kwargs):
        def wrap(body):
            def build():
                current.clear()
                current["tasks"] = {}
                body()
                dags[dag_id] = {"tasks": dict(current["tasks"]), **kwargs}

            return build

        return wrap

    airflow = types.ModuleType("airflow")
    decorators = types.ModuleType("airflow.decorators")
    decorators.dag, decorators.task = dag, task
    exceptions = types.ModuleType("airflow.exceptions")
    exceptions.AirflowException, exceptions.AirflowFailException = AirflowException, AirflowFailException
    for name, module in {"airflow": airflow, "airflow.decorators": decorators, "airflow.exceptions": exceptions}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "airflow.sdk", raising=False)  # Airflow 2's import path, as the stand-in has
    return dags


@pytest.fixture
def airflow_dag(monkeypatch):
    """The DAG file loaded as a module under the stand-in: (module, dags by id, the argv run)."""
    dags = fake_airflow(monkeypatch)
    spec = importlib.util.spec_from_file_location("lakescore_airflow_dag", SCHEDULERS / "airflow_dag.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs: list[list[str]] = []
    codes: list[int] = []

    def run(argv, **kwargs):
        runs.append(list(argv))
        return subprocess.CompletedProcess(argv, codes.pop(0))

    monkeypatch.setattr(module.subprocess, "run", run)
    return module, dags, runs, codes


def test_the_dag_file_uses_the_jobs_exit_codes(airflow_dag):
    module, _, _, _ = airflow_dag
    assert (module.EXIT_OK, module.EXIT_FAILED, module.EXIT_USAGE, module.EXIT_GATE, module.EXIT_DEGRADED) == (
        EXIT_OK,
        EXIT_FAILED,
        EXIT_USAGE,
        EXIT_GATE,
        EXIT_DEGRADED,
    )


def test_the_evaluation_dag_branches_from_evaluate_to_retrain(airflow_dag):
    _, dags, _, _ = airflow_dag
    assert set(dags) == {"lakescore_churn", "lakescore_churn_evaluation"}
    assert list(dags["lakescore_churn"]["tasks"]) == ["score"]
    tasks = dags["lakescore_churn_evaluation"]["tasks"]
    assert (tasks["evaluate"].kind, tasks["evaluate"].downstream, tasks["retrain"].kind) == ("branch", ["retrain"], "task")


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0, None),
        (1, AirflowException),
        (2, AirflowFailException),
        (3, AirflowFailException),
        (4, "retrain"),
        (137, AirflowException),
    ],
)
def test_evaluate_exit_codes_map_to_success_retry_fail_or_the_retrain_branch(airflow_dag, code, outcome):
    module, dags, runs, codes = airflow_dag
    evaluate = dags["lakescore_churn_evaluation"]["tasks"]["evaluate"]
    codes.append(code)

    if isinstance(outcome, type):
        with pytest.raises(outcome) as raised:
            evaluate.fn(ds="2024-07-10")
        # a plain AirflowException is retried; AirflowFailException is not
        assert isinstance(raised.value, AirflowFailException) == (outcome is AirflowFailException)
    else:
        assert evaluate.fn(ds="2024-07-10") == outcome

    assert runs == [[module.SPARK_SUBMIT, "jobs/evaluate.py", "--conf", "conf/jobs/churn.yaml", *WINDOW, "--log-format", "json"]]


@pytest.mark.parametrize(
    ("code", "outcome"), [(0, None), (1, AirflowException), (2, AirflowFailException), (3, AirflowFailException)]
)
def test_score_exit_codes_keep_their_meaning(airflow_dag, code, outcome):
    _, dags, runs, codes = airflow_dag
    score = dags["lakescore_churn"]["tasks"]["score"]
    codes.append(code)

    if outcome is None:
        assert score.fn(ds="2024-06-01") is None
    else:
        with pytest.raises(outcome):
            score.fn(ds="2024-06-01")
    assert runs[0][1:6] == ["jobs/score.py", "--conf", "conf/jobs/churn.yaml", "--partition", "ds=2024-06-01"]


def test_retrain_runs_the_configured_command_with_the_conf_and_day(airflow_dag, monkeypatch):
    module, dags, _, _ = airflow_dag
    retrain = dags["lakescore_churn_evaluation"]["tasks"]["retrain"]
    monkeypatch.setenv("LAKESCORE_RETRAIN_COMMAND", "make retrain 'NOTE=degraded model'")
    seen = {}
    monkeypatch.setattr(
        module.subprocess, "run", lambda argv, env, **kw: seen.update(argv=argv, env=env) or types.SimpleNamespace(returncode=0)
    )

    retrain.fn(ds="2024-07-10")

    assert seen["argv"] == ["make", "retrain", "NOTE=degraded model"]
    assert (seen["env"]["LAKESCORE_CONF"], seen["env"]["LAKESCORE_DS"]) == ("conf/jobs/churn.yaml", "2024-07-10")
    monkeypatch.setattr(module.subprocess, "run", lambda argv, **kw: types.SimpleNamespace(returncode=1))
    with pytest.raises(AirflowException):
        retrain.fn(ds="2024-07-10")


def test_retrain_without_a_command_logs_what_to_do(airflow_dag, monkeypatch, caplog):
    _, dags, runs, _ = airflow_dag
    monkeypatch.delenv("LAKESCORE_RETRAIN_COMMAND", raising=False)

    dags["lakescore_churn_evaluation"]["tasks"]["retrain"].fn(ds="2024-07-10")

    assert runs == []
    assert "set LAKESCORE_RETRAIN_COMMAND" in caplog.text and "model degraded for conf/jobs/churn.yaml" in caplog.text


def fake_tools(tmp_path: Path, codes: list[int]) -> dict[str, str]:
    """A ``spark-submit`` exiting with ``codes`` in turn, recording its arguments, and a ``logger``
    recording its own: the environment the wrappers run in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "codes").write_text("\n".join(map(str, codes)) + "\n")
    (bin_dir / "spark-submit").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {tmp_path}/submitted\n'
        f"code=$(head -n 1 {tmp_path}/codes); sed -i 1d {tmp_path}/codes; exit $code\n"
    )
    (bin_dir / "logger").write_text(f'#!/usr/bin/env bash\necho "$*" >> {tmp_path}/logged\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SPARK_SUBMIT": str(bin_dir / "spark-submit")}
    return env | {"LAKESCORE_RETRY_DELAY": "0"}


def run_script(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCHEDULERS / script), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_evaluate_daily_retries_exit_1_and_logs_exit_4_as_a_retraining_warning(tmp_path):
    env = fake_tools(tmp_path, [1, 4])

    done = run_script("evaluate-daily.sh", env, "conf/jobs/churn.yaml", "2024-07-10")

    assert done.returncode == 4, done.stderr
    argv = "jobs/evaluate.py --conf conf/jobs/churn.yaml --from 2024-06-05 --to 2024-07-10 --log-format json"
    assert lines(tmp_path / "submitted") == [argv, argv]
    assert "evaluation attempt 1 failed (exit 1), retrying" in done.stderr
    assert lines(tmp_path / "logged") == [
        "-t lakescore -p user.warning model degraded: retraining recommended for conf/jobs/churn.yaml "
        "(evaluated 2024-06-05..2024-07-10): see the signals table"
    ]


def test_evaluate_daily_does_not_retry_a_usage_error_and_honours_the_window(tmp_path):
    env = fake_tools(tmp_path, [2]) | {"LAKESCORE_EVALUATE_DAYS": "7"}

    done = run_script("evaluate-daily.sh", env, "conf/jobs/churn.yaml", "2024-07-10")

    assert done.returncode == 2
    assert lines(tmp_path / "submitted") == [
        "jobs/evaluate.py --conf conf/jobs/churn.yaml --from 2024-07-03 --to 2024-07-10 --log-format json"
    ]
    assert lines(tmp_path / "logged") == [
        "-t lakescore -p user.err evaluation failed for conf/jobs/churn.yaml (2024-07-03..2024-07-10) with exit 2"
    ]


def test_evaluate_daily_gives_up_after_the_retries_and_a_success_logs_nothing(tmp_path):
    env = fake_tools(tmp_path, [1, 1, 1, 0]) | {"LAKESCORE_RETRIES": "2"}

    done = run_script("evaluate-daily.sh", env, "conf/jobs/churn.yaml", "2024-07-10")

    assert done.returncode == 1
    assert len(lines(tmp_path / "submitted")) == 3
    assert lines(tmp_path / "logged")[-1].endswith("with exit 1")

    ok = tmp_path / "ok"
    ok.mkdir()
    assert run_script("evaluate-daily.sh", fake_tools(ok, [0]), "conf/jobs/churn.yaml", "2024-07-10").returncode == 0
    assert lines(ok / "logged") == []


def test_run_daily_retries_exit_1_and_logs_a_failed_gate(tmp_path):
    env = fake_tools(tmp_path, [1, 3])

    done = run_script("run-daily.sh", env, "conf/jobs/churn.yaml", "2024-06-01")

    assert done.returncode == 3
    argv = "jobs/score.py --conf conf/jobs/churn.yaml --partition ds=2024-06-01 --log-format json"
    assert lines(tmp_path / "submitted") == [argv, argv]
    assert lines(tmp_path / "logged") == [
        "-t lakescore -p user.warning gate failed for conf/jobs/churn.yaml ds=2024-06-01: scores withheld, see the run report"
    ]


def test_the_crontab_runs_the_evaluation_after_the_scoring():
    entries = [line for line in (SCHEDULERS / "crontab").read_text().splitlines() if line[:1].isdigit()]
    assert [e.split()[:2] for e in entries] == [["15", "2"], ["15", "6"]]
    assert "run-daily.sh" in entries[0] and "conf/schedulers/evaluate-daily.sh conf/jobs/churn.yaml" in entries[1]
