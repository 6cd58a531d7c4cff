"""``--replay RUN_ID``: run again exactly what an earlier run did, into scratch tables, and say
whether the scores match what it published.

"Exactly" is: the input table at the Delta version that run read, the model version its reference
resolved to, the same partitions, and the same config (checked by its hash, which covers
everything that changes what is computed). The published rows are read back at the scored
table's version after that run, so later reruns of the partition do not hide them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import ConfigError, JobConfig
from jobs.run.ledger import latest_rows
from jobs.tables import read_table, table_exists
from transforms.scoring import LINEAGE

log = logging.getLogger("lakescore.replay")


class ReplayError(ConfigError):
    """The run cannot be replayed as asked (unknown run id, changed config): a usage error."""


@dataclass(frozen=True)
class Original:
    run_id: str
    status: str
    partitions: tuple[str, ...]
    input_version: int
    model_resolved_uri: str
    config_hash: str
    scored_version: int | None


def find_run(runs_path: str, run_id: str) -> Original:
    """The ledger row of ``run_id`` (read with delta-rs: the ledger is small metadata)."""
    if not table_exists(runs_path):
        raise ReplayError(f"runs ledger {runs_path} does not exist: nothing to replay")
    row = latest_rows(runs_path, [run_id]).get(run_id)
    if row is None:
        raise ReplayError(f"run {run_id} is not in the runs ledger {runs_path}")
    if row["status"] == "running":
        raise ReplayError(
            f"run {run_id} never finished (its ledger row says running: killed, or still going); "
            f"rescore its partitions {list(row['partitions'])} with --partition instead"
        )
    if row["status"] != "succeeded":
        raise ReplayError(f"run {run_id} ended {row['status']}: only a run that published scores can be replayed and compared")
    return Original(
        run_id,
        row["status"],
        tuple(row["partitions"]),
        int(row["input_version"]),
        row["model_resolved_uri"],
        row["config_hash"],
        row["scored_version"],
    )


def replay_config(cfg: JobConfig, original: Original, scratch: str) -> JobConfig:
    """``cfg`` pinned to the original's model version and writing into ``scratch``.

    Raises:
        ReplayError: the config is not the one the original run used.
    """
    if cfg.config_hash != original.config_hash:
        raise ReplayError(
            f"{cfg.source}: config hash {cfg.config_hash} differs from run {original.run_id}'s {original.config_hash}; "
            "replay needs the config that run used (check out the code version in its ledger row)"
        )
    scratch = scratch.rstrip("/")
    output = replace(
        cfg.output,
        scored=f"{scratch}/scored",
        quarantine=f"{scratch}/quarantine",
        stats=f"{scratch}/stats",
        runs=f"{scratch}/runs",
        held=f"{scratch}/held",
        shadow=f"{scratch}/shadow",
        model_events=f"{scratch}/model_events",
    )
    # the champion's scores are what a replay checks: challengers (not pinned to a version) stay out
    return replace(cfg, model=replace(cfg.model, uri=original.model_resolved_uri, challengers=()), output=output)


@dataclass(frozen=True)
class Comparison:
    published: int
    replayed: int
    only_published: int
    only_replayed: int
    mismatched: dict[str, int]
    max_abs_diff: dict[str, float | None]

    @property
    def matches(self) -> bool:
        return not (self.only_published or self.only_replayed or any(self.mismatched.values()))

    def describe(self, run_id: str, tolerance: float) -> str:
        verdict = "MATCH" if self.matches else "MISMATCH"
        lines = [
            f"replay of run {run_id}: {verdict}",
            f"  rows published {self.published}, replayed {self.replayed}, "
            f"only published {self.only_published}, only replayed {self.only_replayed}",
        ]
        for column, count in self.mismatched.items():
            diff = self.max_abs_diff.get(column)
            extra = f", max |diff| {diff:.3g} (tolerance {tolerance:g})" if diff is not None else ""
            lines.append(f"  {column:<16} {count} row(s) differ{extra}")
        return "\n".join(lines)


def compare(
    spark: SparkSession,
    engine: str,
    original: Original,
    published_path: str,
    replayed_path: str,
    join_on: Sequence[str],
    tolerance: float = 1e-9,
) -> Comparison:
    """Compare the rows ``original`` published with the replay's, in one Spark aggregation.

    Floating outputs match within ``tolerance`` (absolute); others must be equal, nulls included.
    """
    published = read_table(spark, published_path, engine, version=original.scored_version).where(
        F.col("run_id") == F.lit(original.run_id)
    )
    replayed = read_table(spark, replayed_path, engine)
    outputs = [c for c in published.columns if c not in (*join_on, *LINEAGE) and c in replayed.columns]
    a = published.select(*join_on, *[F.col(c).alias(f"a_{c}") for c in outputs], F.lit(True).alias("a_row"))
    b = replayed.select(*join_on, *[F.col(c).alias(f"b_{c}") for c in outputs], F.lit(True).alias("b_row"))
    joined = a.join(b, on=list(join_on), how="full_outer")
    both = F.col("a_row") & F.col("b_row")
    aggs = [
        F.count(F.col("a_row")).alias("published"),
        F.count(F.col("b_row")).alias("replayed"),
        F.count(F.when(F.col("b_row").isNull(), 1)).alias("only_published"),
        F.count(F.when(F.col("a_row").isNull(), 1)).alias("only_replayed"),
    ]
    floating = {f.name for f in published.schema.fields if isinstance(f.dataType, (T.DoubleType, T.FloatType))}
    for c in outputs:
        x, y = F.col(f"a_{c}"), F.col(f"b_{c}")
        if c in floating:
            differs = ~(x.eqNullSafe(y) | (F.abs(x - y) <= F.lit(tolerance)))
            aggs.append(F.max(F.when(both, F.abs(x - y))).alias(f"diff_{c}"))
        else:
            differs = ~x.eqNullSafe(y)
        aggs.append(F.count(F.when(both & differs, 1)).alias(f"mismatch_{c}"))
    row = cast(Row, joined.agg(*aggs).first())  # one row of counts
    return Comparison(
        row["published"],
        row["replayed"],
        row["only_published"],
        row["only_replayed"],
        {c: row[f"mismatch_{c}"] for c in outputs},
        {c: row[f"diff_{c}"] for c in outputs if c in floating},
    )
