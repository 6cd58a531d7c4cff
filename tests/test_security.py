"""Deny by default: config SQL is allow-listed, local models need allow_local, a registry that is
down fails fast and retryably, credentials never reach a log line or the report, the model's temp
copy goes away, the Spark UI stays off, and a category value cannot bloat or garble the report."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import socket
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs.config import ConfigError, ModelConfig, RuleConfig, StepConfig, parse_config, steps_from_spec
from jobs.logs import setup_logging
from jobs.model.resolve import (
    ModelError,
    RegistryUnavailableError,
    registry_limits,
    release_model,
    resolve_model,
    retries_within,
)
from jobs.model.ship import ship_folder, ship_model
from jobs.redact import redact
from jobs.report.html import render
from jobs.report.publish import run_tags
from jobs.run.ledger import RunRecord
from jobs.session import _bind_ui, _submit_args_conf, session_conf, ui_enabled
from transforms.sql_guard import ALLOWED_FUNCTIONS, UnsafeExpressionError, check_config_sql, check_expression
from transforms.stats import BUCKET_ELLIPSIS, MAX_BUCKET_CHARS, category_profile

BASE = {
    "name": "churn",
    "input": {"path": "/data/customers", "partition_by": ["ds"]},
    "keys": ["customer_id"],
    "model": {"uri": "models:/churn@champion"},
    "output": {"scored": "/t/s", "quarantine": "/t/q", "stats": "/t/st", "runs": "/t/r"},
}
SECRET_URI = "http://scorer:hunter2@mlflow.internal:5000"

# --- 1. SQL in config ---------------------------------------------------------------------------

REFUSED = {
    "reflect": ("reflect('java.lang.System', 'getenv', 'AWS_SECRET_ACCESS_KEY')", "function reflect"),
    "java_method": ("java_method('java.nio.file.Files', 'readString', '/etc/passwd')", "function java_method"),
    "in_subquery": ("x in (select id from allowed)", "subquery"),
    "table_reference": ("(select max(secret) from credentials) > 0", "subquery"),
    "exists": ("exists (select 1 from credentials)", "subquery"),
    "current_timestamp": ("current_timestamp() > d", "function current_timestamp"),
    "current_timestamp_bare": ("d < current_timestamp", "current_timestamp"),
    "rand": ("rand() < 0.5", "function rand"),
    "input_file_name": ("input_file_name()", "function input_file_name"),
    "lambda": ("exists(tags, t -> reflect('java.lang.Runtime', 'getRuntime') is null)", "function reflect"),
    "identifier": ("identifier('java_method')('java.lang.System', 'getenv', 'HOME')", "ExpressionWithUnresolvedIdentifier"),
    "qualified": ("spark_catalog.default.my_udf(x)", "qualified name"),
    "clock": ("unix_timestamp() > 0", "reads the clock"),
    "window": ("sum(x) over ()", "WindowExpression"),
}
ALLOWED = [
    "coalesce(x, 0) * 2",
    "case when tenure > 12 then 'long' else 'short' end",
    "lower(region)",
    "x is not null and x > 0",
    "regexp_like(plan, '^(basic|premium)$')",
    "transform(tags, t -> upper(t))",
    "cast(total as double) / nullif(tenure, 0)",
    "date_add(d, 1) > date'2024-01-01' and unix_timestamp(d) > 0",
]


@pytest.mark.parametrize("text,refusal", REFUSED.values(), ids=REFUSED.keys())
def test_config_sql_outside_the_allow_list_is_refused_naming_what(spark, text, refusal):
    with pytest.raises(UnsafeExpressionError, match=r"^job\.yaml: preprocessing\[0\]\.expr: ") as err:
        check_expression(spark, text, "job.yaml: preprocessing[0].expr")
    assert refusal in str(err.value)


@pytest.mark.parametrize("text", ALLOWED)
def test_ordinary_expressions_are_allowed(spark, text):
    check_expression(spark, text, "job.yaml: preprocessing[0].expr")


def test_every_allowed_function_is_a_spark_built_in(spark):
    jvm = spark._jvm
    builtin = jvm.org.apache.spark.sql.catalyst.analysis.FunctionRegistry.builtin()
    unknown = [
        n for n in ALLOWED_FUNCTIONS if not builtin.functionExists(jvm.org.apache.spark.sql.catalyst.FunctionIdentifier.apply(n))
    ]
    assert unknown == []


def test_a_session_udf_is_refused_even_under_an_allowed_name(spark):
    spark.udf.register("soundex", lambda s: s)
    try:
        with pytest.raises(UnsafeExpressionError, match="soundex is registered in this session"):
            check_expression(spark, "soundex(name) = 'X'", "job.yaml: validation.rules[0].expr")
    finally:
        spark.sql("DROP TEMPORARY FUNCTION IF EXISTS soundex")


def test_config_sql_check_names_the_file_and_key_of_the_rule_and_of_the_model_pipeline(spark):
    steps = (StepConfig("cast", "x", (("to", "double"),)), StepConfig("derive", "y", (("expr", "x * 2"),)))
    rules = (RuleConfig("not_null", "nn", "x"), RuleConfig("expression", "leak", expr="reflect('a', 'b') is null"))
    with pytest.raises(UnsafeExpressionError, match=r"^job\.yaml: validation\.rules\[1\]\.expr: function reflect"):
        check_config_sql(spark, steps, rules, "job.yaml")

    spec = {"format": 1, "steps": [{"step": "derive", "column": "y", "expr": "x + uuid()"}]}
    source = "model models:/churn/3 lakescore/pipeline.json"
    with pytest.raises(
        UnsafeExpressionError, match=r"^model models:/churn/3 lakescore/pipeline\.json: steps\[0\]\.expr: function uuid"
    ):
        check_config_sql(spark, steps_from_spec(spec, source), (), source, steps_key="steps")
    check_config_sql(spark, steps, rules[:1], "job.yaml")  # nothing to refuse


# --- 2. model.allow_local ------------------------------------------------------------------------


def with_model(**model) -> dict:
    return {**BASE, "model": model}


@pytest.mark.parametrize("uri", ["/srv/models/churn", "file:/srv/models/churn"])
def test_a_local_model_directory_needs_allow_local(uri):
    with pytest.raises(ConfigError, match=r"job\.yaml: model\.uri: .*local directory.*model\.allow_local: true"):
        parse_config(with_model(uri=uri), "job.yaml")
    assert parse_config(with_model(uri=uri, allow_local=True), "job.yaml").model.allow_local


def test_the_registry_timeout_is_positive_and_thirty_seconds_by_default():
    assert parse_config(BASE, "job.yaml").model.registry_timeout_seconds == 30
    with pytest.raises(ConfigError, match=r"model\.registry_timeout_seconds"):
        parse_config(with_model(uri="models:/churn/1", registry_timeout_seconds=0), "job.yaml")


def write_model(folder: Path, loader: str = "lakescore_no_such_loader", data: str | None = "model.bin") -> Path:
    """A model folder MLflow can read the MLmodel of (pyfunc flavor, signature) without training."""
    folder.mkdir(parents=True)
    flavor = {"loader_module": loader, **({"data": data} if data else {})}
    signature = {
        "inputs": json.dumps([{"type": "double", "name": "x", "required": True}]),
        "outputs": json.dumps([{"type": "double", "name": "probability", "required": True}]),
    }
    (folder / "MLmodel").write_text(json.dumps({"flavors": {"python_function": flavor}, "signature": signature}))
    (folder / "model.bin").write_bytes(b"\0")
    return folder


def test_a_local_model_loads_with_allow_local_and_warns(tmp_path, caplog):
    uri = str(write_model(tmp_path / "m"))
    with pytest.raises(ConfigError, match="allow_local"):
        resolve_model(ModelConfig(uri))  # a ModelConfig made in code is checked too
    logger = logging.getLogger("lakescore.models")
    logger.addHandler(caplog.handler)
    try:
        model = resolve_model(ModelConfig(uri, allow_local=True))
    finally:
        logger.removeHandler(caplog.handler)
    release_model(model)
    assert [f.name for f in model.outputs.fields] == ["probability"]
    assert any(r.levelno == logging.WARNING and "allow_local" in r.getMessage() for r in caplog.records)


# --- 3. a registry that is down, a model that is broken -----------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def restore_tracking(monkeypatch):
    """resolve_model points MLflow's global tracking at the config's: put the suite's back."""
    import mlflow

    for var in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(var, raising=False)
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


