"""One SparkSession for the whole suite, a tiny demo model in a throwaway MLflow registry, and helpers."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

import pytest

# Spark hands timestamps to Python in the process's local zone: pin it (and the JVM's, which
# inherits TZ) so expected values do not depend on where the suite runs.
os.environ["TZ"] = "UTC"
time.tzset()
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

REPO = Path(__file__).resolve().parents[1]
ENGINES = ["embedded", "native"]


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    from jobs.session import REQUIRED_CONF
    from jobs.tables import register

    builder = (
        SparkSession.builder.master("local[2]")
        .appName("lakescore-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.showConsoleProgress", "false")
    )
    for key, value in REQUIRED_CONF.items():
        builder = builder.config(key, value)
    for key, value in native_engine_conf().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    register(session)
    yield session
    session.stop()


def native_engine_conf() -> dict[str, str]:
    """What puts delta-spark on the suite's classpath, so the native half of the engine tests runs:
    LAKESCORE_DELTA_JARS, a folder holding delta-spark's jars (delta-spark_2.13 and
    delta-storage), or LAKESCORE_DELTA_PACKAGES, Maven coordinates (needs network access)."""
    conf = {}
    jars = os.environ.get("LAKESCORE_DELTA_JARS")
    if jars:
        found = sorted(str(p) for p in Path(jars).glob("*.jar"))
        if not found:
            raise pytest.UsageError(f"LAKESCORE_DELTA_JARS={jars}: no .jar files there")
        conf["spark.jars"] = ",".join(found)
    if os.environ.get("LAKESCORE_DELTA_PACKAGES"):
        conf["spark.jars.packages"] = os.environ["LAKESCORE_DELTA_PACKAGES"]
    if conf:
        conf["spark.sql.extensions"] = "io.delta.sql.DeltaSparkSessionExtension"
        conf["spark.sql.catalog.spark_catalog"] = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    return conf


@pytest.fixture(params=ENGINES)
def engine(request, spark):
    """Each engine in turn; native is skipped where delta-spark's jars are not on the classpath."""
    from jobs.tables import native_available

    if request.param == "native" and not native_available(spark):
        pytest.skip("delta-spark jars are not on the classpath: set LAKESCORE_DELTA_JARS (see README: native engine)")
    return request.param


@pytest.fixture(scope="session")
def registry(tmp_path_factory, spark):
    """A local MLflow registry holding the demo churn model as version 1 with alias @champion.

    The trainer runs the preprocessing pipeline on the suite's SparkSession (it would start its own otherwise).
    """
    import mlflow

    from jobs.demo.train import train_and_register

    home = tmp_path_factory.mktemp("mlflow")
    tracking = f"sqlite:///{home / 'mlflow.db'}"
    trained = train_and_register(tracking, str(home / "artifacts"), rows=3000, max_iter=15)
    mlflow.set_tracking_uri(tracking)
    return {"tracking_uri": tracking, "name": trained.name, "version": trained.version, "run_id": trained.run_id, "home": home}


@pytest.fixture(scope="session")
def model_dir(registry):
    """The demo model's files, downloaded once: what the scoring transform loads."""
    import mlflow

    return mlflow.artifacts.download_artifacts(f"models:/{registry['name']}/{registry['version']}", dst_path=str(registry["home"] / "dl"))


def write_demo_input(path: Path, days: int, rows_per_day: int, start: dt.date = dt.date(2024, 6, 1), bad_fraction: float = 0.05):
    """The demo input (delta-rs writes it, as another system would) and the pandas frame it came from."""
    from deltalake import write_deltalake

    from jobs.demo.data import input_table

    table = input_table(days, rows_per_day, start, bad_fraction=bad_fraction)
    write_deltalake(str(path), table, mode="overwrite", partition_by=["ds"])
    return table.to_pandas()
