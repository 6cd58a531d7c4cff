"""What more than one test module needs, as plain functions and constants (the fixtures are in
conftest.py). Test modules import from here, never from one another: importing a test module
collects its tests a second time.

Light to import: the writer processes of the concurrency tests import it too."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pyspark.sql import types as T

REPO = Path(__file__).resolve().parents[1]
D1, D2 = dt.date(2024, 6, 1), dt.date(2024, 6, 2)


def require_native(spark) -> None:
    """Skip a native-engine test where delta-spark's jars are absent (a machine that could not reach
    Maven Central), saying so; with LAKESCORE_REQUIRE_NATIVE=1 (CI) fail it instead, so a
    submission can never pass with the native half unrun."""
    from jobs.tables import native_available

    if native_available(spark):
        return
    why = "delta-spark's jars are not on the classpath: run make setup (see README: Delta engines)"
    if os.environ.get("LAKESCORE_REQUIRE_NATIVE") == "1":
        pytest.fail(why + "; LAKESCORE_REQUIRE_NATIVE=1 forbids skipping the native engine")
    pytest.skip(why)


# --- the demo job ------------------------------------------------------------------------------

ALLOWED_PLANS = {"basic", "standard", "premium"}


def write_demo_input(path: Path, days: int, rows_per_day: int, start: dt.date = D1, bad_fraction: float = 0.05):
    """The demo input (delta-rs writes it, as another system would) and the pandas frame it came from."""
    from deltalake import write_deltalake

    from jobs.demo.data import input_table

    table = input_table(days, rows_per_day, start, bad_fraction=bad_fraction)
    write_deltalake(str(path), table, mode="overwrite", partition_by=["ds"])
    return table.to_pandas()


def drawn_labels(day: dt.date, rows: int, bad_fraction: float = 0.05) -> pd.DataFrame:
    """The ``churned`` label the demo generator drew for each customer of ``day`` (write_demo_input
    draws the same customers, ``rows`` a day from D1, and drops it)."""
    from jobs.demo.data import customers

    frame = customers(rows, seed=100 + (day - D1).days, ds=day, bad_fraction=bad_fraction)
    frame = frame[frame["customer_id"].notna()].reset_index(drop=True)
    return pd.DataFrame({"customer_id": frame["customer_id"].astype("int64"), "ds": day, "churned": frame["churned"]})


def write_labels(path, frame: pd.DataFrame, mode: str) -> None:
    """A labels table as a label feed writes it (delta-rs): customer_id, ds, churned, by ds."""
    import pyarrow as pa
    from deltalake import write_deltalake

    schema = pa.schema([pa.field("customer_id", pa.int64()), pa.field("ds", pa.date32()), pa.field("churned", pa.int64())])
    write_deltalake(str(path), pa.Table.from_pandas(frame, schema=schema, preserve_index=False), mode=mode, partition_by=["ds"])


def job_config(tmp_path, registry, **changes) -> str:
    """The shipped demo config with every table under tmp_path and the test registry's model: its path."""
    conf = yaml.safe_load((REPO / "conf/jobs/churn.yaml").read_text())
    conf["input"]["path"] = str(tmp_path / "customers")
    conf["output"] = {k: str(tmp_path / k) for k in ("scored", "quarantine", "stats", "runs")} | {"passthrough": ["region"]}
    conf["model"]["tracking_uri"] = registry["tracking_uri"]
    conf["model"].pop("challengers", None)  # the suite's registry has no @challenger: tests that want one say so
    conf["spark"] = {}
    conf.update(changes)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(conf))
    return str(path)


def expected_quarantine(day_rows: pd.DataFrame) -> pd.Series:
    """The demo rules, computed with pandas: what must be quarantined."""
    r = day_rows
    return (
        r["customer_id"].isna()
        | (r["tenure_months"] < 0)
        | (r["tenure_months"] > 1200)
        | (r["monthly_charges"] < 0)
        | np.isinf(r["monthly_charges"])
        | (r["total_charges"] < 0)
        | np.isinf(r["total_charges"])
        | (r["plan"].notna() & ~r["plan"].isin(ALLOWED_PLANS))
    )


