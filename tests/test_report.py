"""The run report: written beside the tables, self-contained, holding every figure; logged to MLflow."""

import re
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from jobs.demo.train import FEATURES
from jobs.score import main
from tests.conftest import write_demo_input
from tests.test_job import delta, job_config


def test_report_holds_counts_gate_psi_and_a_plot_per_feature_and_is_logged_to_mlflow(tmp_path, registry, spark, capsys):
    write_demo_input(tmp_path / "customers", days=1, rows_per_day=300)
    conf = job_config(tmp_path, registry, gate={"mode": "warn", "max_psi": 0.0, "min_rows": 10})
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 0
    out, err = capsys.readouterr()

    # beside the tables by default, named in the summary and in the job's last log line
    (path,) = (tmp_path / "reports" / "churn").glob("*.html")
    run = delta(tmp_path / "runs").iloc[0]
    assert path.name.endswith(f"_{run.run_id}.html") and run.report == str(path)
    assert f"  report            {path}" in out
    assert err.strip().splitlines()[-1].endswith(f"run {run.run_id} succeeded (exit 0); report {path}")

    text = path.read_text()
    assert not re.search(r"<script|<link|src=['\"]?http|url\((?!#)", text)  # nothing fetched from anywhere (url(#id) is inside the SVG)
    stats = delta(tmp_path / "stats")
    psi = stats[(stats["scope"] == "drift_baseline") & (stats["metric"] == "psi")].set_index("column")["value"]
    assert set(psi.index) == {*FEATURES, "probability"}  # the demo reference bins every feature and the held-out scores
    for feature in FEATURES:
        assert f"<h3>{feature}</h3>" in text
        assert f"{psi[feature]:.3g}" in text  # its PSI, as the stats table has it
    # one plot per feature (reference vs current) and the prediction histogram
    assert text.count("<svg") == len(FEATURES) + 1
    assert "probability: histogram" in text and "training reference" in text
    rows = stats[stats["scope"] == "rows"].set_index("metric")["value"]
    assert f"<td>{int(rows['rows_in']):,}</td><td>{int(rows['rows_scored']):,}</td><td>{int(rows['rows_quarantined']):,}</td>" in text
    assert text.count("✗") == len(FEATURES) + 1  # max_psi 0 breaks for every feature and for the prediction
    assert "quality gate breached (mode warn)" in text

    client = MlflowClient(registry["tracking_uri"])
    experiment = client.get_experiment_by_name("lakescore-churn")
    (logged,) = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags["lakescore.run_id"] == run.run_id]
    assert logged.data.metrics["rows_in"] == rows["rows_in"] and logged.data.metrics["rows_quarantined"] == rows["rows_quarantined"]
    assert logged.data.metrics["max_psi"] == psi.max() and logged.data.metrics["gate_passed"] == 0.0
    assert logged.data.tags["lakescore.gate"] == "failed" and logged.data.tags["lakescore.status"] == "succeeded"
    local = mlflow.artifacts.download_artifacts(run_id=logged.info.run_id, artifact_path=path.name, dst_path=str(tmp_path / "dl"))
    assert Path(local).read_text() == text
