"""Building the SparkSession a job runs in, and putting it away again."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shlex
import sys
from collections.abc import Iterator, Mapping

from pyspark import SparkConf, SparkContext
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
# On every master, unless the config or the launch says otherwise: the Spark UI listens on every
# interface (0.0.0.0:4040, SPARK_LOCAL_IP aside), showing the job's settings, SQL and data to
# whoever reaches the host. A batch job needs no UI; its event log, if enabled, keeps the history.
DEFAULTS = {"spark.ui.enabled": "false"}
LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "4g",
    "spark.ui.showConsoleProgress": "false",
    # delta-spark replays a table's log in 50 partitions by default, sized for clusters: on a
    # local master the task overhead dominates (a rerun's scored write took 6.2 s, 2.7 s with 2)
    "spark.databricks.delta.snapshotPartitions": "2",
}


def _submit_args_conf(args: str) -> dict[str, str]:
    """The ``--conf key=value`` settings of a spark-submit command line (``PYSPARK_SUBMIT_ARGS``)."""
    words = shlex.split(args)
    settings = [w.split("=", 1)[1] for w in words if w.startswith("--conf=")]
    settings += [value for flag, value in itertools.pairwise(words) if flag in ("--conf", "-c")]
    return dict(kv.split("=", 1) for kv in settings if "=" in kv)


def _defaults_file_conf() -> dict[str, str]:
    """``spark-defaults.conf`` of ``SPARK_CONF_DIR`` (else ``SPARK_HOME/conf``), as spark-submit reads it."""
    home = os.environ.get("SPARK_HOME")
    folder = os.environ.get("SPARK_CONF_DIR") or (os.path.join(home, "conf") if home else "")
    path = os.path.join(folder, "spark-defaults.conf")
    if not folder or not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    pairs = [re.split(r"[\s=:]+", line, maxsplit=1) for line in lines if line and not line.startswith("#")]
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def launch_conf() -> dict[str, str]:
    """Spark settings given outside the job config, which the job must not override: a running
    JVM's (spark-submit's ``--conf`` and spark-defaults.conf reach it as system properties) or,
    before pyspark launches one, spark-defaults.conf and ``PYSPARK_SUBMIT_ARGS``'s ``--conf``."""
    if SparkContext._jvm is not None or "PYSPARK_GATEWAY_PORT" in os.environ:
        SparkContext._ensure_initialized()  # connects to spark-submit's JVM; launches none
        return dict(SparkConf().getAll())
    return {**_defaults_file_conf(), **_submit_args_conf(os.environ.get("PYSPARK_SUBMIT_ARGS", ""))}


def session_conf(
    master: str | None, user: Mapping[str, str], launched: Mapping[str, str], native: Mapping[str, str]
) -> dict[str, str]:
    """What the session builder is given: LakeScore's defaults where neither the job config
    (``user``) nor the launch (``launched``) sets the key, then the engine's jars, the config, and
    the settings the job depends on."""
    defaults = {**DEFAULTS, **(LOCAL_DEFAULTS if (master or "").startswith("local") else {})}
    return {**{k: v for k, v in defaults.items() if k not in launched}, **native, **user, **REQUIRED_CONF}


def ui_enabled(conf: Mapping[str, str], launched: Mapping[str, str]) -> bool:
    """Whether the session will start its UI (Spark's default, true, only when nobody set it)."""
    return str({**launched, **conf}.get("spark.ui.enabled", "true")).strip().lower() == "true"


def _bind_ui(master: str | None, starts_jvm: bool) -> None:
    """With the UI asked for, keep it off the network where that is safe: a local master whose JVM
    this process starts binds to loopback unless ``SPARK_LOCAL_IP`` says where (the UI binds
    there, or on every interface). Elsewhere the driver must be reachable: only say so."""
    if "SPARK_LOCAL_IP" in os.environ:
        log.info("spark.ui.enabled: the Spark UI binds to SPARK_LOCAL_IP=%s", os.environ["SPARK_LOCAL_IP"])
    elif starts_jvm and (master or "").startswith("local"):
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        log.info("spark.ui.enabled: the Spark UI binds to 127.0.0.1 (set SPARK_LOCAL_IP to bind elsewhere)")
    else:
        log.warning("spark.ui.enabled: the Spark UI listens on every interface of this host (set SPARK_LOCAL_IP to limit it)")


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
    launched = launch_conf()
    conf = session_conf(master, dict(cfg.conf), launched, native)
    if ui_enabled(conf, launched):
        _bind_ui(master, starts_jvm=SparkContext._jvm is None)
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