def run_job(*args, cwd=REPO) -> subprocess.CompletedProcess:
    """``python -m jobs.score`` in its own process, as a scheduler runs it."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    return subprocess.run(
        [sys.executable, "-m", "jobs.score", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def delta(path, version=None, **filters) -> pd.DataFrame:
    """A Delta table as delta-rs reads it, as pandas (at a version, if given), keeping the rows whose
    columns equal the filters."""
    from deltalake import DeltaTable

    frame = DeltaTable(str(path), version=version).to_pandas()
    for column, value in filters.items():
        frame = frame[frame[column] == value]
    return frame


def ledger(path) -> pd.DataFrame:
    """The runs ledger's final rows, one per run, oldest run first: a run's ``running`` row (written
    when it starts) is dropped once its final row is there."""
    frame = delta(path)
    final = frame[frame["status"] != "running"]
    running = frame[(frame["status"] == "running") & ~frame["run_id"].isin(final["run_id"])]
    return pd.concat([final, running]).sort_values("started_at").reset_index(drop=True)


# --- small tables for the engine tests ---------------------------------------------------------

# ids and names by day: the tables the concurrency tests race, fail and kill writers on
ID_NAME_DS = T.StructType(
    [T.StructField("id", T.LongType()), T.StructField("name", T.StringType()), T.StructField("ds", T.DateType())]
)
# ids, a number and a name that is null every third row, by day: what the round-trip tests write
ID_X_NAME_DS = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("x", T.DoubleType()),
        T.StructField("name", T.StringType()),
        T.StructField("ds", T.DateType()),
    ]
)


def id_name_rows(day, ids) -> list[tuple]:
    """Rows of ID_NAME_DS: each id named n<id>."""
    return [(i, f"n{i}", day) for i in ids]


def id_x_name_rows(day, n, offset=0) -> list[tuple]:
    """n rows of ID_X_NAME_DS with ids from offset; the name of every third is null."""
    return [(offset + i, i * 1.5, f"n{i}" if i % 3 else None, day) for i in range(n)]


def append_two_days(spark, path, engine, first: int, second: int, second_offset: int = 0) -> None:
    """Append ``first`` rows of D1 and ``second`` rows of D2 (ids from ``second_offset``), partitioned by ds."""
    from jobs.tables import write_table

    rows = id_x_name_rows(D1, first) + id_x_name_rows(D2, second, second_offset)
    write_table(spark.createDataFrame(rows, ID_X_NAME_DS), path, engine, mode="append", partition_by=["ds"])


def base_table(spark, path) -> None:
    """An ID_NAME_DS table (ids 1 and 2 on D1, 3 on D2), written by the embedded engine in one commit."""
    from jobs.tables import write_table

    rows = id_name_rows(D1, [1, 2]) + id_name_rows(D2, [3])
    write_table(spark.createDataFrame(rows, ID_NAME_DS), path, "embedded", mode="append", partition_by=["ds"])


def delta_rs_rows(path, version=None, storage_options=None) -> list[tuple]:
    """The table's rows as delta-rs (not Spark) reads them: tuples of Python values in column order
    (nulls as None), sorted."""
    from deltalake import DeltaTable

    table = DeltaTable(str(path), version=version, storage_options=storage_options).to_pyarrow_table()
    return sorted(tuple(row.values()) for row in table.to_pylist())


def parquet_on_disk(path) -> set[str]:
    """Every Parquet file under the table's folder, relative to it: what a write left on disk."""
    return {os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs if f.endswith(".parquet")}


def overwrite_at_once(spark, tmp_path, start_writers, day_a, day_b, conflict="fail"):
    """Writers a (ids 10 and 11) and b (ids 20 to 22), each replacing one day's partition of a
    base_table at tmp_path/t, started at once by start_writers (the concurrency tests' writer
    processes or spark-submits): (the table's path, its version before, a's and b's outcome)."""
    from deltalake import DeltaTable

    path = str(tmp_path / "t")
    base_table(spark, path)
    before = DeltaTable(path).version()
    spec = {"mode": "overwrite", "conflict": conflict}
    a, b = start_writers(
        tmp_path,
        {"name": "a", "ids": [10, 11], "day": day_a.isoformat(), **spec},
        {"name": "b", "ids": [20, 21, 22], "day": day_b.isoformat(), **spec},
    )
    return path, before, a, b


def train_rival(registry, name: str, home: Path):
    """A challenger in the suite's registry: its own registered model ``name`` with @challenger,
    trained like the suite's champion on another sample with another learning rate, so its fitted
    values and scores differ from the champion's."""
    from jobs.demo.train import train_and_register

    return train_and_register(
        registry["tracking_uri"],
        str(home / "artifacts"),
        name=name,
        alias="challenger",
        rows=3000,
        max_iter=15,
        seed=11,
        learning_rate=0.05,
    )
