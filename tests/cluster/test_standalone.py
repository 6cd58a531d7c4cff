"""The packaged job on a real Spark standalone cluster: a master and a worker on 127.0.0.1, the
executors in their own JVMs running the packed Python environment. ``make cluster-test`` runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.helpers import ledger

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
pytestmark = pytest.mark.cluster


def _free_ports(n: int) -> list[int]:
    """n distinct free ports: every socket stays bound until all are chosen."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@contextmanager
def _started(args: list[str], log: Path):
    """Run a Spark daemon in the foreground as our child; stop it by pid, whatever happens."""
    env = {**os.environ, "SPARK_HOME": str(_spark_home()), "SPARK_NO_DAEMONIZE": "1", "SPARK_LOCAL_IP": "127.0.0.1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for(what: str, check, timeout: float = 90.0, logs: tuple[Path, ...] = ()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(1)
    tails = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


def _alive_workers(ui_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as resp:
        return sum(1 for w in json.load(resp)["workers"] if w["state"] == "ALIVE")


@pytest.mark.parametrize("engine", ["native", "embedded"])
def test_packaged_job_scores_on_a_standalone_cluster(tmp_path, engine):
    wheel = next(DIST.glob("lakescore-*.whl"), None)
    archive = DIST / "lakescore-env.tar.gz"
    if wheel is None or not archive.exists():
        pytest.fail("run `make package` first (make cluster-test does)")
    python = sys.executable
    from jobs.tables.jars import submit_args

    # native: delta-spark's jars go to the executors with --jars, as on any cluster without them
    delta = submit_args(cluster=True) if engine == "native" else []
    if engine == "native" and not delta:
        pytest.fail("delta-spark's jars are missing: run make setup")

    # demo input (2 days) and model in a throwaway registry, written as make run writes them
    home = tmp_path / "home"
    subprocess.run(
        [python, "-m", "jobs.demo", "--home", str(home), "--days", "2", "--rows-per-day", "3000"], cwd=REPO, check=True
    )
    conf = yaml.safe_load((REPO / "conf/jobs/churn.yaml").read_text())
    tables = home / "tables"
    conf["engine"] = engine
    conf["input"]["path"] = str(tables / "customers")
    conf["model"]["tracking_uri"] = f"sqlite:///{home / 'mlflow.db'}"
    conf["output"].update({k: str(tables / f"cluster_{k}") for k in ("scored", "quarantine", "stats", "runs")})
    conf.pop("spark", None)
    conf_file = tmp_path / "cluster.yaml"
    conf_file.write_text(yaml.safe_dump(conf))

    spark_class = str(_spark_home() / "bin" / "spark-class")
    port, ui, worker_ui = _free_ports(3)
    master_url = f"spark://127.0.0.1:{port}"
    work = tmp_path / "work"
    master_log, worker_log = tmp_path / "master.log", tmp_path / "worker.log"
    master_args = [
        spark_class,
        "org.apache.spark.deploy.master.Master",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--webui-port",
        str(ui),
    ]
    worker_args = [
        spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
        "--cores", "2", "--memory", "2g", "--webui-port", str(worker_ui), "--work-dir", str(work),
    ]  # fmt: skip
    with _started(master_args, master_log), _started(worker_args, worker_log) as worker:
        _wait_for("the worker to register with the master", lambda: _alive_workers(ui) == 1, logs=(master_log, worker_log))
        # Client mode: the driver runs here in the repo's venv, but Spark starts the Python workers
        # that plan and commit the embedded engine's reads and writes on the driver with the same
        # PYSPARK_PYTHON as the executors, so ./environment must exist here too.
        import tarfile

        with tarfile.open(archive) as tar:
            tar.extractall(tmp_path / "environment", filter="tar")
        env = {
            **os.environ,
            "PYSPARK_DRIVER_PYTHON": python,
            "PYSPARK_PYTHON": "./environment/bin/python",  # executors: the unpacked archive
            "SPARK_HOME": str(_spark_home()),
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
        env.pop("PYTHONPATH", None)
        submit = subprocess.run(
            [
                str(_spark_home() / "bin" / "spark-submit"),
                "--master",
                master_url,
                "--deploy-mode",
                "client",
                "--archives",
                f"{archive}#environment",
                "--py-files",
                str(wheel),
                "--conf",
                "spark.executor.memory=1g",
                *delta,
                str(REPO / "jobs" / "score.py"),
                "--conf",
                str(conf_file),
                "--partition",
                "ds=2024-06-02",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert worker.poll() is None, "the worker died during the run"
    assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-5000:]

    # the executors ran in the worker's own JVMs, with the archive's Python
    executor_logs = list(work.glob("app-*/*/stderr"))
    assert executor_logs, f"no executor ran under {work}"
    assert list(work.glob("app-*/*/environment/bin/python")), "the executors did not unpack the environment archive"

    from deltalake import DeltaTable

    from jobs.demo.data import input_table

    expected = input_table(2, 3000, __import__("datetime").date(2024, 6, 1)).to_pandas()
    expected = expected[expected["ds"].astype(str) == "2024-06-02"]
    scored = DeltaTable(conf["output"]["scored"]).to_pandas()
    quarantined = DeltaTable(conf["output"]["quarantine"]).to_pandas()
    runs = ledger(conf["output"]["runs"])  # the run's final row (its running row is superseded)
    assert len(scored) + len(quarantined) == len(expected)
    assert set(scored["customer_id"]) | set(quarantined["customer_id"].dropna()) <= set(expected["customer_id"].dropna())
    assert scored["probability"].between(0, 1).all() and set(scored["model_version"]) == {"1"}
    assert list(runs["status"]) == ["succeeded"] and runs["rows_scored"].iloc[0] == len(scored)
    assert list(runs["engine"]) == [engine]
    # the demo's challenger, shipped to the executors as a second archive, scored the same rows
    shadow = DeltaTable(f"{conf['output']['scored']}_shadow").to_pandas()
    assert sorted(shadow["customer_id"]) == sorted(scored["customer_id"]) and set(shadow["model_version"]) == {"2"}
    assert [c["status"] for c in runs["challengers"].iloc[0]] == ["scored"]
