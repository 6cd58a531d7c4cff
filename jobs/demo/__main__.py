"""Set up the embedded default: ``python -m jobs.demo`` creates what is missing under ``.lakescore/``."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from jobs.logs import setup_logging

log = logging.getLogger("lakescore.demo")


def _has_pipeline(version) -> bool:
    """Whether a registered version carries the pipeline spec the scoring job reads and the
    calibration map it estimates quality with."""
    import mlflow

    listed = mlflow.artifacts.list_artifacts(artifact_uri=f"models:/{version.name}/{version.version}/lakescore")
    names = {a.path.rsplit("/", 1)[-1] for a in listed or []}
    return {"pipeline.json", "calibration.json"} <= names


# (alias, training seed, learning rate): the champion, and a challenger trained on another sample
# of customers with a slower learning rate, which make run shadow-scores beside it
DEMO_MODELS = (("champion", 7, 0.1), ("challenger", 11, 0.05))


def _aliased(client, alias: str):
    try:
        return client.get_model_version_by_alias("lakescore_churn", alias)
    except Exception:  # no such model or alias yet
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lakescore-demo", description=__doc__)
    p.add_argument("--home", default=".lakescore", help="where the demo registry and tables live")
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--rows-per-day", type=int, default=20_000)
    p.add_argument("--start", default="2024-06-01")
    p.add_argument("--force", action="store_true", help="recreate the input and labels tables and retrain")
    args = p.parse_args(argv)
    setup_logging()

    import mlflow
    from deltalake import DeltaTable, write_deltalake
    from mlflow import MlflowClient

    from jobs.demo.data import input_table, labels_table
    from jobs.demo.train import train_and_register
    from jobs.tables import table_exists

    home = Path(args.home).resolve()
    (home / "tables").mkdir(parents=True, exist_ok=True)
    table = home / "tables" / "customers"
    if args.force or not table_exists(str(table)):
        data = input_table(args.days, args.rows_per_day, dt.date.fromisoformat(args.start))
        write_deltalake(str(table), data, mode="overwrite", partition_by=["ds"])
        log.info("demo input: %d rows in %d daily partitions at %s", data.num_rows, args.days, table)
    else:
        log.info("demo input exists: %s (version %d)", table, DeltaTable(str(table)).version())
    # the churn labels of the same customers and days, as a label feed delivers them weeks later
    labels = home / "tables" / "churn_labels"
    if args.force or not table_exists(str(labels)):
        data = labels_table(args.days, args.rows_per_day, dt.date.fromisoformat(args.start))
        write_deltalake(str(labels), data, mode="overwrite", partition_by=["ds"])
        log.info("demo labels: %d rows at %s (the newest day unlabelled, the day before in part)", data.num_rows, labels)
    else:
        log.info("demo labels exist: %s (version %d)", labels, DeltaTable(str(labels)).version())

    tracking = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    retrained = False
    for alias, seed, rate in DEMO_MODELS:
        existing = _aliased(client, alias)
        if existing is not None and not _has_pipeline(existing):
            log.info("demo model version %s predates lakescore/pipeline.json and reference.json: retraining", existing.version)
            existing = None
        # a new champion gets a new challenger: the pair is compared on the same rows
        if args.force or existing is None or retrained:
            trained = train_and_register(tracking, str(home / "mlartifacts"), alias=alias, seed=seed, learning_rate=rate)
            log.info("demo model: %s version %s @%s (auc %.3f)", trained.name, trained.version, alias, trained.auc)
            retrained = True
        else:
            log.info("demo model exists: %s version %s @%s", existing.name, existing.version, alias)
    return 0


if __name__ == "__main__":
    sys.exit(main())
