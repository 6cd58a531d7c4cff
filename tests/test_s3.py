"""The embedded engine on object storage: Delta tables on s3:// against a local S3-compatible server (moto).

Credentials and the endpoint come from the environment, as they would on a cluster: the driver's
delta-rs calls read ``os.environ``; the Python workers get the same variables the way
``spark.executorEnv.*`` gives them, through the SparkContext's environment.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from jobs.tables import read_table, register, table_version, write_table
from tests.helpers import D1, D2, ID_X_NAME_DS, append_two_days, delta_rs_rows, id_x_name_rows, require_native

BUCKET = "lake"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 in its own process, with one empty bucket.

    Its own process, not moto's ThreadedMotoServer: deltalake's ``is_deltatable`` holds the GIL
    while it waits for the network, so a server thread in this process could never answer it.
    """
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e .[test])")
    import boto3

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server on {endpoint} did not start (exit code {server.poll()})")
                time.sleep(0.1)
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        s3.create_bucket(Bucket=BUCKET)
        yield {"endpoint": endpoint, "client": s3}
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def s3_env(spark, s3_endpoint, monkeypatch):
    """AWS_* variables for the driver and for Spark's Python workers; both restored afterwards."""
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint["endpoint"],
        "AWS_ALLOW_HTTP": "true",  # delta-rs refuses a plain-http endpoint without it
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    environment = spark.sparkContext.environment
    saved = {k: environment[k] for k in env if k in environment}
    environment.update(env)
    register(spark)  # a registered data source carries the environment its workers start with
    try:
        yield env
    finally:
        for key in env:
            environment.pop(key, None)
        environment.update(saved)
        register(spark)


@pytest.fixture
def s3_path(s3_env, request):
    return f"s3://{BUCKET}/{_safe(request.node.name)}"


def _safe(name: str) -> str:
    return name.replace("[", "-").replace("]", "")


@pytest.fixture(scope="module")
def s3a(spark, s3_endpoint):
    """Hadoop's S3A (hadoop-aws, the native engine's path to S3) pointed at the moto server, as a
    cluster's core-site.xml or spark.hadoop.fs.s3a.* settings would; put back afterwards."""
    settings = {
        "fs.s3a.endpoint": s3_endpoint["endpoint"],
        "fs.s3a.endpoint.region": "us-east-1",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": "test",
        "fs.s3a.secret.key": "test",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    saved = {k: hadoop.get(k) for k in settings}
    for key, value in settings.items():
        hadoop.set(key, value)
    try:
        yield settings
    finally:
        for key, value in saved.items():
            hadoop.unset(key) if value is None else hadoop.set(key, value)


@pytest.fixture(params=["embedded", "native"])
def s3_engine(request, spark, s3_env):
    """Each engine on S3, with the table path as that engine's users write it: s3:// for the
    embedded engine (delta-rs's spelling), s3a:// for delta-spark through hadoop-aws."""
    if request.param == "native":
        require_native(spark)
        request.getfixturevalue("s3a")
        path = f"s3a://{BUCKET}/{_safe(request.node.name)}"
    else:
        path = f"s3://{BUCKET}/{_safe(request.node.name)}"
    return request.param, path


def _keys(client, prefix: str) -> list[str]:
    listing = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in listing for o in page.get("Contents", []))


@contextlib.contextmanager
def _without_aws_environment():
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def _delta_rs_rows(path: str, env: dict[str, str], version: int | None = None) -> list[tuple]:
    """The table's rows as delta-rs reads them with explicit storage options, the environment cleared."""
    with _without_aws_environment():
        return delta_rs_rows(path, version=version, storage_options=dict(env))


def test_table_written_to_s3_reads_back_through_the_engine_and_delta_rs(spark, s3_engine, s3_env, s3_endpoint):
    engine, s3_path = s3_engine
    rows = id_x_name_rows(D1, 5) + id_x_name_rows(D2, 4, 100)
    write_table(spark.createDataFrame(rows, ID_X_NAME_DS), s3_path, engine, mode="append", partition_by=["ds"])

    assert _delta_rs_rows(s3_path, s3_env) == sorted(rows)
    for reader in ("embedded", "native") if engine == "native" else ("embedded",):
        assert_df_equality(
            read_table(spark, s3_path, reader),
            spark.createDataFrame(rows, ID_X_NAME_DS),
            ignore_row_order=True,
            ignore_nullable=True,
        )
    # the data files landed in the bucket under Hive-style partition folders, next to the log
    prefix = s3_path.split(f"/{BUCKET}/", 1)[1]
    keys = _keys(s3_endpoint["client"], prefix + "/")
    assert f"{prefix}/_delta_log/00000000000000000000.json" in keys
    assert {k.split("/")[1] for k in keys if k.endswith(".parquet")} == {"ds=2024-06-01", "ds=2024-06-02"}


