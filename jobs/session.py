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
    conf = {**(LOCAL_DEFAULTS if (master or "").startswith("local") else {}), **dict(cfg.conf), **REQUIRED_CONF}
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
