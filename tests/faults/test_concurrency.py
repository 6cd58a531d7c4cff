"""Two runs of one partition at once, on both engines: they conflict across the two tables (one
fails with ConcurrentWriteError, exit 1, and publishes nothing), and the partition holds the
other's rows whole."""

from __future__ import annotations

import time

import pytest

from jobs.score import main
from tests.faults.conftest import output, start
from tests.faults.invariant import check_partition
from tests.helpers import D1, ledger

pytestmark = pytest.mark.faults
PARTITION = f"ds={D1.isoformat()}"


def _wait_for_files(folder, count: int, processes, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len(list(folder.glob("*.waiting"))) < count:
        for p in processes:
            assert p.poll() is None, output(p)[-3000:]
        assert time.monotonic() < deadline, "the runs never reached the pause point"
        time.sleep(0.1)


@pytest.mark.parametrize("job", ["embedded", "native"], indirect=True)
def test_two_runs_that_claimed_the_same_partition_at_once_one_wins_whole(job, tmp_path):
    root, conf = job
    gate = tmp_path / "gate"
    gate.mkdir()
    runs = [start(conf, "--partition", PARTITION, env={"LAKESCORE_PAUSE": f"claimed:{gate}"}) for _ in range(2)]
    _wait_for_files(gate, 2, runs)
    (gate / "go").touch()  # both claimed the same publication number; now both compute and commit
    codes = [p.wait(timeout=300) for p in runs]
    assert sorted(codes) == [0, 1], [output(p)[-2000:] for p in runs]
    loser = runs[codes.index(1)]
    said = output(loser)
    assert "ConcurrentWriteError" in said and "published nothing" in said, said[-4000:]
    state = check_partition(root, D1)
    final = ledger(root / "runs")
    winner = final[final["exit_code"] == 0]["run_id"].iloc[-1]
    assert state.run == winner and state.scored + state.quarantined == 300


@pytest.mark.parametrize("job", ["embedded", "native"], indirect=True)
def test_a_run_overtaken_between_its_two_commits_stops_and_the_newer_run_holds_the_partition(job, tmp_path):
    """A commits its quarantine and waits; B claims the next number and publishes both tables;
    A, released, sees it was superseded and does not commit its scores."""
    root, conf = job
    gate = tmp_path / "gate"
    gate.mkdir()
    first = start(conf, "--partition", PARTITION, env={"LAKESCORE_PAUSE": f"quarantine_committed:{gate}"})
    _wait_for_files(gate, 1, [first])
    assert main(["--conf", conf, "--partition", PARTITION]) == 0
    newer = ledger(root / "runs")["run_id"].iloc[-1]
    (gate / "go").touch()
    assert first.wait(timeout=300) == 1, output(first)[-3000:]
    assert "ConcurrentWriteError" in output(first)
    assert check_partition(root, D1).run == newer