def test_an_unreachable_registry_fails_fast_as_retryable_naming_the_redacted_uri(restore_tracking):
    tracking = f"http://scorer:hunter2@127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as err:
        resolve_model(ModelConfig("models:/churn@champion", tracking, registry_timeout_seconds=3))
    assert time.monotonic() - started < 30
    assert not isinstance(err.value, ModelError)  # ModelError is exit 2; this one is exit 1
    assert "http://***@127.0.0.1" in str(err.value) and "hunter2" not in str(err.value)
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ  # the bound is lifted again


def test_the_retries_fit_the_timeout_and_the_users_mlflow_settings_win():
    assert retries_within(30, 2, 1.0) == 3  # back-off 0 + 4 + 8 s plus jitter, not MLflow's 7 retries over 264 s
    assert retries_within(1, 2, 1.0) == 0
    assert registry_limits(30, {}) == {"MLFLOW_HTTP_REQUEST_TIMEOUT": "30", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"}
    assert registry_limits(30, {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9"}) == {}


@pytest.mark.parametrize("broken", ["mlmodel", "missing_file", "no_pyfunc"])
def test_a_corrupt_or_incomplete_model_is_a_model_error(tmp_path, broken):
    folder = write_model(tmp_path / "m")
    if broken == "mlmodel":
        (folder / "MLmodel").write_text("flavors: [unclosed")
    elif broken == "missing_file":
        (folder / "model.bin").unlink()
    else:
        (folder / "MLmodel").write_text(json.dumps({"flavors": {"sklearn": {}}}))
    with pytest.raises(ModelError, match=str(folder)):
        resolve_model(ModelConfig(str(folder), allow_local=True))


def test_a_model_a_worker_cannot_load_is_recognisable_in_sparks_error(spark, tmp_path):
    from transforms.model_cache import ModelLoadError, is_model_load_failure

    location = str(write_model(tmp_path / "m"))  # its loader module does not exist

    def score(batches):
        from transforms import model_cache

        model_cache.get(location)
        yield from batches

    with pytest.raises(Exception) as err:
        spark.range(1).mapInArrow(score, "id long").collect()
    assert is_model_load_failure(err.value) and f"the model at {location}" in str(err.value)
    assert is_model_load_failure(ModelLoadError("x")) and not is_model_load_failure(ValueError("x"))


# --- 4. credentials in URIs ----------------------------------------------------------------------


def test_redact_masks_userinfo_and_secret_query_parameters_only():
    assert redact(f"registry {SECRET_URI}/api") == "registry http://***@mlflow.internal:5000/api"
    presigned = "https://b.s3.amazonaws.com/m.zip?X-Amz-Credential=AKIA1&X-Amz-Signature=abc&X-Amz-Expires=60"
    assert redact(presigned) == "https://b.s3.amazonaws.com/m.zip?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"
    for plain in ("models:/churn@champion", "ds=2024-06-01", "sqlite:///.lakescore/mlflow.db", "mail me@host.org"):
        assert redact(plain) == plain


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_log_record_carries_a_uri_password(monkeypatch, fmt):
    root = logging.getLogger("lakescore")
    for attr, value in (("handlers", list(root.handlers)), ("level", root.level), ("propagate", root.propagate)):
        monkeypatch.setattr(root, attr, value)  # setup_logging changes a copy; the suite's come back after
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    setup_logging(fmt)
    logger, text = root.getChild("test"), sys.stderr.getvalue
    logger.info("tracking %s", SECRET_URI)
    logger.warning(f"in the message: {SECRET_URI}")
    try:
        raise ConnectionError(f"cannot reach {SECRET_URI}/api/2.0")
    except ConnectionError:
        logger.exception("resolve failed")
    out = text()
    assert "hunter2" not in out and out.count("http://***@mlflow.internal:5000") == 3, out


def test_the_report_and_the_mlflow_tags_show_no_password(spark):
    cfg = parse_config(BASE, "job.yaml")
    record = RunRecord("r1", "churn", "s3://u:pw-in-input@bucket/t", f"{SECRET_URI}/m", "h", "/t/s", dt.datetime(2024, 6, 1))
    record.error = f"ModelError: model does not resolve: API request to {SECRET_URI}/api failed"
    page = render(cfg, record, [], {}, {}, [])
    assert "hunter2" not in page and "pw-in-input" not in page and "http://***@mlflow.internal:5000" in page
    assert "hunter2" not in json.dumps(run_tags(record, "passed"))


# --- 5. the model's temporary copies -------------------------------------------------------------


def test_release_model_removes_the_runs_copy_and_the_archive_lives_with_spark(spark, tmp_path):
    model = resolve_model(ModelConfig(str(write_model(tmp_path / "m")), allow_local=True))
    workdir = Path(model.workdir or "")
    assert workdir.name.startswith("lakescore-model-") and str(workdir).startswith(tempfile.gettempdir())
    assert Path(model.local_path, "MLmodel").is_file() and Path(model.local_path).is_relative_to(workdir)

    added: list[str] = []
    cluster = SimpleNamespace(sparkContext=SimpleNamespace(master="spark://head:7077", addArchive=added.append))
    name = ship_model(cluster, model)  # type: ignore[arg-type]
    (archive,) = added
    assert Path(archive).parent == Path(ship_folder()) and Path(archive).name == name
    assert "MLmodel" in zipfile.ZipFile(archive).namelist()

    release_model(model)
    release_model(model)  # twice is harmless
    assert not workdir.exists()


# --- 6. the Spark UI -----------------------------------------------------------------------------


def test_the_spark_ui_is_off_on_every_master_unless_someone_turned_it_on():
    for master in ("local[2]", "yarn", None):
        assert session_conf(master, {}, {}, {})["spark.ui.enabled"] == "false"
    on = {"spark.ui.enabled": "true"}
    assert session_conf(None, on, {}, {})["spark.ui.enabled"] == "true"  # the job config
    launched = _submit_args_conf("--master yarn --conf spark.ui.enabled=true --conf=spark.ui.port=4050 pyspark-shell")
    assert launched == {"spark.ui.enabled": "true", "spark.ui.port": "4050"}
    assert "spark.ui.enabled" not in session_conf(None, {}, launched, {})  # spark-submit --conf stands
    assert ui_enabled({}, launched) and not ui_enabled(session_conf("local[1]", {}, {}, {}), {})


def test_an_enabled_local_ui_binds_to_loopback_unless_spark_local_ip_says_where(monkeypatch):
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    _bind_ui("yarn", starts_jvm=True)
    assert "SPARK_LOCAL_IP" not in os.environ  # a cluster's driver must stay reachable
    _bind_ui("local[2]", starts_jvm=True)
    assert os.environ["SPARK_LOCAL_IP"] == "127.0.0.1"
    monkeypatch.setenv("SPARK_LOCAL_IP", "10.0.0.5")
    _bind_ui("local[2]", starts_jvm=True)
    assert os.environ["SPARK_LOCAL_IP"] == "10.0.0.5"


# --- 7. category buckets and the report ---------------------------------------------------------


def test_a_long_category_value_is_cut_in_the_aggregation(spark):
    huge = "x" * (1 << 20)
    rows = [("d", huge + "a"), ("d", huge + "b"), ("d", "basic")]
    stats = spark.createDataFrame(rows, "ds string, plan string").transform(category_profile(["plan"], ["ds"], 10)).collect()
    top = {r.bucket: r.value for r in stats if r.metric == "top_count"}
    cut = "x" * (MAX_BUCKET_CHARS - 1) + BUCKET_ELLIPSIS
    assert top == {cut: 2.0, "basic": 1.0}  # alike up to the cut: one bucket, counts added
    assert max(len(b) for b in top) == MAX_BUCKET_CHARS


def test_control_and_bidi_characters_in_a_category_are_shown_not_obeyed():
    cfg = parse_config(BASE, "job.yaml")
    record = RunRecord("r1", "churn", "/t/in", "models:/churn/1", "h", "/t/s", dt.datetime(2024, 6, 1))
    evil = "gnp.\u202eexe\x00\u2066x\u2069"
    rows = [
        {"partition": "ds=2024-06-01", "scope": "input", "column": "plan", "metric": "top_count", "bucket": evil, "value": 3.0}
    ]
    page = render(cfg, record, rows, {}, {}, ["plan"])
    assert not any(c in page for c in "\u202e\x00\u2066\u2069")
    assert "gnp.\\u202eexe\\u0000\\u2066x\\u2069" in page
