"""Building the SparkSession a job runs in, and putting it away again."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from pyspark.sql import SparkSession

from jobs.config import SparkConfig
from jobs.tables import register
from jobs.tables.jars import native_conf

log = logging.getLogger("lakescore.session")

# Settings the job depends on, whatever the profile says.
REQUIRED_CONF = {
    "spark.sql.python.filterPushdown.enabled": "true",  # partition pruning in the embedded engine
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}
LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "4g",
    "spark.ui.showConsoleProgress": "false",
    # delta-spark replays a table's log in 50 partitions by default, sized for clusters: on a
    # local master the task overhead dominates (a rerun's scored write took 6.2 s, 2.7 s with 2)
    "spark.databricks.delta.snapshotPartitions": "2",
}


def _python() -> None:
    # Workers must run this environment's python, not the system one (which has no pandas).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@contextlib.contextmanager
def spark_session(cfg: SparkConfig) -> Iterator[SparkSession]:
    """Yield a session configured for LakeScore.

    Under spark-submit (or any caller that already has a session) the existing session is used
    and left running: the job never stops a session it did not create.
    """
    _python()
    existing = SparkSession.getActiveSession()
    if existing is not None:
        for key, value in {**dict(cfg.conf), **REQUIRED_CONF}.items():
            with contextlib.suppress(Exception):  # static confs cannot change on a live session
                existing.conf.set(key, value)
        register(existing)
        yield existing
        return

    builder = SparkSession.builder.appName(cfg.app_name)
    submitted = "spark.master" in os.environ.get("PYSPARK_SUBMIT_ARGS", "") or os.environ.get("SPARK_ENV_LOADED")
    master = cfg.master or (None if submitted else "local[*]")
    if master:
        builder = builder.master(master)
    # a session built here (not under spark-submit) starts its own JVM, so delta-spark's jars can
    # still go on its classpath; under spark-submit they come from --jars (jobs.tables.jars)
    native = {} if submitted else native_conf()
    conf = {**(LOCAL_DEFAULTS if (master or "").startswith("local") else {}), **native, **dict(cfg.conf), **REQUIRED_CONF}
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("LAKESCORE_SPARK_LOG_LEVEL", "WARN"))
    register(spark)
    log.info("spark %s master=%s app=%s", spark.version, spark.sparkContext.master, cfg.app_name)
    try:
        yield spark
    finally:
        spark.stop()
