"""The whole job's cost (issue 16): ``spark-submit jobs/score.py`` against the job a data engineer
would write by hand (``bench/bare_job.py``: the same partition, the same five preprocessing steps
in Spark SQL, the rows the model cannot take dropped, ``spark_udf``, Parquet), each a whole
``spark-submit`` process, alternated, on the same one-partition input.

Per case: wall seconds; CPU seconds of the whole process tree (spark-submit, the JVM, the Python
daemon and workers: each process's user + system time, sampled every 0.1 s from /proc while it
lives, so a worker that exits is counted up to its last sample); the peak resident memory of the
driver JVM and of the largest Python process; the Spark jobs and stages it ran and its passes over
the input (records its tasks read, from the Spark event log, over the input's rows); and for
LakeScore its own step timings (the runs ledger's ``timings``).

``python -m bench.job --rows 20000 1000000 [--rounds 3]``; ``make bench-scale`` adds 10M rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2024, 6, 1)
MODEL = "models:/lakescore_churn@champion"
TARGETS = {20_000: 1.5, 1_000_000: 1.25}  # issue 16: the job's CPU at most this many times the bare job's


@dataclass
class Run:
    wall: float
    cpu: float
    driver_rss: float  # GiB
    python_rss: float  # GiB, the largest Python process (a worker, or the driver's Python)
    jobs: int = 0
    stages: int = 0
    passes: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def _sample(root: psutil.Process, cpu: dict[int, float], rss: dict[str, float], done: threading.Event) -> None:
    while not done.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                times, mem, name = p.cpu_times(), p.memory_info().rss / 2**30, p.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            cpu[p.pid] = times.user + times.system
            kind = "java" if name == "java" else "python" if name.startswith("python") else "other"
            rss[kind] = max(rss.get(kind, 0.0), mem)
        done.wait(0.1)


def measure(argv: list[str], env: dict[str, str], log: Path) -> Run:
    """Run ``argv`` to its end, sampling its process tree; a failure stops the benchmark."""
    cpu: dict[int, float] = {}
    rss: dict[str, float] = {}
    done = threading.Event()
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = threading.Thread(target=_sample, args=(psutil.Process(proc.pid), cpu, rss, done), daemon=True)
        sampler.start()
        code = proc.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"{argv[2:4]} exited {code}; its log: {log}")
    return Run(wall, sum(cpu.values()), rss.get("java", 0.0), rss.get("python", 0.0))


def event_counts(folder: Path, rows: int) -> tuple[int, int, float]:
    """(jobs, stages, passes over the input) of the one application in the event-log folder."""
    import shutil

    logs = [p for p in folder.rglob("*") if p.is_file()]  # Spark 4: a folder eventlog_v2_<app> of parts
    jobs = stages = 0
    read = 0
    for line in (line for log in logs for line in log.read_text().splitlines()):
        event = json.loads(line)
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            jobs += 1
        elif kind == "SparkListenerStageCompleted":
            stages += 1
        elif kind == "SparkListenerTaskEnd":
            read += (event.get("Task Metrics") or {}).get("Input Metrics", {}).get("Records Read", 0)
    for entry in folder.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return jobs, stages, read / rows


def write_input(path: Path, rows: int) -> None:
    from deltalake import write_deltalake

    from jobs.demo.data import input_table

    write_deltalake(str(path), input_table(1, rows, DAY), mode="overwrite", partition_by=["ds"])


def _submit(events: Path) -> list[str]:
    from jobs.tables.jars import submit_args

    log4j = f"-Dlog4j2.configurationFile=file:{REPO}/conf/spark/log4j2.properties"
    return [
        str(REPO / ".venv/bin/spark-submit"),
        "--driver-java-options",
        log4j,
        *submit_args(),
        "--conf",
        "spark.eventLog.enabled=true",
        "--conf",
        f"spark.eventLog.dir=file://{events}",
    ]


def lakescore_argv(events: Path, home: Path, tracking: str) -> list[str]:
    sets = {
        "input.path": home / "customers",
        "output.scored": home / "scored",
        "output.quarantine": home / "quarantine",
        "output.stats": home / "stats",
        "output.runs": home / "runs",
        "model.tracking_uri": tracking,
        "model.challengers": "[]",
    }
    overrides = [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]
    conf = ["--conf", "conf/jobs/churn.yaml", "--partition", f"ds={DAY.isoformat()}", *overrides]
    return [*_submit(events), "jobs/score.py", *conf]


def bare_argv(events: Path, home: Path, tracking: str) -> list[str]:
    job = ["--input", str(home / "customers"), "--partition", DAY.isoformat(), "--model", MODEL]
    return [*_submit(events), "bench/bare_job.py", *job, "--tracking-uri", tracking, "--output", str(home / "bare")]


def ledger_steps(runs: Path) -> dict[str, float]:
    from deltalake import DeltaTable

    ledger = DeltaTable(str(runs)).to_pandas()
    last = ledger[ledger["status"] == "succeeded"].sort_values("finished_at").iloc[-1]
    return dict(last["timings"])


def bench(rows: int, rounds: int, tracking: str) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {"lakescore": [], "bare job": []}
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    with tempfile.TemporaryDirectory(prefix="lakescore-bench-job-") as tmp:
        home, events = Path(tmp), Path(tmp) / "events"
        events.mkdir()
        write_input(home / "customers", rows)
        for r in range(rounds):
            for name, argv in (("lakescore", lakescore_argv), ("bare job", bare_argv)):
                run = measure(argv(events, home, tracking), env, home / f"{name}-{r}.log")
                run.jobs, run.stages, run.passes = event_counts(events, rows)
                if name == "lakescore":
                    run.steps = ledger_steps(home / "runs")
                runs[name].append(run)
                print(f"  {rows:,} rows, round {r + 1}, {name}: {run.wall:.1f} s, {run.cpu:.1f} CPU-s", flush=True)
    return runs


def report(rows: int, runs: dict[str, list[Run]]) -> list[str]:
    best = {name: min(rs, key=lambda r: r.cpu) for name, rs in runs.items()}
    base = best["bare job"]
    out = [
        f"\nwhole-job benchmark: {rows:,} rows in one partition, {len(runs['lakescore'])} rounds alternated, best CPU of each",
        f"{'job':<12}{'wall s':>8}{'CPU s':>8}{'CPU ratio':>10}{'median CPU':>11}{'driver GiB':>11}{'python GiB':>11}"
        f"{'jobs':>6}{'stages':>7}{'passes':>7}",
    ]
    for name, r in best.items():
        median = statistics.median(x.cpu for x in runs[name])
        out.append(
            f"{name:<12}{r.wall:>8.1f}{r.cpu:>8.1f}{r.cpu / base.cpu:>9.2f}x{median:>11.1f}{r.driver_rss:>11.2f}"
            f"{r.python_rss:>11.2f}{r.jobs:>6}{r.stages:>7}{r.passes:>7.2f}"
        )
    steps = best["lakescore"].steps
    out.append("lakescore steps (s): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])))
    target = TARGETS.get(rows)
    if target:
        ratio = best["lakescore"].cpu / base.cpu
        verdict = "PASS" if ratio <= target else "MISS"
        out.append(f"target (issue 16): the job's CPU <= {target}x the bare job's at {rows:,} rows -> {ratio:.2f}x {verdict}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.job", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[20_000, 1_000_000])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tracking-uri", default=f"sqlite:///{REPO / '.lakescore/mlflow.db'}")
    args = p.parse_args(argv)
    lines: list[str] = []
    for rows in args.rows:
        lines += report(rows, bench(rows, args.rounds, args.tracking_uri))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
