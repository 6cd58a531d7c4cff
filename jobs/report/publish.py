"""Where the run report goes: written beside the tables (or to object storage), and logged to MLflow
with the run's headline metrics."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from jobs.config import JobConfig
from jobs.redact import redact
from jobs.report.challengers import challenger_section
from jobs.report.html import render
from transforms.stats import Bins

if TYPE_CHECKING:  # jobs.run imports the report: a type-only import keeps the report importable on its own
    from mlflow.entities import Experiment

    from jobs.run.ledger import RunRecord

log = logging.getLogger("lakescore.run")

Row = Mapping[str, Any]


def _reports(cfg: JobConfig) -> str:
    # parse_config always fills output.reports in (beside the stats table unless set)
    return cast(str, cfg.output.reports)


def report_path(cfg: JobConfig, record: RunRecord) -> str:
    """``<output.reports>/<job>/<date>_<run id>.html``: sorted by time in a listing."""
    return f"{_reports(cfg).rstrip('/')}/{cfg.name}/{record.started_at:%Y%m%dT%H%M%S}_{record.run_id}.html"


def write_report(path: str, text: str) -> None:
    """Write the report to a local path or a filesystem URI pyarrow knows (``s3://``, ``gs://``, ``hdfs://``)."""
    if "://" not in path or path.startswith("file://"):
        local = Path(path.removeprefix("file://"))
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text, encoding="utf-8")
        return
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(inner) as out:
        out.write(text.encode("utf-8"))


def headline(record: RunRecord, rows: Sequence[Row]) -> dict[str, float]:
    """The run's headline metrics: counts, the largest baseline PSI (else the largest against the
    previous partition), and whether the gate passed."""
    psi = [r["value"] for r in rows if r["scope"] == "drift_baseline" and r["metric"] == "psi" and r["value"] is not None]
    if not psi:
        psi = [r["value"] for r in rows if r["scope"] == "drift_consecutive" and r["metric"] == "psi" and r["value"] is not None]
    out = {
        "rows_in": float(record.rows_in or 0),
        "rows_scored": float(record.rows_scored or 0),
        "rows_quarantined": float(record.rows_quarantined or 0),
        "gate_passed": 0.0 if any(r["scope"] == "gate" and r["bucket"] == "fail" for r in rows) else 1.0,
    }
    if psi:
        out["max_psi"] = float(max(psi))
    return out


def run_tags(record: RunRecord, gate: str) -> dict[str, str]:
    """The MLflow run's tags, credentials in URIs masked: a tracking server shows tags to every reader."""
    tags = {
        "lakescore.run_id": record.run_id,
        "lakescore.status": record.status,
        "lakescore.gate": gate,
        "lakescore.partitions": ",".join(record.partitions),
        "lakescore.model": record.model_resolved_uri or record.model_uri,
    }
    return {key: redact(value) for key, value in tags.items()}


def log_to_mlflow(cfg: JobConfig, record: RunRecord, rows: Sequence[Row], path: str, text: str) -> str:
    """Log the run to the MLflow experiment ``lakescore-<job>``: headline metrics, the gate status
    and the report as an artifact. Returns the MLflow run id.

    With a local tracking store (sqlite, a folder) the experiment's artifacts go beside the reports
    rather than into ./mlruns of whatever directory the job was started from.
    """
    import mlflow

    name = f"lakescore-{cfg.name}"
    if mlflow.get_experiment_by_name(name) is None:
        tracking = mlflow.get_tracking_uri()
        local = tracking.startswith(("sqlite:", "file:")) or "://" not in tracking
        location = None
        if local and "://" not in _reports(cfg):
            location = Path(_reports(cfg), "mlflow-artifacts").resolve().as_uri()
        mlflow.create_experiment(name, artifact_location=location)
    gate = (
        "failed"
        if any(r["scope"] == "gate" and r["bucket"] == "fail" for r in rows)
        else ("passed" if any(r["scope"] == "gate" for r in rows) else "none")
    )
    experiment = cast("Experiment", mlflow.get_experiment_by_name(name))  # created above if it was missing
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=f"{cfg.name}-{record.run_id}") as run:
        mlflow.set_tags(run_tags(record, gate))
        mlflow.log_metrics(headline(record, rows))
        mlflow.log_text(text, path.rsplit("/", 1)[-1])  # the report itself, wherever it was written
        return run.info.run_id


def publish_report(
    cfg: JobConfig,
    record: RunRecord,
    rows: Sequence[Row],
    bins: tuple[Mapping[str, Bins], Mapping[str, Bins]],
    features: Sequence[str],
) -> str | None:
    """Write the run's HTML report and log it to MLflow; returns its path, None when it could not be
    written. A failure here is logged, not fatal: the scores, stats and ledger row are what the run is for."""
    path = report_path(cfg, record)
    try:
        sections = challenger_section([c.row() for c in record.challengers], rows, bins[1])
        text = render(cfg, record, rows, bins[0], bins[1], features, sections)
        write_report(path, text)
    except Exception:
        log.exception("could not write the run report %s", path)
        return None
    try:
        mlflow_run = log_to_mlflow(cfg, record, rows, path, text)
        log.info("report logged to MLflow experiment lakescore-%s, run %s", cfg.name, mlflow_run)
    except Exception as exc:
        log.warning("could not log the run to MLflow (experiment lakescore-%s): %s", cfg.name, exc)
    return path
