"""Embedded engine under failure and concurrency: failed and killed writes leave nothing in the
table, vacuum removes what a killed writer left, and two OS processes writing one table at once.

The writer processes are this file run as a script (see ``writer_process``): they drive the
engine's own writer exactly as Spark does (``DeltaDataSource.writer`` on the "driver", ``write``
with Arrow batches in the "task", ``commit``/``abort``) without a JVM each, which two cores
could not start twice in seconds. A barrier file makes both plan and write before either commits.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tests.helpers import D1, D2, ID_NAME_DS, REPO, base_table, delta_rs_rows, id_name_rows, overwrite_at_once, parquet_on_disk


def named_by_log(path) -> set[str]:
    """Every data file any commit of the log added or removed, read from the JSON log itself."""
    named = set()
    log = Path(path) / "_delta_log"
    for commit in sorted(log.glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            for kind in ("add", "remove"):
                if kind in action:
                    named.add(unquote(action[kind]["path"]))
    return named


# ---------------------------------------------------------------------------------------------
# a failed Spark task, a killed writer process, vacuum


def test_a_task_failing_mid_write_leaves_no_files_and_no_commit(spark, tmp_path):
    import threading

    from jobs.tables import read_table, table_version, write_table

    path = str(tmp_path / "t")
    base_table(spark, path)
    before, files, rows = table_version(path), parquet_on_disk(path), delta_rs_rows(path)

    seen: set[str] = set()  # every file that existed at some point during the write
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.update(parquet_on_disk(path))
            time.sleep(0.005)

    # One task streams 10,000 rows (~3 MB of Arrow) of ds=D1 and fails on the last one, on the JVM
    # side (as a bad cast would): its Python writer has rolled and opened files by then, and sees
    # its input end as if complete. The other task writes ds=D2 and succeeds.
    last = 10_099
    d1 = spark.range(100, last + 1, numPartitions=1).select("id", F.lit("x" * 300).alias("name"), F.lit(D1).alias("ds"))
    d2 = spark.range(30_000, 30_050, numPartitions=1).select("id", F.lit("y").alias("name"), F.lit(D2).alias("ds"))
    data = d1.union(d2).withColumn(
        "name", F.when(F.col("id") == last, F.raise_error(F.lit("boom on the last row"))).otherwise(F.col("name"))
    )
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "100")
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with pytest.raises(Exception, match="boom on the last row"):
            write_table(data, path, "embedded", mode="append", partition_by=["ds"], target_file_size=500_000)
        assert table_version(path) == before
        # The failed task's Python worker can still be writing when the job's error reaches us; it
        # deletes its own files once it finishes (see the next test). Wait until the table has
        # shown only its own files for two seconds in a row, watching all along.
        deadline, settled_since = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            if parquet_on_disk(path) != files:
                settled_since = None
            elif settled_since is None:
                settled_since = time.monotonic()
            elif time.monotonic() - settled_since >= 2:
                break
            time.sleep(0.05)
    finally:
        done.set()
        watcher.join()
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    # it was mid-write: the failed task's files were seen on disk (a 5 ms watcher can miss a file
    # rolled and removed in between on a loaded machine, so one is enough to prove it)
    assert {f for f in seen - files if f.startswith("ds=2024-06-01/")}
    assert parquet_on_disk(path) == files  # neither the failed task's files nor the finished task's
    assert delta_rs_rows(path) == rows
    assert read_table(spark, path, "embedded").count() == len(rows)


def test_a_task_still_writing_after_abort_deletes_its_own_files(spark, tmp_path):
    """The race behind the test above, made deterministic: the driver aborts before the failed
    task's worker has opened a file, then the worker writes everything it was sent and its input
    ends as if complete. Without abort's marker those closed, complete files would stay."""
    import threading

    from pyspark.sql.pandas.types import to_arrow_schema

    from jobs.tables import TableWriteError
    from jobs.tables.embedded import DeltaDataSource

    path = str(tmp_path / "t")
    base_table(spark, path)
    files, rows = parquet_on_disk(path), delta_rs_rows(path)
    writer = DeltaDataSource({"path": path, "partition_by": "ds", "target_file_size": "200"}).writer(ID_NAME_DS, False)
    aborted = threading.Event()
    outcome: list[BaseException | object] = []

    def batches():
        aborted.wait(30)  # what is still in the socket when the JVM side fails
        for start in range(100, 130, 5):
            yield pa.RecordBatch.from_pylist(
                [{"id": i, "name": f"n{i}", "ds": D1} for i in range(start, start + 5)], schema=to_arrow_schema(ID_NAME_DS)
            )

    worker = threading.Thread(target=lambda: outcome.append(_outcome(lambda: writer.write(batches()))))
    worker.start()
    writer.abort([None])  # the failed task reported nothing, and has no file yet
    aborted.set()
    worker.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], TableWriteError), outcome
    assert "the write had ended (committed or aborted) before this task attempt finished" in str(outcome[0])
    assert parquet_on_disk(path) == files
    assert delta_rs_rows(path) == rows

    # the marker stays for stragglers until vacuum finds it older than the retention
    from jobs.tables import vacuum

    marker = f"_lakescore/ended/{writer.write_id}"
    assert os.path.isfile(os.path.join(path, marker))
    assert vacuum(path, dry_run=False) == []
    expired = vacuum(path, retention_hours=0, dry_run=True, allow_short_retention=True)
    assert marker in expired and all(f.startswith("_lakescore/ended/") for f in expired)  # also base_table's commit's
    assert vacuum(path, retention_hours=0, dry_run=False, allow_short_retention=True) == expired
    assert os.listdir(os.path.join(path, "_lakescore/ended")) == []
    assert delta_rs_rows(path) == rows


