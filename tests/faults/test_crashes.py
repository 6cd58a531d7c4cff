"""kill -9 at each step boundary of a run, on both engines: the tables stay consistent (or, between
the two publishing commits, are flagged and not trusted), the killed run is visible, and a rerun
converges to the invariant with no file left behind."""

from __future__ import annotations

import time

import pytest

from jobs.run.selection import Audit, select
from jobs.score import main
from tests.faults.conftest import kill, output, start
from tests.faults.invariant import check_partition, ledger_statuses, orphans_on_disk
from tests.helpers import D1

pytestmark = pytest.mark.faults
PARTITION = f"ds={D1.isoformat()}"

# the boundary, and whether the partition still holds the earlier run's rows after the kill
BOUNDARIES = [
    ("planned", "earlier"),
    ("claimed", "earlier"),
    ("stats_written", "earlier"),
    ("quarantine_committed", "torn"),
    ("scores_committed", "new"),
    ("partitions_done", "new"),
]
NATIVE_BOUNDARIES = {"stats_written", "quarantine_committed", "scores_committed"}
CASES = [
    pytest.param(e, b, w, id=f"{e}-{b}")
    for e in ("embedded", "native")
    for b, w in BOUNDARIES
    if e == "embedded" or b in NATIVE_BOUNDARIES
]


def _resume_trusts(root) -> bool:
    """Whether --since-last-run would skip the partition as done."""
    chosen = select(
        str(root / "customers"),
        ["ds"],
        str(root / "scored"),
        since_last_run=True,
        audit=Audit(str(root / "quarantine"), str(root / "stats"), str(root / "runs")),
    )
    return PARTITION not in chosen.partitions


def _torn_and_flagged(root) -> None:
    """The one window Delta cannot close across two tables (between the quarantine's commit and
    the scores'): the commits name different runs, and no resume trusts the partition."""
    with pytest.raises(AssertionError, match="beside the quarantine"):
        check_partition(root, D1)
    assert not _resume_trusts(root)


def _rerun_converges(root, conf) -> None:
    assert main(["--conf", conf, "--partition", PARTITION]) == 0
    after = check_partition(root, D1)
    assert after.scored + after.quarantined == 300
    for table in ("scored", "quarantine"):  # nothing a dead write left is still on disk
        assert not orphans_on_disk(root / table, D1)
    assert _resume_trusts(root)


@pytest.mark.parametrize(("job", "boundary", "holds"), CASES, indirect=["job"])
def test_kill_at_a_step_boundary_leaves_the_tables_consistent_and_a_rerun_converges(job, boundary, holds):
    root, conf = job
    earlier = check_partition(root, D1).run
    process = start(conf, "--partition", PARTITION, env={"LAKESCORE_FAULT": boundary})
    assert process.wait(timeout=300) == -9, output(process)[-3000:]

    statuses = ledger_statuses(root)
    killed = [run for run, s in statuses.items() if s == ["running"]]
    if boundary != "planned" or killed:  # the running row is written just before "planned"
        assert len(killed) == 1, statuses  # the killed run is visible
    if holds == "torn":
        _torn_and_flagged(root)
    else:
        state = check_partition(root, D1)
        assert state.run == (earlier if holds == "earlier" else killed[0])
        # a partition published by a run that never wrote its final ledger row is scored again
        assert _resume_trusts(root) == (holds == "earlier")
    _rerun_converges(root, conf)


@pytest.mark.parametrize("job", ["embedded"], indirect=True)
def test_kill_inside_the_scored_write_leaves_orphans_that_the_next_run_removes(job):
    """The hook fires in the write task once its first file is on storage, uncommitted."""
    root, conf = job
    process = start(conf, "--partition", PARTITION, env={"LAKESCORE_FAULT": "data_file_written:/scored"})
    assert process.wait(timeout=300) == -9, output(process)[-3000:]
    _torn_and_flagged(root)  # the quarantine was committed before the scores' write began
    assert orphans_on_disk(root / "scored", D1)  # the dead write's file is there
    _rerun_converges(root, conf)


def _wait_for(process, text: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while text not in output(process):
        assert process.poll() is None, output(process)[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in the job's log"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("job", "moment"), [("embedded", "validating, scoring"), ("native", "publishing quarantined rows")], indirect=["job"]
)
def test_real_kill_of_spark_submit_mid_step(job, moment):
    """A real ``kill -9`` of a real ``spark-submit`` process group while a step runs."""
    root, conf = job
    process = start(conf, "--partition", PARTITION, submit=True)
    _wait_for(process, moment)
    kill(process)
    assert [s for s in ledger_statuses(root).values() if s == ["running"]] == [["running"]]  # visible, never ended
    try:
        check_partition(root, D1)
    except AssertionError:  # killed between the two commits: flagged, repaired by the rerun
        _torn_and_flagged(root)
    _rerun_converges(root, conf)
