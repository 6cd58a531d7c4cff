"""Getting the model's files to every executor, once per run; workers load it by the name returned."""

from __future__ import annotations

import os
import shutil
import uuid
from typing import cast

from pyspark import SparkFiles
from pyspark.sql import SparkSession

from jobs.model.resolve import ResolvedModel


def ship_folder() -> str:
    """Where the archives go: a folder in Spark's own directory for the driver's files, which
    Spark deletes when the SparkContext stops (and at JVM exit). An archive must live exactly that
    long: every executor that joins the context later (dynamic allocation, a replaced one)
    fetches every archive ever added, so one deleted at the end of a run would fail its tasks."""
    return os.path.join(SparkFiles.getRootDirectory(), "lakescore-ship")


def ship_model(spark: SparkSession, model: ResolvedModel) -> str:
    """Send the model's files to every executor once; workers load it by this name.

    As a zip through ``addArchive``: ``addFile`` refuses a local directory off local mode, and
    the executors unpack an archive once, where ``SparkFiles.get(name)`` finds it.
    """
    # a running SparkContext always has a master (Spark does not start without one)
    if cast(str, spark.sparkContext.master).startswith("local"):
        return model.local_path  # same filesystem: load it in place
    name = f"lakescore-model-{uuid.uuid4().hex[:12]}"  # unique: a session may ship several models
    archive = shutil.make_archive(os.path.join(ship_folder(), name), "zip", model.local_path)
    spark.sparkContext.addArchive(archive)
    return f"{name}.zip"
