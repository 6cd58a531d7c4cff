"""The run context: everything settled before the first partition is read, frozen, passed to every stage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from jobs.config import JobConfig
from jobs.model.resolve import ResolvedModel
from jobs.run.plan import Plan


@dataclass(frozen=True)
class RunContext:
    spark: SparkSession
    cfg: JobConfig
    engine: str  # "native" or "embedded", resolved
    run_id: str
    input_version: int  # the input's snapshot every partition is read at
    input_schema: T.StructType  # the input's schema at that snapshot
    model: ResolvedModel
    model_location: str  # where workers load the model from (jobs.model.ship)
    plan: Plan
    scored_at: dt.datetime  # one instant for every row the run writes
