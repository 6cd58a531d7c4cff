"""--replay through the real entry point: the same input version, model version and config give the
same scores; a changed config or an unknown run is refused."""

from __future__ import annotations

import pytest
import yaml
from deltalake import write_deltalake

from jobs.score import main
from tests.helpers import delta, job_config, ledger, write_demo_input

pytestmark = pytest.mark.e2e


def _last_run_id(tmp_path) -> str:
    return ledger(tmp_path / "runs").sort_values("started_at")["run_id"].iloc[-1]


def test_replay_reproduces_a_run_even_after_its_input_and_scores_were_replaced(tmp_path, registry, spark, capsys):
    source = write_demo_input(tmp_path / "customers", days=1, rows_per_day=80)
    # 80 rows drift far from the reference by sampling alone: the demo gate would withhold them
    conf = job_config(tmp_path, registry, gate={"mode": "warn"})
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    original = _last_run_id(tmp_path)

    # the input partition is rewritten and rescored afterwards: replay must use what the run saw
    changed = source.assign(monthly_charges=source["monthly_charges"] * 3)
    write_deltalake(str(tmp_path / "customers"), changed, mode="overwrite", partition_by=["ds"])
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    capsys.readouterr()

    scratch = tmp_path / "replay"
    assert main(["--conf", conf, "--replay", original, "--replay-into", str(scratch)]) == 0
    out = capsys.readouterr().out
    assert f"replay of run {original}: MATCH" in out
    replayed = delta(scratch / "scored")
    runs = ledger(scratch / "runs")
    assert runs["input_version"].iloc[0] == 0  # the snapshot the original read, not the latest (1)
    published = delta(tmp_path / "scored", version=0)
    assert sorted(replayed["customer_id"]) == sorted(published["customer_id"])


@pytest.fixture(scope="module")
def scored_once(tmp_path_factory, registry, spark):
    """One partition of demo input scored once: (tmp_path, conf, the run's exit code)."""
    tmp_path = tmp_path_factory.mktemp("replay")
    write_demo_input(tmp_path / "customers", days=1, rows_per_day=40)
    conf = job_config(tmp_path, registry)
    return tmp_path, conf, main(["--conf", conf, "--partition", "ds=2024-06-01"])


def test_replay_with_a_changed_config_is_refused(scored_once):
    tmp_path, conf, exit_code = scored_once
    assert exit_code == 0
    original = _last_run_id(tmp_path)
    raw = yaml.safe_load(open(conf))
    raw["validation"]["rules"] = raw["validation"]["rules"][:1]
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(raw))
    assert main(["--conf", str(changed), "--replay", original]) == 2
    assert not (tmp_path / f"scored__replay_{original}").exists()


def test_replay_of_an_unknown_run_is_refused(scored_once):
    _, conf, _ = scored_once
    assert main(["--conf", conf, "--replay", "no-such-run"]) == 2
