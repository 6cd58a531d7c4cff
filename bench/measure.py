"""Timing shared by the benchmarks: wall seconds and the CPU seconds of this process tree."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pyspark.sql import DataFrame


def cpu_seconds() -> float | None:
    """CPU seconds used so far by this process and its descendants (the JVM, the Python workers).

    Wall time on a machine shared with other users measures their load as much as ours; CPU time
    does not, so the table shows both. Linux only (None elsewhere): it reads /proc.
    """
    if not os.path.isdir("/proc"):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        fields = stats.get(pid)
        if fields:  # utime, stime, and the same for children already reaped
            total += sum(int(v) for v in fields[11:15]) / tick
    return total


def timed(action: Callable[[], object]) -> tuple[float, float | None]:
    """(wall seconds, CPU seconds) of one call."""
    cpu, start = cpu_seconds(), time.perf_counter()
    action()
    wall, after = time.perf_counter() - start, cpu_seconds()
    return wall, (after - cpu if cpu is not None and after is not None else None)


def noop(df: DataFrame) -> None:
    df.write.format("noop").mode("overwrite").save()


def cached_frames(spark, frame, warm_rows: int = 20_000) -> tuple[DataFrame, DataFrame]:
    """``frame`` (pandas) as a cached Spark frame with one partition per core, and its first
    ``warm_rows`` likewise: a run over the small one starts every Python worker and loads the
    model, so the timed run over the big one measures scoring alone."""
    cores = spark.sparkContext.defaultParallelism
    df = spark.createDataFrame(frame).repartition(cores).cache()
    df.count()
    warm = spark.createDataFrame(frame.head(warm_rows)).repartition(cores).cache()
    warm.count()
    return df, warm
