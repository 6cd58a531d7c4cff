"""The runs ledger keeps growing across versions of LakeScore: a ledger written before a column
existed gains it on the next append, and its old rows read null there."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import types as T

from jobs.run.ledger import LEDGER_SCHEMA, RunRecord, append_run
from jobs.tables import write_table
from tests.helpers import delta


def _record(run_id: str, report: str | None) -> RunRecord:
    started = dt.datetime(2024, 6, 2, 3, 0, tzinfo=dt.UTC)
    return RunRecord(
        run_id, "churn", "/in", "models:/m@champion", "h", "/scored", started,
        status="succeeded", exit_code=0, finished_at=started, partitions=["ds=2024-06-01"], report=report,
    )  # fmt: skip


def test_a_ledger_without_the_report_column_gains_it_and_keeps_its_rows(spark, tmp_path):
    path = str(tmp_path / "runs")
    old_schema = T.StructType([f for f in LEDGER_SCHEMA.fields if f.name != "report"])
    values = dict(zip(LEDGER_SCHEMA.fieldNames(), _record("old", None).row(), strict=True))
    old_row = tuple(values[f.name] for f in old_schema.fields)
    write_table(spark.createDataFrame([old_row], old_schema), path, "embedded", mode="append")

    append_run(spark, _record("new", "/reports/churn/x.html"), path, "embedded")

    got = delta(path).set_index("run_id")
    # the gained column comes last in the table, after the ones the old ledger had
    assert list(got.columns) == [f.name for f in old_schema.fields if f.name != "run_id"] + ["report"]
    assert got.loc["new", "report"] == "/reports/churn/x.html"
    assert got.loc["old", "report"] is None and got.loc["old", "status"] == "succeeded"


def test_the_ledger_row_carries_no_credential_of_a_uri_or_an_error():
    import datetime as dt

    from jobs.run.ledger import LEDGER_SCHEMA, RunRecord

    record = RunRecord("r", "churn", "s3://in", "models:/m@champion", "h", "/t/s", dt.datetime.now(dt.UTC))
    record.model_resolved_uri = "http://alice:s3cret@mlflow.internal/models/m/3"
    record.error = "ConnectionError: http://alice:s3cret@mlflow.internal unreachable"
    values = dict(zip(LEDGER_SCHEMA.fieldNames(), record.row(), strict=True))
    assert "s3cret" not in repr(values)
    assert values["model_resolved_uri"] == "http://***@mlflow.internal/models/m/3"
