"""SQL over a job's tables from the command line, no Spark: ``make sql Q="select ..."``.

``python -m jobs.tools.sql --conf conf/jobs/churn.yaml "select model_version, count(*) from scored group by 1"``

The tables are views named ``scored``, ``quarantine``, ``held``, ``shadow`` (the challengers'
scores), ``stats``, ``runs`` and ``model_events`` (plus ``input``); ``runs`` has one row per run (its
final row, or ``running`` when it never ended), ``runs_log`` every row the ledger holds. The
evaluation job's: ``evaluation`` (each partition's current evaluation), ``evaluation_history``,
``evaluation_windows`` (the ``--window`` roll-ups) and ``signals`` (retraining signals). A table not
written yet has no view.
delta-rs resolves each table's current snapshot (the files the Delta log says are live, which a
plain Parquet glob would get wrong after an overwrite) and DuckDB runs the query over them.
"""

from __future__ import annotations

import argparse
import sys

from jobs.config import ConfigError, JobConfig, load_config


def connect(cfg: JobConfig, version: dict[str, int] | None = None):
    """A DuckDB connection with the job's tables as views (those that exist yet)."""
    import duckdb
    from deltalake import DeltaTable

    from jobs.tables import table_exists

    con = duckdb.connect()
    tables = {
        "input": cfg.input.path,
        "scored": cfg.output.scored,
        "quarantine": cfg.output.quarantine,
        "stats": cfg.output.stats,
        "runs": cfg.output.runs,
    }
    e = cfg.evaluation
    optional = (
        ("held", cfg.output.held),
        ("shadow", cfg.output.shadow),
        ("model_events", cfg.output.model_events),
        ("evaluation", e.output),
        ("evaluation_history", e.history),
        ("evaluation_windows", e.windows),
        ("signals", e.signals),
    )
    for name, path in optional:
        if path:
            tables[name] = path
    for name, path in tables.items():
        if table_exists(path):
            at = (version or {}).get(name)
            dataset = (DeltaTable(path, version=at) if at is not None else DeltaTable(path)).to_pyarrow_dataset()
            con.register("runs_log" if name == "runs" else name, dataset)
    if table_exists(cfg.output.runs):
        # a run appends a `running` row when it starts and its final row when it ends: one per run
        con.sql(
            "create view runs as select * from runs_log qualify row_number() over "
            "(partition by run_id order by (status = 'running'), finished_at desc) = 1"
        )
    return con


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lakescore-sql", description=__doc__.split("\n")[0])
    p.add_argument("--conf", default="conf/jobs/churn.yaml")
    p.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.add_argument("query")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.conf)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    import duckdb

    try:
        result = connect(cfg).sql(args.query)
    except duckdb.Error as exc:
        print(f"query failed: {exc}", file=sys.stderr)
        return 2
    if result is None:
        return 0
    if args.csv:
        result.to_df().to_csv(sys.stdout, index=False)
    else:
        result.show(max_width=200, max_rows=200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
