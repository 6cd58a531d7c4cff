"""Backfills through the real entry point: --dry-run writes nothing, a rerun range resumes."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from jobs.score import main
from tests.conftest import write_demo_input
from tests.test_job import job_config

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


def test_backfill_resumes_skipping_partitions_already_scored_with_this_model(tmp_path, registry, spark):
    source = write_demo_input(tmp_path / "customers", days=3, rows_per_day=60)
    conf = job_config(tmp_path, registry)
    assert main(["--conf", conf, "--from", "2024-06-01", "--to", "2024-06-02"]) == 0  # "interrupted" after two days
    assert main(["--conf", conf, "--from", "2024-06-01", "--to", "2024-06-03"]) == 0  # restarted over the whole range

    runs = DeltaTable(str(tmp_path / "runs")).to_pandas().sort_values("started_at")
    assert [list(p) for p in runs["partitions"]] == [["ds=2024-06-01", "ds=2024-06-02"], ["ds=2024-06-03"]]
    scored = DeltaTable(str(tmp_path / "scored")).to_pandas()
    quarantined = DeltaTable(str(tmp_path / "quarantine")).to_pandas()
    assert len(scored) + len(quarantined) == len(source)  # every day once, none twice
    assert not scored.duplicated(["customer_id", "ds"]).any()

    # nothing new or changed: --since-last-run has nothing to do and starts no run
    assert main(["--conf", conf, "--since-last-run"]) == 0
    assert len(DeltaTable(str(tmp_path / "runs")).to_pandas()) == 2
