"""Getting the model's files to every executor, once per run; workers load it by the name returned."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from typing import cast

from pyspark.sql import SparkSession

from jobs.model.resolve import ResolvedModel


def ship_model(spark: SparkSession, model: ResolvedModel) -> str:
    """Send the model's files to every executor once; workers load it by this name.

    As a zip through ``addArchive``: ``addFile`` refuses a local directory off local mode, and
    the executors unpack an archive once, where ``SparkFiles.get(name)`` finds it.
    """
    # a running SparkContext always has a master (Spark does not start without one)
    if cast(str, spark.sparkContext.master).startswith("local"):
        return model.local_path  # same filesystem: load it in place
    name = f"lakescore-model-{uuid.uuid4().hex[:12]}"  # unique: a session may ship several models
    archive = shutil.make_archive(f"{tempfile.mkdtemp(prefix='lakescore-ship-')}/{name}", "zip", model.local_path)
    spark.sparkContext.addArchive(archive)
    return f"{name}.zip"
