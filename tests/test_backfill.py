"""Backfills through the real entry point: --dry-run writes nothing, a rerun range resumes."""

from __future__ import annotations

import pytest

from jobs.score import main
from tests.helpers import delta, job_config, ledger, write_demo_input

pytestmark = pytest.mark.e2e


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, registry, capsys):
    write_demo_input(tmp_path / "customers", days=3, rows_per_day=50)
    conf = job_config(tmp_path, registry)
    assert main(["--conf", conf, "--from", "2024-06-02", "--to", "2024-06-03", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 partition(s) to score" in out and f"version {registry['version']}" in out
    assert "score  ds=2024-06-02" in out and "score  ds=2024-06-03" in out and "ds=2024-06-01" not in out
    assert not any((tmp_path / t).exists() for t in ("scored", "quarantine", "stats", "runs"))


def test_bad_range_exits_2_before_spark_and_writes_nothing(tmp_path, registry):
    write_demo_input(tmp_path / "customers", days=1, rows_per_day=20)
    assert main(["--conf", job_config(tmp_path, registry), "--from", "2024-06-31"]) == 2
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def resumed_backfill(tmp_path_factory, registry, spark):
    """Three days of input, a backfill "interrupted" after two, then restarted over the whole range:
    (tmp_path, conf, source, the two runs' exit codes)."""
    tmp_path = tmp_path_factory.mktemp("backfill")
    source = write_demo_input(tmp_path / "customers", days=3, rows_per_day=60)
    conf = job_config(tmp_path, registry)
    interrupted = main(["--conf", conf, "--from", "2024-06-01", "--to", "2024-06-02"])
    restarted = main(["--conf", conf, "--from", "2024-06-01", "--to", "2024-06-03"])
    return tmp_path, conf, source, (interrupted, restarted)


def test_backfill_resumes_skipping_partitions_already_scored_with_this_model(resumed_backfill):
    tmp_path, _, source, (interrupted, restarted) = resumed_backfill
    assert interrupted == 0  # "interrupted" after two days
    assert restarted == 0  # restarted over the whole range

    runs = ledger(tmp_path / "runs").sort_values("started_at")
    assert [list(p) for p in runs["partitions"]] == [["ds=2024-06-01", "ds=2024-06-02"], ["ds=2024-06-03"]]
    scored = delta(tmp_path / "scored")
    quarantined = delta(tmp_path / "quarantine")
    assert len(scored) + len(quarantined) == len(source)  # every day once, none twice
    assert not scored.duplicated(["customer_id", "ds"]).any()


def test_since_last_run_after_a_complete_backfill_starts_no_run(resumed_backfill):
    tmp_path, conf, _, _ = resumed_backfill
    # nothing new or changed: --since-last-run has nothing to do and starts no run
    assert main(["--conf", conf, "--since-last-run"]) == 0
    assert len(ledger(tmp_path / "runs")) == 2
