"""Choosing partitions before Spark starts: ranges, --since-last-run, resumable backfills, --dry-run."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from jobs.run.partition_spec import PartitionError
from jobs.run.selection import describe, published, select

SCHEMA = pa.schema([pa.field("customer_id", pa.int64()), pa.field("x", pa.float64()), pa.field("ds", pa.date32())])


def _input(path, days, mode="append", start=dt.date(2024, 6, 1)):
    from deltalake import write_deltalake

    rows = [(i, float(i), start + dt.timedelta(days=d)) for d in days for i in range(3)]
    table = pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], schema=SCHEMA)
    write_deltalake(str(path), table, mode=mode, partition_by=["ds"])


def _publish(scored, label, model_version="1", config_hash="h1", input_version=0, run_id="r1", sections=None):
    """A commit of the scored table as the runner makes it: commit info says what was published."""
    from deltalake import CommitProperties, write_deltalake

    table = pa.table({"customer_id": [1], "ds": [dt.date.fromisoformat(label.split("=")[1])]})
    metadata = {
        "lakescore.run_id": run_id,
        "lakescore.partition": label,
        "lakescore.model_version": model_version,
        "lakescore.config_hash": config_hash,
        "lakescore.input_version": str(input_version),
    }
    if sections is not None:
        metadata["lakescore.config_sections"] = json.dumps(sections)
    write_deltalake(
        str(scored), table, mode="append", partition_by=["ds"], commit_properties=CommitProperties(custom_metadata=metadata)
    )


def test_range_selects_the_input_partitions_between_from_and_to_oldest_first(tmp_path):
    _input(tmp_path / "in", [4, 0, 2, 1, 3])
    got = select(str(tmp_path / "in"), ["ds"], str(tmp_path / "scored"), start="2024-06-02", end="2024-06-04")
    assert got.partitions == ("ds=2024-06-02", "ds=2024-06-03", "ds=2024-06-04")
    assert got.files["ds=2024-06-03"][0] == 1 and got.files["ds=2024-06-03"][1] > 0


def test_open_ended_range_runs_to_the_newest_partition(tmp_path):
    _input(tmp_path / "in", [0, 1, 2])
    assert select(str(tmp_path / "in"), ["ds"], str(tmp_path / "s"), start="2024-06-02").partitions == (
        "ds=2024-06-02",
        "ds=2024-06-03",
    )


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2024-06-03", "2024-06-01", "is after --to"),
        ("2024-13-01", None, "not a valid date"),
        ("yesterday", None, "not a valid date"),
    ],
)
def test_bad_range_is_a_usage_error_naming_the_argument(tmp_path, start, end, message):
    _input(tmp_path / "in", [0, 1])
    with pytest.raises(PartitionError, match=message):
        select(str(tmp_path / "in"), ["ds"], str(tmp_path / "s"), start=start, end=end)


def test_named_partition_missing_from_the_input_is_refused(tmp_path):
    _input(tmp_path / "in", [0])
    with pytest.raises(PartitionError, match="has no partition ds=2024-06-09"):
        select(str(tmp_path / "in"), ["ds"], str(tmp_path / "s"), partitions=["ds=2024-06-09"])


def test_published_reads_the_latest_commit_per_partition(tmp_path):
    _publish(tmp_path / "s", "ds=2024-06-01", model_version="1", run_id="a")
    _publish(tmp_path / "s", "ds=2024-06-02", model_version="1", run_id="b")
    _publish(tmp_path / "s", "ds=2024-06-01", model_version="2", run_id="c", input_version=3)
    got = published(str(tmp_path / "s"))
    assert {k: (v.run_id, v.model_version, v.input_version) for k, v in got.items()} == {
        "ds=2024-06-01": ("c", "2", 3),
        "ds=2024-06-02": ("b", "1", 0),
    }


def test_since_last_run_picks_new_and_changed_partitions_only(tmp_path):
    inp, scored = tmp_path / "in", tmp_path / "s"
    _input(inp, [0, 1, 2])  # version 0
    _publish(scored, "ds=2024-06-01", input_version=0)
    _publish(scored, "ds=2024-06-02", input_version=0)
    _input(inp, [1])  # version 1: more rows land in 06-02
    _input(inp, [3])  # version 2: a new day
    got = select(str(inp), ["ds"], str(scored), since_last_run=True)
    assert got.partitions == ("ds=2024-06-02", "ds=2024-06-03", "ds=2024-06-04")
    assert [label for label, _ in got.skipped] == ["ds=2024-06-01"]


def test_resumed_backfill_skips_what_this_model_and_config_already_scored(tmp_path):
    inp, scored = tmp_path / "in", tmp_path / "s"
    _input(inp, [0, 1, 2, 3])
    _publish(scored, "ds=2024-06-01", model_version="7", config_hash="h1")
    _publish(scored, "ds=2024-06-02", model_version="6", config_hash="h1")  # an older model: rescore
    _publish(scored, "ds=2024-06-03", model_version="7", config_hash="other")  # another config: rescore
    got = select(
        str(inp), ["ds"], str(scored), start="2024-06-01", end="2024-06-04", model_version="7", config_hash="h1", resume=True
    )
    assert got.partitions == ("ds=2024-06-02", "ds=2024-06-03", "ds=2024-06-04")
    assert got.skipped[0][0] == "ds=2024-06-01" and "model version 7" in got.skipped[0][1]
    forced = select(str(inp), ["ds"], str(scored), start="2024-06-01", end="2024-06-04", model_version="7", config_hash="h1")
    assert forced.partitions[0] == "ds=2024-06-01"


def test_the_plan_says_why_each_partition_is_scored(tmp_path):
    inp, scored = tmp_path / "in", tmp_path / "s"
    _input(inp, [0, 1, 2, 3])
    now = {"rules": "r2", "model": "m1"}
    _publish(scored, "ds=2024-06-01", model_version="7", config_hash="old", sections={"rules": "r1", "model": "m1"})
    _publish(scored, "ds=2024-06-02", model_version="6", config_hash="h1", sections=now)
    _input(inp, [2], mode="append")  # more files in ds=2024-06-03 after nothing was published there
    got = select(
        str(inp), ["ds"], str(scored), start="2024-06-01", model_version="7", config_hash="h1", resume=True, config_sections=now
    )
    assert got.reasons == {
        "ds=2024-06-01": "config changed in rules",
        "ds=2024-06-02": "model version 6 -> 7",
        "ds=2024-06-03": "never published",
        "ds=2024-06-04": "never published",
    }
    assert "(config changed in rules)" in describe(got, "models:/m@champion")