def test_commit_deletes_the_files_of_other_attempts_of_its_tasks(spark, tmp_path):
    """With task retries or speculation, an attempt that failed (finished writing, then lost) and
    one still running when the job commits: neither's files may stay beside the committed ones."""
    import threading

    from pyspark.sql.pandas.types import to_arrow_schema

    from jobs.tables import TableWriteError
    from jobs.tables.embedded import DeltaDataSource

    path = str(tmp_path / "t")
    base_table(spark, path)
    writer = DeltaDataSource({"path": path, "partition_by": "ds", "target_file_size": "200"}).writer(ID_NAME_DS, False)

    def batches(ids, gate=None):
        if gate is not None:
            gate.wait(30)
        for start in range(0, len(ids), 5):
            chunk = ids[start : start + 5]
            yield pa.RecordBatch.from_pylist(
                [{"id": i, "name": f"n{i}", "ds": D1} for i in chunk], schema=to_arrow_schema(ID_NAME_DS)
            )

    lost = writer.write(batches(list(range(100, 110))))  # attempt 1: wrote, then its task failed: never reported
    lost_files = {unquote(a["path"]) for a in lost.adds}
    assert lost_files <= parquet_on_disk(path)
    gate, outcome = threading.Event(), []
    straggler = threading.Thread(
        target=lambda: outcome.append(_outcome(lambda: writer.write(batches(list(range(100, 110)), gate))))
    )
    straggler.start()  # attempt 3, speculative, still running when the job commits
    won = writer.write(batches(list(range(100, 110))))  # attempt 2: reported
    writer.commit([won])
    gate.set()
    straggler.join(30)

    assert isinstance(outcome[0], TableWriteError), outcome
    assert parquet_on_disk(path) == named_by_log(path)  # attempt 1's files swept, attempt 3 deleted its own
    assert delta_rs_rows(path) == sorted(id_name_rows(D1, [1, 2, *range(100, 110)]) + id_name_rows(D2, [3]))


def _outcome(fn):
    """What fn returned, or the exception it raised (a writer task run in a thread)."""
    try:
        return fn()
    except BaseException as err:  # the outcome is what the test checks
        return err


def test_killed_writer_leaves_only_unreferenced_files_that_vacuum_removes(spark, tmp_path):
    from jobs.tables import read_table, table_version, vacuum

    path = str(tmp_path / "t")
    base_table(spark, path)
    before, rows = table_version(path), delta_rs_rows(path)

    killed = run_writers(tmp_path, {"name": "k", "ids": list(range(100, 160)), "kill_at_batch": 5, "target_file_size": 150})[0]
    assert killed.returncode == -9, killed.stderr  # SIGKILL: no except block, no abort ran
    orphans = parquet_on_disk(path) - named_by_log(path)
    assert len(orphans) >= 2  # files it had rolled and closed, plus the one still open when it died
    assert table_version(path) == before and delta_rs_rows(path) == rows

    # at the default retention (a week) fresh files are kept: they could be a running write's
    assert vacuum(path) == []
    with pytest.raises(Exception, match="retention"):
        vacuum(path, retention_hours=0)
    markers = [f"_lakescore/ended/{m}" for m in os.listdir(os.path.join(path, "_lakescore/ended"))]  # base_table's commit's
    assert vacuum(path, retention_hours=0, dry_run=True, allow_short_retention=True) == sorted([*orphans, *markers])
    assert parquet_on_disk(path) - named_by_log(path) == orphans  # a dry run deletes nothing

    assert vacuum(path, retention_hours=0, dry_run=False, allow_short_retention=True) == sorted([*orphans, *markers])
    assert parquet_on_disk(path) == named_by_log(path)
    assert delta_rs_rows(path) == rows
    back = sorted((r.id, r.name, r.ds) for r in read_table(spark, path, "embedded").collect())
    assert back == rows


