"""Test-only fault injection: make the job die hard, or wait, at a named point of a run.

``LAKESCORE_FAULT=<point>`` kills the job's whole process group with SIGKILL when the run reaches
``point`` (the driver, its JVM and the Python workers die at once, as on a lost machine; nothing
runs after it, no ``finally``). ``LAKESCORE_PAUSE=<point>:<dir>`` makes the run write
``<dir>/<pid>.waiting`` at ``point`` and wait until ``<dir>/go`` exists (two runs held at the same
point, then released together). Unset, both cost one dictionary lookup per point.

The points, in the order a run passes them (``POINTS``), are the step boundaries of
docs/DESIGN.md#publication; tests/faults/ kills the job at each and checks the tables.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger("lakescore.faults")

POINTS = (
    "planned",  # the model is resolved, the running ledger row written; no partition started
    "claimed",  # a partition's publication number is read; nothing computed yet
    "stats_written",  # the partition's statistics are committed; nothing published
    "quarantine_committed",  # the quarantine partition is committed, the scores not yet
    "scores_committed",  # both tables hold the partition; orphans not yet swept
    "partitions_done",  # every partition is done; the report and the final ledger row not yet
    "data_file_written",  # inside a write task (embedded engine): one data file is on storage, uncommitted
)


# The job's process group, fixed in the driver before Spark starts, so a Python worker (which
# pyspark's daemon puts in a group of its own) kills the driver's group, not only its own.
if os.environ.get("LAKESCORE_FAULT") and "LAKESCORE_FAULT_PGID" not in os.environ:
    os.environ["LAKESCORE_FAULT_PGID"] = str(os.getpgrp())


def reach(point: str, where: str = "") -> None:
    """Called by the run at each of ``POINTS``. ``LAKESCORE_FAULT=<point>:<text>`` fires only
    where ``where`` (a table path, for ``data_file_written``) contains ``text``."""
    wanted, _, within = os.environ.get("LAKESCORE_FAULT", "").partition(":")
    if wanted == point and within in where:
        log.error("LAKESCORE_FAULT=%s: killing the job's process group", point)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.killpg(int(os.environ.get("LAKESCORE_FAULT_PGID", os.getpgrp())), signal.SIGKILL)
    pause = os.environ.get("LAKESCORE_PAUSE", "")
    if pause.partition(":")[0] == point:
        folder = Path(pause.partition(":")[2])
        (folder / f"{os.getpid()}.waiting").touch()
        log.info("LAKESCORE_PAUSE=%s: waiting for %s", point, folder / "go")
        while not (folder / "go").exists():
            time.sleep(0.1)
