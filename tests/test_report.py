"""The run report: written beside the tables, self-contained, holding every figure; logged to MLflow."""

import contextlib
import io
import re
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from mlflow import MlflowClient

from jobs.demo.train import FEATURES
from jobs.score import main
from tests.helpers import delta, job_config, ledger, write_demo_input


@pytest.fixture(scope="module")
def warned_run(tmp_path_factory, registry, spark):
    """One partition scored under a warn-mode gate that every feature and the prediction breach
    (max_psi 0), shared by the tests below: (path, exit_code, out, err) of the run."""
    tmp_path = tmp_path_factory.mktemp("report")
    write_demo_input(tmp_path / "customers", days=1, rows_per_day=300)
    conf = job_config(tmp_path, registry, gate={"mode": "warn", "max_psi": 0.0, "min_rows": 10})
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
        exit_code = main(["--conf", conf, "--partition", "ds=2024-06-01"])
    return SimpleNamespace(path=tmp_path, exit_code=exit_code, out=out.getvalue(), err=err.getvalue())


def ledger_row(tmp_path):
    return ledger(tmp_path / "runs").iloc[0]


def psi_and_rows(tmp_path):
    """Each column's PSI against the training reference and the row counts, as the stats table has them."""
    stats = delta(tmp_path / "stats")
    psi = stats[(stats["scope"] == "drift_baseline") & (stats["metric"] == "psi")].set_index("column")["value"]
    rows = stats[stats["scope"] == "rows"].set_index("metric")["value"]
    return psi, rows


def test_report_is_written_beside_the_tables_and_named_in_the_summary_and_the_last_log_line(warned_run):
    tmp_path = warned_run.path
    assert warned_run.exit_code == 0

    # beside the tables by default, named in the summary and in the job's last log line
    (path,) = (tmp_path / "reports" / "churn").glob("*.html")
    run = ledger_row(tmp_path)
    assert path.name.endswith(f"_{run.run_id}.html") and run.report == str(path)
    assert f"  report            {path}" in warned_run.out
    assert warned_run.err.strip().splitlines()[-1].endswith(f"run {run.run_id} succeeded (exit 0); report {path}")


def test_report_is_self_contained_and_holds_counts_gate_psi_and_a_plot_per_feature(warned_run):
    tmp_path = warned_run.path
    text = Path(ledger_row(tmp_path).report).read_text()
    assert not re.search(
        r"<script|<link|src=['\"]?http|url\((?!#)", text
    )  # nothing fetched from anywhere (url(#id) is inside the SVG)
    psi, rows = psi_and_rows(tmp_path)
    assert set(psi.index) == {*FEATURES, "probability"}  # the demo reference bins every feature and the held-out scores
    for feature in FEATURES:
        assert f"<h3>{feature}</h3>" in text
        assert f"{psi[feature]:.3g}" in text  # its PSI, as the stats table has it
    # one plot per feature (reference vs current) and the prediction histogram
    assert text.count("<svg") == len(FEATURES) + 1
    assert "probability: histogram" in text and "training reference" in text
    assert (
        f"<td>{int(rows['rows_in']):,}</td><td>{int(rows['rows_scored']):,}</td><td>{int(rows['rows_quarantined']):,}</td>"
        in text
    )
    assert text.count("✗") == len(FEATURES) + 1  # max_psi 0 breaks for every feature and for the prediction
    assert "quality gate breached (mode warn)" in text


def test_run_is_logged_to_mlflow_with_its_counts_psi_gate_and_the_report(warned_run, registry, tmp_path):
    run = ledger_row(warned_run.path)
    path = Path(run.report)
    psi, rows = psi_and_rows(warned_run.path)
    client = MlflowClient(registry["tracking_uri"])
    experiment = client.get_experiment_by_name("lakescore-churn")
    (logged,) = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags["lakescore.run_id"] == run.run_id]
    assert (
        logged.data.metrics["rows_in"] == rows["rows_in"] and logged.data.metrics["rows_quarantined"] == rows["rows_quarantined"]
    )
    assert logged.data.metrics["max_psi"] == psi.max() and logged.data.metrics["gate_passed"] == 0.0
    assert logged.data.tags["lakescore.gate"] == "failed" and logged.data.tags["lakescore.status"] == "succeeded"
    local = mlflow.artifacts.download_artifacts(run_id=logged.info.run_id, artifact_path=path.name, dst_path=str(tmp_path / "dl"))
    assert Path(local).read_text() == path.read_text()
