"""Where delta-spark's jars come from, and the Spark settings that turn the native engine on.

``make setup`` fetches the jars of ``conf/maven/pom.xml`` into ``.jars/`` at the repo root;
``LAKESCORE_DELTA_JARS`` names another folder (a cluster image's, an offline mirror's). Every
way LakeScore starts Spark takes them from here: a session the job builds itself, the test
suite's, and ``make run`` / ``make cluster-test`` through ``python -m jobs.tables.jars``, which
prints the matching ``spark-submit`` options. Nothing is downloaded at run time.

``python -m jobs.tables.jars`` prints ``--driver-class-path A:B --conf k=v ...`` for a local
master, ``--cluster`` the same with ``--jars A,B`` (nothing when there are no jars, so the job
falls back to the embedded engine); ``--list`` prints the jars one per line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DELTA_VERSION = "4.4.0"  # the jar pinned in conf/maven/pom.xml (no 4.4.1 jar was published)
DELTA_PACKAGES = f"io.delta:delta-spark_2.13:{DELTA_VERSION},io.delta:delta-storage:{DELTA_VERSION}"
HADOOP_AWS_PACKAGE = "org.apache.hadoop:hadoop-aws:3.5.0"  # pyspark 4.2's Hadoop

# SQL commands (DESCRIBE HISTORY, OPTIMIZE, RESTORE, ...) and DeltaTable need both
DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

REPO_JARS = Path(__file__).resolve().parents[2] / ".jars"


def jars_dir() -> Path | None:
    """The folder holding delta-spark's jars, or None when there is none."""
    named = os.environ.get("LAKESCORE_DELTA_JARS")
    if named:
        folder = Path(named)
        if not any(folder.glob("*.jar")):
            raise FileNotFoundError(f"LAKESCORE_DELTA_JARS={named}: no .jar files there")
        return folder
    return REPO_JARS if any(REPO_JARS.glob("delta-spark_*.jar")) else None


def delta_jars() -> list[str]:
    folder = jars_dir()
    return sorted(str(p) for p in folder.glob("*.jar")) if folder else []


def native_conf() -> dict[str, str]:
    """Spark settings that load delta-spark from the jars folder in a local session (the driver's
    JVM is the only one); empty when there are no jars.

    The driver's class path, not ``spark.jars``: Spark copies ``spark.jars`` into every session's
    temp folder to serve them to executors, 0.7 GB with the AWS SDK bundle, for executors that
    in local mode share the driver's JVM anyway.
    """
    jars = delta_jars()
    return {"spark.driver.extraClassPath": os.pathsep.join(jars), **DELTA_SQL_CONF} if jars else {}


def submit_args(cluster: bool = False) -> list[str]:
    """The same settings as ``spark-submit`` options (a submitted driver's JVM is already running
    when the job's Python starts, so its class path must be given on the command line). With
    ``cluster``, ``--jars``: executors on other hosts get the jars from the driver."""
    jars = delta_jars()
    if not jars:
        return []
    args = ["--jars", ",".join(jars)] if cluster else ["--driver-class-path", os.pathsep.join(jars)]
    for key, value in DELTA_SQL_CONF.items():
        args += ["--conf", f"{key}={value}"]
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        print("\n".join(delta_jars()))
    else:
        print(" ".join(submit_args(cluster="--cluster" in argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
