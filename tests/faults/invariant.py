"""The invariant every fault must leave intact, checked with delta-rs and pyarrow alone: none of
the project's engine code reads the tables here.

For every partition of the input: the scored and quarantine tables' rows of it come from one run
(their latest commits of the partition name the same ``lakescore.run_id``, and so do the rows),
their keys are disjoint and together exactly the input partition at the version that run read,
the ledger has a row for that run, and the stats table has that run's rows of the partition.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds
from deltalake import DeltaTable

KEY = "customer_id"


def _commits(path: Path) -> list[dict]:
    """Each commit's metadata, newest first: commitInfo keys (delta-rs) or userMetadata JSON (delta-spark)."""
    out = []
    for entry in DeltaTable(str(path)).history():
        meta = dict(entry)
        text = entry.get("userMetadata")
        if isinstance(text, str) and text.startswith("{"):
            meta.update(json.loads(text))
        out.append(meta)
    return out


def latest_run(path: Path, label: str) -> str | None:
    """The run named by the newest commit of partition ``label`` (None: never written)."""
    if not DeltaTable.is_deltatable(str(path)):
        return None
    for meta in _commits(path):
        if meta.get("lakescore.partition") == label:
            return meta.get("lakescore.run_id") or None
    return None


def _rows(path: Path, day, columns, version=None):
    if not DeltaTable.is_deltatable(str(path)):
        return []
    table = DeltaTable(str(path), version=version).to_pyarrow_dataset()
    return table.to_table(columns=columns, filter=ds.field("ds") == day).to_pylist()


@dataclass(frozen=True)
class State:
    run: str | None  # the run whose rows the partition holds
    scored: int
    quarantined: int


def check_partition(root: Path, day) -> State:
    """Assert the invariant for partition ``ds=day`` of the job under ``root``; return what it holds."""
    label = f"ds={day.isoformat()}"
    s_run, q_run = latest_run(root / "scored", label), latest_run(root / "quarantine", label)
    assert s_run == q_run, f"{label}: scores of run {s_run} beside the quarantine of run {q_run}"
    scored = _rows(root / "scored", day, [KEY, "run_id"])
    quarantined = _rows(root / "quarantine", day, [KEY, "run_id"])
    if s_run is None:
        assert not scored and not quarantined, f"{label}: rows with no publishing commit"
        return State(None, 0, 0)
    assert {r["run_id"] for r in scored + quarantined} <= {s_run}, f"{label}: rows of another run than {s_run}"
    meta = next(m for m in _commits(root / "scored") if m.get("lakescore.partition") == label)
    source = _rows(root / "customers", day, [KEY], version=int(meta["lakescore.input_version"]))
    s_keys = [r[KEY] for r in scored]
    q_keys = [r[KEY] for r in quarantined]
    assert not set(s_keys) & {k for k in q_keys if k is not None}, f"{label}: keys both scored and quarantined"
    assert sorted(s_keys + q_keys, key=repr) == sorted((r[KEY] for r in source), key=repr), f"{label}: rows in != out"
    runs = {r["run_id"] for r in DeltaTable(str(root / "runs")).to_pyarrow_table(columns=["run_id"]).to_pylist()}
    assert s_run in runs, f"{label}: run {s_run} is not in the ledger"
    stats = DeltaTable(str(root / "stats")).to_pyarrow_dataset()
    found = stats.to_table(columns=["run_id"], filter=(ds.field("run_id") == s_run) & (ds.field("partition") == label))
    assert found.num_rows > 0, f"{label}: no statistics of run {s_run}"
    return State(s_run, len(s_keys), len(q_keys))


def orphans_on_disk(table: Path, day) -> set[str]:
    """Parquet files of the partition's directory that no commit of the log adds or removes: what
    dead writes left (files a commit removed stay for time travel until vacuum, and are not these)."""
    from urllib.parse import unquote

    folder = table / f"ds={day.isoformat()}"
    on_disk = {f"{folder.name}/{f}" for f in os.listdir(folder) if f.endswith(".parquet")} if folder.exists() else set()
    named = set()
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line) if line.strip() else {}
            for kind in ("add", "remove"):
                if kind in action:
                    named.add(unquote(action[kind]["path"]))
    return on_disk - named


def ledger_statuses(root: Path) -> dict[str, list[str]]:
    """run -> the statuses of its ledger rows, in the order written."""
    rows = DeltaTable(str(root / "runs")).to_pyarrow_table(columns=["run_id", "status", "finished_at"]).to_pylist()
    out: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: (r["finished_at"] is not None, r["finished_at"] or 0)):
        out.setdefault(r["run_id"], []).append(r["status"])
    return out
