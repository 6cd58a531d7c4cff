"""Progress of long steps: while a step runs, log the active Spark stages' task counts now and then."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from pyspark import SparkContext

log = logging.getLogger("lakescore.progress")


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
