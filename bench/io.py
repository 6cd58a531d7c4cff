"""Table I/O throughput on this machine: both Delta engines against Spark's own Parquet.

The same cached frame (longs, doubles, strings, a date partition column) is written through
``jobs.tables.write_table`` on each engine (native: delta-spark; embedded: delta-rs) and through
``df.write.partitionBy(...).parquet``, then read back in full into the ``noop`` sink through
``read_table`` and ``spark.read.parquet``. Spark's Parquet is the yardstick because it is the fastest path Spark has
to the same bytes; issue 3 asks the embedded engine for at least half its speed both ways.

On a local table the embedded engine's read is delta-rs's plan decoded by Spark's Parquet reader
(see ``jobs.tables.reading``); the extra ``python reader`` line is the path object storage takes,
the Python data source, forced onto the same local table.

``python -m bench.io --rows 1000000``
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.measure import noop, timed
from jobs.config import SparkConfig
from jobs.logs import setup_logging
from jobs.session import spark_session
from jobs.tables import native_available, read_table, write_table

TARGET = 0.5  # issue 3: embedded >= 0.5x Spark Parquet, reads and writes
PARTITIONS = 5  # distinct dates in the partition column
PYTHON_READER = "embedded python reader"


def synthetic(spark: SparkSession, rows: int, slices: int) -> DataFrame:
    """``rows`` rows x 20 columns: id, 5 longs, 7 doubles, 6 strings (some null), a date ``ds``.

    Values come from the row id (no random generator), so every run writes the same bytes.
    """
    idx = F.col("id")
    longs = [((idx * (2 * k + 7919)) % (10 ** (k + 3))).alias(f"l{k}") for k in range(5)]
    doubles = [(((idx * (k + 13)) % 100_003) / F.lit(97.0 + k)).alias(f"d{k}") for k in range(7)]
    strings = [
        F.when(idx % (k + 11) == 0, F.lit(None))
        .otherwise(F.concat(F.lit(f"s{k}_"), (idx % (50 * 10**k)).cast("string")))
        .alias(f"s{k}")
        for k in range(6)
    ]
    ds = F.date_add(F.lit("2024-06-01").cast("date"), (idx % PARTITIONS).cast("int")).alias("ds")
    return spark.range(0, rows, numPartitions=slices).select(idx, *longs, *doubles, *strings, ds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.io", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=2, help="best of this many rounds per method")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--dir", default=None, help="where the tables go (default: a temporary directory, removed after)")
    args = p.parse_args(argv)
    setup_logging()
    logging.getLogger("lakescore").setLevel(logging.WARNING)

    home = args.dir or tempfile.mkdtemp(prefix="lakescore-bench-io-")
    delta_path, native_path, parquet_path = (os.path.join(home, name) for name in ("delta", "native", "parquet"))
    conf = (("spark.driver.memory", "6g"),)
    try:
        with spark_session(SparkConfig(master=args.master, app_name="lakescore-bench-io", conf=conf)) as spark:
            cores = spark.sparkContext.defaultParallelism
            df = synthetic(spark, args.rows, cores).cache()
            df.count()

            native = native_available(spark)
            if not native:
                print("bench: delta-spark's jars are not on the classpath (make setup): the native engine is not measured")
            methods: list[tuple[str, str, Callable[[], object]]] = [
                ("write", "embedded", lambda: write_table(df, delta_path, "embedded", mode="overwrite", partition_by=["ds"])),
                *(
                    [("write", "native", lambda: write_table(df, native_path, "native", mode="overwrite", partition_by=["ds"]))]
                    if native
                    else []
                ),
                ("write", "spark parquet", lambda: df.write.mode("overwrite").partitionBy("ds").parquet(parquet_path)),
                ("read", "embedded", lambda: noop(read_table(spark, delta_path, "embedded"))),
                *([("read", "native", lambda: noop(read_table(spark, native_path, "native")))] if native else []),
                ("read", "spark parquet", lambda: noop(spark.read.parquet(parquet_path))),
                ("read", PYTHON_READER, lambda: noop(read_table(spark, delta_path, "embedded", embedded_reader="python"))),
            ]
            timings: dict[tuple[str, str], list[tuple[float, float | None]]] = {(d, m): [] for d, m, _ in methods}
            # rounds interleave the methods, so a burst of load from the machine's other users
            # hits both sides of a comparison rather than one
            for _ in range(args.rounds):
                for direction, method, action in methods:
                    timings[(direction, method)].append(timed(action))
            for path, engine in [(delta_path, "embedded"), *([(native_path, "native")] if native else [])]:
                check = read_table(spark, path, engine).count()
                if check != args.rows:
                    raise RuntimeError(f"bench: {path} holds {check} rows, expected {args.rows}")
            best = {key: min(w for w, _ in ts) for key, ts in timings.items()}
            cpu = {key: None if None in (c for _, c in ts) else min(c for _, c in ts) for key, ts in timings.items()}
    finally:
        if args.dir is None:
            shutil.rmtree(home, ignore_errors=True)

    print(
        f"\nI/O benchmark: {args.rows:,} rows x 20 columns, {PARTITIONS} partitions, {args.master}, "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}; "
        f"best of {args.rounds} rounds"
    )
    print(f"{'method':<28}{'seconds':>10}{'rows/s':>14}{'vs parquet':>17}{'CPU seconds':>14}{'CPU ratio':>12}")
    for direction in ("write", "read"):
        spark_secs, spark_cpu = best[(direction, "spark parquet")], cpu[(direction, "spark parquet")]
        for method in ("native", "embedded", "spark parquet", PYTHON_READER):
            if (direction, method) not in best:
                continue
            secs, used = best[(direction, method)], cpu[(direction, method)]
            ratio = spark_secs / secs
            cpu_ratio = "" if used is None or spark_cpu is None else f"{spark_cpu / used:.2f}x"
            used_text = "" if used is None else f"{used:.2f}"
            print(
                f"{direction + ' ' + method:<28}{secs:>10.2f}{args.rows / secs:>14,.0f}{ratio:>16.2f}x{used_text:>14}{cpu_ratio:>12}"
            )
    print("(seconds: best wall time; CPU seconds: least CPU time of the JVM and Python workers, all cores)")
    print()
    for direction in ("write", "read"):
        ratio = best[(direction, "spark parquet")] / best[(direction, "embedded")]
        verdict = "PASS" if ratio >= TARGET else "MISS"
        print(f"target (issue 3): embedded >= {TARGET}x Spark Parquet for {direction}s -> {ratio:.2f}x {verdict}")
    if ("read", "native") in best:
        for direction in ("write", "read"):
            ratio = best[(direction, "native")] / best[(direction, "embedded")]
            print(f"embedded / native for {direction}s: {ratio:.2f}x (above 1: embedded faster)")
    python_ratio = best[("read", "spark parquet")] / best[("read", PYTHON_READER)]
    print(f"(object storage reads take the Python reader: {python_ratio:.2f}x Spark Parquet on this local table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