# ---------------------------------------------------------------------------------------------
# two writer processes


def test_two_processes_replacing_different_partitions_both_commit(spark, tmp_path):
    path, before, a, b = overwrite_at_once(spark, tmp_path, run_writers, D1, D2)
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert delta_rs_rows(path) == sorted(id_name_rows(D1, [10, 11]) + id_name_rows(D2, [20, 21, 22]))
    assert DeltaTable(path).version() == before + 2
    assert parquet_on_disk(path) == named_by_log(path)


def test_two_processes_appending_at_once_both_commit(spark, tmp_path):
    path = str(tmp_path / "t")
    base_table(spark, path)
    a, b = run_writers(
        tmp_path,
        {"name": "a", "ids": [10, 11], "day": D1.isoformat(), "mode": "append"},
        {"name": "b", "ids": [20], "day": D1.isoformat(), "mode": "append"},
    )
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert delta_rs_rows(path) == sorted(id_name_rows(D1, [1, 2, 10, 11, 20]) + id_name_rows(D2, [3]))


def test_two_processes_replacing_the_same_partition_one_wins_the_other_fails_cleanly(spark, tmp_path):
    path, before, a, b = overwrite_at_once(spark, tmp_path, run_writers, D1, D1, conflict="fail")
    assert sorted((a.returncode, b.returncode)) == [0, 3], (a.stderr, b.stderr)
    winner, loser = (a, b) if a.returncode == 0 else (b, a)
    assert "ConcurrentWriteError" in loser.stdout
    assert f"Delta write to {path}: partition(s) ds=2024-06-01 were changed by another writer's commit" in loser.stdout
    winner_ids = [10, 11] if winner is a else [20, 21, 22]
    assert delta_rs_rows(path) == sorted(id_name_rows(D1, winner_ids) + id_name_rows(D2, [3]))  # the winner's rows only, once
    assert DeltaTable(path).version() == before + 1
    assert parquet_on_disk(path) == named_by_log(path)  # the loser's files were deleted


def test_same_partition_with_conflict_retry_commits_both_and_the_later_replaces_the_earlier(spark, tmp_path):
    path, before, a, b = overwrite_at_once(spark, tmp_path, run_writers, D1, D1, conflict="retry")
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert DeltaTable(path).version() == before + 2
    last = DeltaTable(path).history(1)[0]["lakescore.writer"]
    assert delta_rs_rows(path) == sorted(id_name_rows(D1, [10, 11] if last == "a" else [20, 21, 22]) + id_name_rows(D2, [3]))
    assert parquet_on_disk(path) == named_by_log(path)


def test_conflict_options_are_refused_before_spark_does_any_work(spark, tmp_path):
    from jobs.tables import write_table

    path = str(tmp_path / "t")
    df = spark.createDataFrame(id_name_rows(D1, [1]), ID_NAME_DS)
    with pytest.raises(ValueError, match=r"conflict must be one of \('fail', 'retry'\), got 'ignore'"):
        write_table(df, path, "embedded", mode="append", partition_by=["ds"], conflict="ignore")
    with pytest.raises(ValueError, match="max_retries must be between 0 and 100, got -1"):
        write_table(df, path, "embedded", mode="append", partition_by=["ds"], max_retries=-1)
    assert not os.path.exists(path)


def meddling_write(path, marker):
    """A UDF that, the first time it runs, appends a row to ds=D1 from inside the Spark job: a
    commit made by "another writer" after the job was planned and before it commits."""

    @F.udf(T.StringType())
    def meddle(name):
        import pyarrow as pa
        from deltalake import write_deltalake

        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return name
        rows = pa.table({"id": pa.array([99], pa.int64()), "name": ["other"], "ds": pa.array([D1], pa.date32())})
        write_deltalake(path, rows, mode="append")
        return name

    return meddle


CONFLICT_MESSAGES = {
    # the embedded engine names the partitions and versions it checked against
    "embedded": r"partition\(s\) ds=2024-06-01 were changed by another writer's commit \(version\(s\) 1\.\.1\) after this write's snapshot \(version 0\)",
    # delta-spark's own optimistic concurrency names its exception
    "native": r"another writer's commit conflicts with this write \(Concurrent\w+Exception\); nothing was committed",
}


