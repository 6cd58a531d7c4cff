"""The embedded engine on object storage: Delta tables on s3:// against a local S3-compatible server (moto).

Credentials and the endpoint come from the environment, as they would on a cluster: the driver's
delta-rs calls read ``os.environ``; the Python workers get the same variables the way
``spark.executorEnv.*`` gives them, through the SparkContext's environment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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

D1, D2 = dt.date(2024, 6, 1), dt.date(2024, 6, 2)
SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("x", T.DoubleType()),
        T.StructField("name", T.StringType()),
        T.StructField("ds", T.DateType()),
    ]
)
BUCKET = "lake"


def rows_for(day, n, offset=0):
    return [(offset + i, i * 0.5, f"n{offset + i}" if i % 3 else None, day) for i in range(n)]


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
    return f"s3://{BUCKET}/{request.node.name}"


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
    from deltalake import DeltaTable

    with _without_aws_environment():
        frame = DeltaTable(path, version=version, storage_options=dict(env)).to_pandas()
    rows = [
        (int(i), float(x), None if not isinstance(n, str) else n, d)
        for i, x, n, d in frame[["id", "x", "name", "ds"]].itertuples(index=False, name=None)
    ]
    return sorted(rows, key=lambda r: (r[3], r[0]))


def test_table_written_to_s3_reads_back_through_the_engine_and_delta_rs(spark, s3_path, s3_env, s3_endpoint):
    rows = rows_for(D1, 5) + rows_for(D2, 4, 100)
    write_table(spark.createDataFrame(rows, SCHEMA), s3_path, "embedded", mode="append", partition_by=["ds"])

    expected = sorted(rows, key=lambda r: (r[3], r[0]))
    assert _delta_rs_rows(s3_path, s3_env) == expected
    assert_df_equality(
        read_table(spark, s3_path, "embedded"), spark.createDataFrame(rows, SCHEMA), ignore_row_order=True, ignore_nullable=True
    )
    # the data files landed in the bucket under Hive-style partition folders, next to the log
    prefix = s3_path.removeprefix(f"s3://{BUCKET}/")
    keys = _keys(s3_endpoint["client"], prefix + "/")
    assert f"{prefix}/_delta_log/00000000000000000000.json" in keys
    assert {k.split("/")[1] for k in keys if k.endswith(".parquet")} == {"ds=2024-06-01", "ds=2024-06-02"}


def test_partition_filter_on_s3_reads_only_that_partition(spark, s3_path):
    write_table(spark.createDataFrame(rows_for(D1, 3) + rows_for(D2, 3, 10), SCHEMA), s3_path, "embedded", mode="append", partition_by=["ds"])
    df = read_table(spark, s3_path, "embedded", partitions=[{"ds": D2}])
    assert sorted(r.id for r in df.collect()) == [10, 11, 12]
    assert df.rdd.getNumPartitions() == 1  # the D1 file was never planned


def test_overwrite_of_one_s3_partition_replaces_it_and_keeps_the_other(spark, s3_path, s3_env):
    write_table(spark.createDataFrame(rows_for(D1, 4) + rows_for(D2, 4, 100), SCHEMA), s3_path, "embedded", mode="append", partition_by=["ds"])
    replacement = rows_for(D2, 2, 500)
    write_table(
        spark.createDataFrame(replacement, SCHEMA), s3_path, "embedded", mode="overwrite", partition_by=["ds"], replace_partitions=[{"ds": D2}]
    )
    expected = sorted(rows_for(D1, 4) + replacement, key=lambda r: (r[3], r[0]))
    assert _delta_rs_rows(s3_path, s3_env) == expected
    assert sorted(tuple(r) for r in read_table(spark, s3_path, "embedded").collect()) == sorted(expected)


def test_time_travel_on_s3_reads_the_earlier_snapshot(spark, s3_path, s3_env):
    first = rows_for(D1, 3)
    write_table(spark.createDataFrame(first, SCHEMA), s3_path, "embedded", mode="append", partition_by=["ds"])
    v0 = table_version(s3_path)
    write_table(
        spark.createDataFrame(rows_for(D1, 2, 50), SCHEMA), s3_path, "embedded", mode="overwrite", partition_by=["ds"], replace_partitions=[{"ds": D1}]
    )
    assert table_version(s3_path) == v0 + 1
    assert sorted(tuple(r) for r in read_table(spark, s3_path, "embedded", version=v0).collect()) == sorted(first)
    assert _delta_rs_rows(s3_path, s3_env, version=v0) == sorted(first)
    assert sorted(r.id for r in read_table(spark, s3_path, "embedded").collect()) == [50, 51]


def test_failed_write_to_s3_leaves_no_files_and_no_commit(spark, s3_path, s3_endpoint):
    write_table(spark.createDataFrame(rows_for(D1, 2), SCHEMA), s3_path, "embedded", mode="append", partition_by=["ds"])
    prefix = s3_path.removeprefix(f"s3://{BUCKET}/") + "/"
    before = _keys(s3_endpoint["client"], prefix)
    with pytest.raises(Exception, match="outside"):
        write_table(
            spark.createDataFrame(rows_for(D2, 2), SCHEMA), s3_path, "embedded", mode="overwrite", partition_by=["ds"], replace_partitions=[{"ds": D1}]
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
            spark.createDataFrame([(2, "t:1"), (3, "x/y")], schema), s3_path, "embedded", mode="overwrite", partition_by=["p"], replace_partitions=[{"p": "a"}]
        )
    assert [k for k in _keys(s3_endpoint["client"], prefix) if "_lakescore/" not in k] == before


def test_s3a_uri_reads_the_same_table_as_s3(spark, s3_path):
    rows = rows_for(D1, 3) + rows_for(D2, 2, 10)
    write_table(spark.createDataFrame(rows, SCHEMA), s3_path, "embedded", mode="append", partition_by=["ds"])
    hadoop_spelling = "s3a://" + s3_path.removeprefix("s3://")
    assert sorted(tuple(r) for r in read_table(spark, hadoop_spelling, "embedded").collect()) == sorted(rows)
