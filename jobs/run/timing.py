"""Step timings and progress: each step logs when it starts and ends, and long ones log the active
Spark stages' task counts now and then."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from pyspark import SparkContext

log = logging.getLogger("lakescore.progress")
run_log = logging.getLogger("lakescore.run")  # where a step's start and end are logged


def _report(sc: SparkContext, what: str, started: float) -> None:
    tracker = sc.statusTracker()
    stages = [s for s in (tracker.getStageInfo(i) for i in tracker.getActiveStageIds()) if s is not None]
    done = sum(s.numCompletedTasks for s in stages)
    total = sum(s.numTasks for s in stages)
    log.info("%s: %.0fs, %d/%d tasks of %d active stage(s)", what, time.perf_counter() - started, done, total, len(stages))


@contextlib.contextmanager
def progress(sc: SparkContext, what: str, every: float = 15.0) -> Iterator[None]:
    """Log ``what`` with task progress every ``every`` seconds until the block ends."""
    stop = threading.Event()
    started = time.perf_counter()

    def loop() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):  # a progress line must never break the run
                _report(sc, what, started)

    thread = threading.Thread(target=loop, name="lakescore-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def timed(timings: dict[str, float], step: str, what: str) -> Iterator[None]:
    """Log ``what`` as it starts and ends, with progress lines between, and add its seconds to
    ``timings[step]`` (the stage's own dict, which it returns)."""
    run_log.info("%s ...", what)
    start = time.perf_counter()
    sc = SparkContext._active_spark_context
    with progress(sc, what) if sc is not None else contextlib.nullcontext():
        yield
    took = time.perf_counter() - start
    timings[step] = round(timings.get(step, 0.0) + took, 3)
    run_log.info("%s done in %.1fs", what, took)