@pytest.mark.parametrize("conflict", ["fail", "retry"])
def test_a_commit_landing_during_a_spark_overwrite_is_caught(spark, engine, tmp_path, conflict):
    """Another writer (delta-rs, as the embedded engine commits) lands a commit on the partition
    while Spark is writing it, on either engine."""
    from jobs.tables import ConcurrentWriteError, read_table, write_table

    path = str(tmp_path / "t")
    base_table(spark, path)
    before = DeltaTable(path).version()
    meddle = meddling_write(path, str(tmp_path / "meddled"))
    data = spark.createDataFrame(id_name_rows(D1, [10, 11]), ID_NAME_DS).coalesce(1).withColumn("name", meddle("name"))

    def write():
        return write_table(
            data, path, engine, mode="overwrite", partition_by=["ds"], replace_partitions=[{"ds": D1}], conflict=conflict
        )

    if conflict == "fail":
        with pytest.raises(ConcurrentWriteError, match=rf"Delta write to {path}: {CONFLICT_MESSAGES[engine]}"):
            write()
        expected = [*id_name_rows(D1, [1, 2]), (99, "other", D1), *id_name_rows(D2, [3])]  # the other writer's row stays
        assert DeltaTable(path).version() == before + 1
    else:
        write()
        expected = id_name_rows(D1, [10, 11]) + id_name_rows(D2, [3])  # written again on top: replaces the other's row too
        assert DeltaTable(path).version() == before + 2
    assert delta_rs_rows(path) == sorted(expected)
    assert sorted((r.id, r.name, r.ds) for r in read_table(spark, path, engine).collect()) == sorted(expected)
    if engine == "embedded":  # delta-spark leaves a failed attempt's files for VACUUM, as designed
        assert parquet_on_disk(path) == named_by_log(path)


def run_writers(tmp_path, *specs, timeout=120):
    """Start one writer process per spec at once; wait for all; return their CompletedProcess-likes."""
    barrier = tmp_path / "barrier"
    barrier.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = []
    for spec in specs:
        full = {
            "path": str(tmp_path / "t"),
            "barrier": str(barrier),
            "peers": [s["name"] for s in specs],
            "day": D1.isoformat(),
            "mode": "append",
            **spec,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, json.dumps(full)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def writer_process(spec: dict) -> int:
    """One writer, as Spark drives it: plan (on the driver), write (a task), barrier, commit or abort.

    Exit 0 committed, 3 ConcurrentWriteError (printed), -9 when told to kill itself mid-write.
    """
    import signal

    from pyspark.sql.pandas.types import to_arrow_schema

    from jobs.tables import ConcurrentWriteError
    from jobs.tables.embedded import DeltaDataSource

    day = dt.date.fromisoformat(spec["day"])
    options = {
        "path": spec["path"],
        "partition_by": "ds",
        "conflict": spec.get("conflict", "fail"),
        "commit_metadata": json.dumps({"lakescore.writer": spec["name"]}),
    }
    if spec.get("target_file_size"):
        options["target_file_size"] = str(spec["target_file_size"])
    overwrite = spec["mode"] == "overwrite"
    if overwrite:
        options["replace_partitions"] = json.dumps([{"ds": day.isoformat()}])
    writer = DeltaDataSource(options).writer(ID_NAME_DS, overwrite)  # planning: takes the snapshot version

    arrow_schema = to_arrow_schema(ID_NAME_DS)
    rows = id_name_rows(day, spec["ids"])

    def batches():
        for n, start in enumerate(range(0, len(rows), 5)):
            if n == spec.get("kill_at_batch"):
                os.kill(os.getpid(), signal.SIGKILL)  # the way an OOM-killed or preempted executor dies
            chunk = rows[start : start + 5]
            yield pa.RecordBatch.from_pylist([dict(zip(arrow_schema.names, r, strict=True)) for r in chunk], schema=arrow_schema)

    message = writer.write(batches())
    barrier = Path(spec["barrier"])
    (barrier / spec["name"]).touch()
    deadline = time.monotonic() + 60
    while not all((barrier / peer).exists() for peer in spec["peers"]):
        if time.monotonic() > deadline:
            print("barrier timed out", flush=True)
            return 4
        time.sleep(0.01)
    try:
        writer.commit([message])
    except ConcurrentWriteError as err:
        writer.abort([message])  # what Spark does when commit raises
        print(f"ConcurrentWriteError: {err}", flush=True)
        return 3
    except BaseException:
        writer.abort([message])
        raise
    return 0


if __name__ == "__main__":
    sys.exit(writer_process(json.loads(sys.argv[1])))
