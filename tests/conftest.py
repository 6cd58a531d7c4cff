"""One SparkSession for the whole suite, a tiny demo model in a throwaway MLflow registry, and the
fixtures more than one test module uses (plain helpers are in tests/helpers.py)."""

from __future__ import annotations

import os
import sys
import time

import pytest

# Spark hands timestamps to Python in the process's local zone: pin it (and the JVM's, which
# inherits TZ) so expected values do not depend on where the suite runs.
os.environ["TZ"] = "UTC"
time.tzset()
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

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
        .config("spark.databricks.delta.snapshotPartitions", "2")  # as jobs.session's local defaults
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
    """What puts delta-spark on the suite's classpath: the jars ``make setup`` fetched into .jars/
    (or the folder LAKESCORE_DELTA_JARS names), as every LakeScore session takes them."""
    from jobs.tables.jars import native_conf

    try:
        return native_conf()
    except FileNotFoundError as err:
        raise pytest.UsageError(str(err)) from err


@pytest.fixture(params=ENGINES)
def engine(request, spark):
    """Each engine in turn (see tests.helpers.require_native for the native half)."""
    from tests.helpers import require_native

    if request.param == "native":
        require_native(spark)
    return request.param


@pytest.fixture
def native(spark):
    """For tests that need delta-spark itself (to write tables with its features, or to check the
    embedded engine against it)."""
    from tests.helpers import require_native

    require_native(spark)
    return "native"


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

    return mlflow.artifacts.download_artifacts(
        f"models:/{registry['name']}/{registry['version']}", dst_path=str(registry["home"] / "dl")
    )


@pytest.fixture
def demo(tmp_path, registry, spark):
    """Two days of demo input, 400 rows each, and the job's config over it: (tmp_path, conf, source)."""
    from tests.helpers import job_config, write_demo_input

    source = write_demo_input(tmp_path / "customers", days=2, rows_per_day=400)
    return tmp_path, job_config(tmp_path, registry), source
