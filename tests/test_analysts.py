"""The analysts' side: the notebook runs top to bottom over real job output, and SQL from the
command line sees the same tables."""

from __future__ import annotations

import pytest

from jobs.score import main
from tests.helpers import delta, job_config, write_demo_input

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def two_days(tmp_path, registry, spark):
    write_demo_input(tmp_path / "customers", days=2, rows_per_day=120)
    conf = job_config(tmp_path, registry)
    assert main(["--conf", conf, "--partition", "ds=2024-06-01", "--partition", "ds=2024-06-02"]) == 0
    return tmp_path, conf


def _outputs(cell) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def test_notebook_executes_and_shows_scores_and_drift_per_partition(two_days):
    from jobs.tools.notebook import execute

    tmp_path, conf = two_days
    nb = execute(conf)
    code = [c for c in nb.cells if c.cell_type == "code"]
    scored = delta(tmp_path / "scored")
    scores_cell = next(c for c in code if "mean_probability" in c.source)
    text = _outputs(scores_cell)
    assert "2024-06-01" in text and "2024-06-02" in text
    for ds, rows in scored.groupby("ds").size().items():
        assert str(rows) in text, f"rows scored for {ds} missing from the notebook"
    assert any("image/png" in o.get("data", {}) for o in scores_cell.outputs)  # the plot rendered
    drift_cell = next(c for c in code if "drift_baseline" in c.source)
    assert any("image/png" in o.get("data", {}) for o in drift_cell.outputs), _outputs(drift_cell)
    quality_cell = next(c for c in code if "from evaluation" in c.source)
    assert "`make evaluate` creates it" in _outputs(quality_cell)  # no evaluation table yet: it says so, and runs


def test_notebook_plots_each_metric_with_its_interval_and_the_estimate_once_evaluated(two_days):
    """An evaluation table as the evaluation job writes it (its schema's columns), champion accuracy
    with an interval and the estimate made before the labels, over the two days scored."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from jobs.config import load_config
    from jobs.tools.notebook import execute

    _, conf = two_days
    common = {"role": "champion", "model_name": "churn", "model_version": "1", "column": "probability", "metric": "accuracy"}
    rows = []
    for partition, maturity, value in (("ds=2024-06-01", "final", 0.81), ("ds=2024-06-02", "provisional", 0.64)):
        mine = {**common, "partition": partition, "maturity": maturity, "scope": "evaluation"}
        rows += [{**mine, "bucket": b, "value": v} for b, v in ((None, value), ("lower", value - 0.03), ("upper", value + 0.03))]
        rows += [{**mine, "bucket": "tp", "value": 50.0}]  # a statistic: not plotted
        rows += [{**mine, "scope": "estimate", "bucket": "estimated", "value": 0.7725}]
    write_deltalake(load_config(conf).evaluation.output, pa.Table.from_pylist(rows))
    code = [c for c in execute(conf).cells if c.cell_type == "code"]
    quality_cell = next(c for c in code if "from evaluation" in c.source)
    text = _outputs(quality_cell)
    assert "make evaluate" not in text and "0.64" in text and "0.7725" in text and "provisional" in text
    assert any("image/png" in o.get("data", {}) for o in quality_cell.outputs), text


def test_sql_command_queries_the_job_tables(two_days, capsys):
    from jobs.tools.sql import main as sql

    tmp_path, conf = two_days
    assert sql(["--conf", conf, "--csv", "select ds, count(*) as n from scored group by ds order by ds"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = delta(tmp_path / "scored").groupby("ds").size()
    assert lines == ["ds,n", *[f"{ds},{n}" for ds, n in expected.items()]]
    assert sql(["--conf", conf, "select * from no_such_table"]) == 2
