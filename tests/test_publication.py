"""Publishing a partition whole: the quarantine and the scores of one run, or neither; the held
table for a failed gate; a failed second commit rolls the first back; one bad partition fails
alone; input columns the contract does not name; pass-through columns keep the input's value."""

from __future__ import annotations

import contextlib
import io

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from jobs.score import main
from tests.helpers import D1, D2, delta, expected_quarantine, ledger


def _latest_run(path, label):
    from jobs.tables import commit_metadata

    for entry in DeltaTable(str(path)).history():
        meta = commit_metadata(entry)
        if meta.get("lakescore.partition") == label:
            return meta.get("lakescore.run_id")
    return None


def test_both_tables_commits_name_the_partition_and_the_run(demo):
    tmp_path, conf, _ = demo
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    run = ledger(tmp_path / "runs")["run_id"].iloc[-1]
    assert _latest_run(tmp_path / "scored", "ds=2024-06-01") == _latest_run(tmp_path / "quarantine", "ds=2024-06-01") == run


def test_a_failed_scores_commit_restores_the_quarantine_of_the_published_run(demo, monkeypatch):
    tmp_path, conf, _ = demo
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    first = ledger(tmp_path / "runs")["run_id"].iloc[-1]
    before = delta(tmp_path / "quarantine", ds=D1)

    import jobs.run.publish as publish

    real = publish.replace_partition

    def failing(df, path, *args, **kwargs):
        if path.endswith("scored"):
            raise OSError("disk full (injected)")
        return real(df, path, *args, **kwargs)

    monkeypatch.setattr(publish, "replace_partition", failing)
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 1
    after = delta(tmp_path / "quarantine", ds=D1)
    assert set(after["run_id"]) == {first}
    assert sorted(after["customer_id"].fillna(-1)) == sorted(before["customer_id"].fillna(-1))
    assert _latest_run(tmp_path / "quarantine", "ds=2024-06-01") == first == _latest_run(tmp_path / "scored", "ds=2024-06-01")
    assert "disk full (injected)" in ledger(tmp_path / "runs")["error"].iloc[-1]


def test_one_failing_partition_fails_alone_and_names_itself(demo, monkeypatch):
    tmp_path, conf, _ = demo
    import jobs.run.orchestrator as orchestrator

    real = orchestrator.score_partition

    def second_day_breaks(ctx, spec, earlier=()):
        if spec["ds"] == D2:
            raise RuntimeError("executor lost (injected)")
        return real(ctx, spec, earlier)

    monkeypatch.setattr(orchestrator, "score_partition", second_day_breaks)
    assert main(["--conf", conf, "--partition", "ds=2024-06-01", "--partition", "ds=2024-06-02"]) == 1
    run = ledger(tmp_path / "runs").iloc[-1]
    assert run.status == "failed" and "partition ds=2024-06-02: RuntimeError: executor lost (injected)" in run.error
    assert set(delta(tmp_path / "scored")["ds"]) == {D1}  # the good partition is published


def test_input_columns_the_contract_does_not_name_reach_the_quarantine_as_new_columns(demo):
    tmp_path, conf, source = demo
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    day = pa.Table.from_pandas(source[source["ds"] == D2], preserve_index=False)
    grown = day.append_column("loyalty_tier", pa.array(["gold"] * len(day), pa.string()))
    write_deltalake(
        str(tmp_path / "customers"),
        grown,
        mode="overwrite",
        partition_by=["ds"],
        predicate="ds = '2024-06-02'",
        schema_mode="merge",
    )
    assert main(["--conf", conf, "--partition", "ds=2024-06-02"]) == 0
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0  # old partitions too
    quarantine = delta(tmp_path / "quarantine")
    assert "loyalty_tier" in quarantine.columns
    assert set(quarantine[quarantine["ds"] == D2]["loyalty_tier"]) == {"gold"}
    assert quarantine[quarantine["ds"] == D1]["loyalty_tier"].isna().all()
    assert len(quarantine) == expected_quarantine(source).sum()


def _replace_first_day(tmp_path, day) -> None:
    """Rewrite the input's ds=2024-06-01 with ``day`` (pandas), as an upstream job would."""
    table = pa.Table.from_pandas(day, preserve_index=False)
    write_deltalake(str(tmp_path / "customers"), table, mode="overwrite", partition_by=["ds"], predicate="ds = '2024-06-01'")


def test_pass_through_columns_hold_the_input_value_not_the_preprocessed_one(demo):
    tmp_path, conf, source = demo
    day = source[source["ds"] == D1].copy()
    good = day[~expected_quarantine(day)].index[0]
    day.loc[good, "region"] = "mars"  # a region the model never saw: its pipeline maps it to another
    _replace_first_day(tmp_path, day)
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    scored = delta(tmp_path / "scored", ds=D1)
    assert scored.loc[scored["customer_id"] == day.loc[good, "customer_id"], "region"].tolist() == ["mars"]


def test_large_drift_is_a_warning_even_without_a_gate(demo):
    tmp_path, conf, source = demo
    day = source[source["ds"] == D1].copy()
    day["tenure_months"] = 1100  # inside the rules, far outside anything the model was trained on
    _replace_first_day(tmp_path, day)
    with contextlib.redirect_stderr(io.StringIO()) as err:  # the job's log follows sys.stderr
        assert main(["--conf", conf, "--set", "gate.mode=warn", "--partition", "ds=2024-06-01"]) == 0
    assert "tenure_months drifted far from the training reference" in err.getvalue()


@pytest.mark.parametrize("label", ["ds=2030-01-01"])
def test_a_partition_the_input_does_not_have_is_a_usage_error_in_both_modes(demo, label):
    _, conf, _ = demo
    assert main(["--conf", conf, "--partition", label]) == 2
    assert main(["--conf", conf, "--partition", label, "--dry-run"]) == 2


def test_a_model_whose_logged_pipeline_went_missing_is_refused(model_dir, tmp_path):
    """The trainer's MLmodel metadata lists lakescore/pipeline.json: without the file the model would
    be scored with no preprocessing, silently wrong."""
    import shutil

    from jobs.config import ModelConfig
    from jobs.model.resolve import ModelError, release_model, resolve_model

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    release_model(resolve_model(ModelConfig(uri=str(copy), allow_local=True)))  # whole: it resolves
    (copy / "lakescore" / "pipeline.json").unlink()
    with pytest.raises(ModelError, match=r"logged with lakescore/pipeline\.json .* but the file is missing"):
        resolve_model(ModelConfig(uri=str(copy), allow_local=True))