def test_partition_filter_on_s3_reads_only_that_partition(spark, s3_engine):
    engine, s3_path = s3_engine
    append_two_days(spark, s3_path, engine, 3, 3, 10)
    df = read_table(spark, s3_path, engine, partitions=[{"ds": D2}])
    assert sorted(r.id for r in df.collect()) == [10, 11, 12]
    # the D1 file was never planned: delta-spark lists the files it reads; the embedded engine's
    # Python reader (object storage's path) makes one input partition per planned file
    planned = len(df.inputFiles()) if engine == "native" else df.rdd.getNumPartitions()
    assert planned == 1


def test_overwrite_of_one_s3_partition_replaces_it_and_keeps_the_other(spark, s3_engine, s3_env):
    engine, s3_path = s3_engine
    append_two_days(spark, s3_path, engine, 4, 4, 100)
    replacement = id_x_name_rows(D2, 2, 500)
    write_table(
        spark.createDataFrame(replacement, ID_X_NAME_DS),
        s3_path,
        engine,
        mode="overwrite",
        partition_by=["ds"],
        replace_partitions=[{"ds": D2}],
    )
    expected = sorted(id_x_name_rows(D1, 4) + replacement)
    assert _delta_rs_rows(s3_path, s3_env) == expected
    assert sorted(tuple(r) for r in read_table(spark, s3_path, engine).collect()) == sorted(expected)


def test_time_travel_on_s3_reads_the_earlier_snapshot(spark, s3_engine, s3_env):
    engine, s3_path = s3_engine
    first = id_x_name_rows(D1, 3)
    write_table(spark.createDataFrame(first, ID_X_NAME_DS), s3_path, engine, mode="append", partition_by=["ds"])
    v0 = table_version(s3_path, engine)
    write_table(
        spark.createDataFrame(id_x_name_rows(D1, 2, 50), ID_X_NAME_DS),
        s3_path,
        engine,
        mode="overwrite",
        partition_by=["ds"],
        replace_partitions=[{"ds": D1}],
    )
    assert table_version(s3_path, engine) == v0 + 1
    assert sorted(tuple(r) for r in read_table(spark, s3_path, engine, version=v0).collect()) == sorted(first)
    assert _delta_rs_rows(s3_path, s3_env, version=v0) == sorted(first)
    assert sorted(r.id for r in read_table(spark, s3_path, engine).collect()) == [50, 51]


def test_failed_write_to_s3_leaves_no_files_and_no_commit(spark, s3_path, s3_endpoint):
    write_table(
        spark.createDataFrame(id_x_name_rows(D1, 2), ID_X_NAME_DS), s3_path, "embedded", mode="append", partition_by=["ds"]
    )
    prefix = s3_path.removeprefix(f"s3://{BUCKET}/") + "/"
    before = _keys(s3_endpoint["client"], prefix)
    with pytest.raises(Exception, match="outside"):
        write_table(
            spark.createDataFrame(id_x_name_rows(D2, 2), ID_X_NAME_DS),
            s3_path,
            "embedded",
            mode="overwrite",
            partition_by=["ds"],
            replace_partitions=[{"ds": D1}],
        )
    after = _keys(s3_endpoint["client"], prefix)
    markers = f"{prefix}_lakescore/ended/"  # one per ended write, for attempts still running (see DeltaWriter.abort)
    assert len([k for k in after if k.startswith(markers)]) == 2  # the first write's commit, this one's abort
    assert [k for k in after if not k.startswith(markers)] == [k for k in before if not k.startswith(markers)]  # D2 files deleted


def test_failed_write_to_an_escaped_s3_partition_leaves_no_files(spark, s3_path, s3_endpoint):
    """Partition directories are Hive-escaped ("p=t%3A1"): abort must delete that key, not "p=t:1"."""
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("p", T.StringType())])
    write_table(spark.createDataFrame([(1, "a")], schema), s3_path, "embedded", mode="append", partition_by=["p"])
    prefix = s3_path.removeprefix(f"s3://{BUCKET}/") + "/"
    before = [k for k in _keys(s3_endpoint["client"], prefix) if "_lakescore/" not in k]
    with pytest.raises(Exception, match="outside"):
        write_table(
            spark.createDataFrame([(2, "t:1"), (3, "x/y")], schema),
            s3_path,
            "embedded",
            mode="overwrite",
            partition_by=["p"],
            replace_partitions=[{"p": "a"}],
        )
    assert [k for k in _keys(s3_endpoint["client"], prefix) if "_lakescore/" not in k] == before


def test_s3a_uri_reads_the_same_table_as_s3(spark, s3_path):
    rows = id_x_name_rows(D1, 3) + id_x_name_rows(D2, 2, 10)
    write_table(spark.createDataFrame(rows, ID_X_NAME_DS), s3_path, "embedded", mode="append", partition_by=["ds"])
    hadoop_spelling = "s3a://" + s3_path.removeprefix("s3://")
    assert sorted(tuple(r) for r in read_table(spark, hadoop_spelling, "embedded").collect()) == sorted(rows)
