"""The run context: everything settled before the first partition is read, frozen, passed to every stage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from jobs.config import JobConfig
from jobs.model.resolve import ResolvedModel
from jobs.run.challengers import Challenger, ChallengerStatus
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
    challengers: tuple[Challenger, ...] = ()  # resolved, scored beside the champion
    # one per configured challenger (resolved or not): what became of it, for the ledger and the report
    challenger_statuses: tuple[ChallengerStatus, ...] = field(default_factory=tuple)

    def status_of(self, challenger: Challenger) -> ChallengerStatus:
        return self.challenger_statuses[int(challenger.tag)]
