"""The scheduler's contract, through the real entry point in a subprocess: exit 3 for a failed
gate and exit 1 for a failure that is not the caller's (0 and 2 are in test_job.py)."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from tests.helpers import REPO, job_config, ledger, run_job, write_demo_input

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_failed_gate_exits_3_in_a_subprocess_and_publishes_no_scores(tmp_path, registry):
    write_demo_input(tmp_path / "customers", days=1, rows_per_day=200)  # 5% bad rows
    conf = job_config(tmp_path, registry)
    proc = run_job("--conf", conf, "--partition", "ds=2024-06-01", "--set", "gate.max_quarantine_rate=0.01", cwd=REPO)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "gate_failed (exit 3)" in proc.stdout
    assert not DeltaTable.is_deltatable(str(tmp_path / "scored"))
    runs = ledger(tmp_path / "runs")
    assert (runs["status"].iloc[0], runs["exit_code"].iloc[0]) == ("gate_failed", 3)


def test_a_write_that_fails_exits_1_in_a_subprocess_with_a_failed_ledger_row(tmp_path, registry):
    write_demo_input(tmp_path / "customers", days=1, rows_per_day=50)
    (tmp_path / "not-a-dir").write_text("a file where the scored table's parent folder should be")
    conf = job_config(tmp_path, registry)
    proc = run_job(
        "--conf", conf, "--partition", "ds=2024-06-01", "--set", f"output.scored={tmp_path}/not-a-dir/scored", cwd=REPO
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    runs = ledger(tmp_path / "runs")
    assert (runs["status"].iloc[0], runs["exit_code"].iloc[0]) == ("failed", 1)
    assert runs["error"].iloc[0]  # the ledger says what broke
