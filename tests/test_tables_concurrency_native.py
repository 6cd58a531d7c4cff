"""The native engine under concurrency across processes, which rests on delta-spark's own
optimistic concurrency (a commit landing inside one write is in test_tables_concurrency, per engine):
its conflicts become LakeScore's ConcurrentWriteError (``conflict: fail``) or a rewrite on the new
snapshot (``conflict: retry``); writers of other partitions both commit. Two real spark-submit
processes meet at a barrier inside their writes, so their transactions overlap every time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.helpers import D1, D2, REPO, delta_rs_rows, id_name_rows, overwrite_at_once

pytestmark = pytest.mark.slow  # two spark-submits per test


WRITER = """
import datetime as dt, json, os, sys, time
from pathlib import Path
from pyspark.sql import SparkSession, functions as F, types as T
from jobs.tables import ConcurrentWriteError, write_table
from tests.helpers import ID_NAME_DS, id_name_rows

spec = json.loads(sys.argv[1])
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
day = dt.date.fromisoformat(spec["day"])
barrier = Path(spec["barrier"])

@F.udf(T.StringType())
def meet(name):
    # inside the write, after delta-spark took its snapshot: wait for the other writer to get here
    (barrier / spec["name"]).touch()
    deadline = time.monotonic() + 120
    while not all((barrier / peer).exists() for peer in spec["peers"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return name

df = spark.createDataFrame(id_name_rows(day, spec["ids"]), ID_NAME_DS).coalesce(1).withColumn("name", meet("name"))
try:
    write_table(df, spec["path"], "native", mode="overwrite", partition_by=["ds"], replace_partitions=[{"ds": day}],
                conflict=spec["conflict"], commit_metadata={"lakescore.writer": spec["name"]})
except ConcurrentWriteError as err:
    print(f"ConcurrentWriteError: {err}", flush=True)
    sys.exit(3)
"""


def submit_writers(tmp_path: Path, *specs: dict) -> list[subprocess.CompletedProcess]:
    """One ``spark-submit`` per spec, all at once, each its own driver JVM with delta-spark."""
    from pyspark import __file__ as pyspark_init

    from jobs.tables.jars import submit_args

    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    spark_submit = str(Path(pyspark_init).parent / "bin" / "spark-submit")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    # output to files, not pipes: a driver's INFO log fills a pipe nobody reads yet, and a writer
    # blocked on its stderr never reaches the barrier its peer is waiting at
    procs = []
    for spec in specs:
        full = {
            "path": str(tmp_path / "t"),
            "barrier": str(barrier),
            "peers": [s["name"] for s in specs],
            "conflict": "fail",
            **spec,
        }
        argv = [spark_submit, "--master", "local[1]", *submit_args(), str(script), json.dumps(full)]
        logs = (tmp_path / f"{spec['name']}.out", tmp_path / f"{spec['name']}.err")
        with logs[0].open("w") as stdout, logs[1].open("w") as stderr:
            procs.append((subprocess.Popen(argv, cwd=REPO, env=env, stdout=stdout, stderr=stderr), logs))
    out = []
    for proc, (stdout, stderr) in procs:
        proc.wait(timeout=300)
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout.read_text(), stderr.read_text()))
    return out


def test_two_spark_submits_replacing_different_partitions_both_commit(spark, native, tmp_path):
    path, before, a, b = overwrite_at_once(spark, tmp_path, submit_writers, D1, D2)
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr[-3000:], b.stderr[-3000:])
    assert delta_rs_rows(path) == sorted(id_name_rows(D1, [10, 11]) + id_name_rows(D2, [20, 21, 22]))
    assert DeltaTable(path).version() == before + 2


@pytest.mark.parametrize("conflict", ["fail", "retry"])
def test_two_spark_submits_replacing_the_same_partition_conflict(spark, native, tmp_path, conflict):
    path, before, a, b = overwrite_at_once(spark, tmp_path, submit_writers, D1, D1, conflict=conflict)
    if conflict == "fail":
        assert sorted((a.returncode, b.returncode)) == [0, 3], (a.stderr[-3000:], b.stderr[-3000:])
        winner, loser = (a, b) if a.returncode == 0 else (b, a)
        assert f"ConcurrentWriteError: Delta write to {path}: another writer's commit conflicts with this write" in loser.stdout
        winner_ids = [10, 11] if winner is a else [20, 21, 22]
        assert delta_rs_rows(path) == sorted(id_name_rows(D1, winner_ids) + id_name_rows(D2, [3]))  # the winner's rows, once
        assert DeltaTable(path).version() == before + 1
    else:
        assert (a.returncode, b.returncode) == (0, 0), (a.stderr[-3000:], b.stderr[-3000:])
        assert DeltaTable(path).version() == before + 2
        last = json.loads(DeltaTable(path).history(1)[0]["userMetadata"])["lakescore.writer"]
        assert delta_rs_rows(path) == sorted(id_name_rows(D1, [10, 11] if last == "a" else [20, 21, 22]) + id_name_rows(D2, [3]))
        assert any("writing again on the new snapshot" in p.stdout + p.stderr for p in (a, b))
