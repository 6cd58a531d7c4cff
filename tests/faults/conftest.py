"""Fixtures of the fault-injection suite: a job whose partition ds=2024-06-01 was published once
(the consistent state a fault must not break), copied afresh for each case."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import D1, REPO, job_config, require_native, write_demo_input

ROWS = 300


@pytest.fixture(scope="session")
def published(tmp_path_factory, registry, spark):
    """{engine: folder} of a job that scored ds=2024-06-01 once, per engine."""
    from jobs.score import main

    out = {}
    for engine in ("embedded", "native"):
        if engine == "native":
            require_native(spark)
        root = tmp_path_factory.mktemp(f"published-{engine}")
        write_demo_input(root / "customers", days=2, rows_per_day=ROWS)
        conf = job_config(root, registry, engine=engine)
        assert main(["--conf", conf, "--partition", f"ds={D1.isoformat()}"]) == 0
        out[engine] = root
    return out


@pytest.fixture
def job(published, tmp_path, registry, request):
    """A fresh copy of the published job for ``request.param`` (the engine): (folder, config path)."""
    engine = request.param
    root = tmp_path / "job"
    shutil.copytree(published[engine], root)
    return root, job_config(root, registry, engine=engine)


def start(conf: str, *args: str, env: dict[str, str] | None = None, submit: bool = False) -> subprocess.Popen:
    """The job as its own process group (``python -m jobs.score``, or a real ``spark-submit``), as a
    scheduler starts it; its log goes to a file beside the config."""
    environment = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable, **(env or {})}
    if submit:
        jars = subprocess.run(
            [sys.executable, "-m", "jobs.tables.jars"], capture_output=True, text=True, check=True
        ).stdout.split()
        command = [str(Path(sys.executable).parent / "spark-submit"), *jars, "jobs/score.py"]
    else:
        command = [sys.executable, "-m", "jobs.score"]
    log = Path(conf).with_suffix(f".{time.monotonic_ns()}.log")
    with open(log, "w") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [*command, "--conf", conf, *args],
            cwd=REPO,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process.log = log  # type: ignore[attr-defined]
    return process


def output(process: subprocess.Popen) -> str:
    """What the job logged so far."""
    return process.log.read_text()  # type: ignore[attr-defined]


def kill(process: subprocess.Popen) -> None:
    """``kill -9`` of the job's whole process group."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
