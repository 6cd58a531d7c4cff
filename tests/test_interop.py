"""The two engines against each other: a table either writes, the other reads with identical rows,
schema and partition values; and delta-spark's own commands work on tables LakeScore wrote.

These need both engines, so they run only where delta-spark's jars are on the classpath (the
``native`` fixture fails in CI rather than skip: see conftest)."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os

import pytest
from pyspark.sql import types as T

from jobs.tables import read_table, table_version, write_table

TS = dt.datetime(2024, 6, 1, 12, 30, 15, 123456)
NASTY = ["a b", "x/y", "k=v", "50%", "t:1", "héllo ✓", "#?&", None]

SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType(), False),
        T.StructField("b", T.BooleanType()),
        T.StructField("i8", T.ByteType()),
        T.StructField("i16", T.ShortType()),
        T.StructField("i64", T.LongType()),
        T.StructField("f32", T.FloatType()),
        T.StructField("f64", T.DoubleType()),
        T.StructField("dec", T.DecimalType(38, 10)),
        T.StructField("s", T.StringType()),
        T.StructField("bin", T.BinaryType()),
        T.StructField("d", T.DateType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("ntz", T.TimestampNTZType()),
        T.StructField("arr", T.ArrayType(T.StructType([T.StructField("x", T.DoubleType()), T.StructField("y", T.StringType())]))),
        T.StructField("m", T.MapType(T.StringType(), T.ArrayType(T.LongType()))),
        T.StructField(
            "st",
            T.StructType(
                [T.StructField("n", T.LongType()), T.StructField("inner", T.StructType([T.StructField("z", T.DateType())]))]
            ),
        ),
        T.StructField("p", T.StringType()),
    ]
)


def matrix_rows() -> list[tuple]:
    """Every type with edge values (NaN, ±inf, -0.0, extreme decimals and dates, nulls in every
    column and inside nested values), one row per awkward string partition value."""
    values = [
        (
            True,
            -128,
            32767,
            2**62,
            float("nan"),
            float("inf"),
            decimal.Decimal("-1234567890123456789012345678.0123456789"),
            "héllo ✓",
            b"\x00\xff",
            dt.date(1, 1, 1),
            TS.replace(tzinfo=dt.UTC),
            TS,
            [(float("-inf"), "a"), None, (None, None)],
            {"k": [1, None]},
            (5, (dt.date(9999, 12, 31),)),
        ),
        (
            False,
            127,
            -32768,
            -(2**63),
            -0.0,
            float("-inf"),
            decimal.Decimal("0E-10"),
            "",
            b"",
            dt.date(1582, 10, 10),
            dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
            dt.datetime(2262, 4, 11, 23, 47, 16),
            [],
            {},
            (None, None),
        ),
    ]
    nulls = (None,) * 15
    out = []
    for i, p in enumerate(NASTY):
        body = values[i % 2] if i < 6 else nulls
        out.append((i, *body, p))
    return out


def canonical(row) -> tuple:
    """A collected row as comparable values: NaN as a token (NaN != NaN), -0.0 kept apart from 0.0."""

    def one(v):
        if isinstance(v, float):
            return "NaN" if math.isnan(v) else (v, math.copysign(1, v))
        if isinstance(v, (bytearray, memoryview)):
            return bytes(v)
        if hasattr(v, "asDict"):
            return tuple(one(x) for x in v)
        if isinstance(v, list):
            return [one(x) for x in v]
        if isinstance(v, dict):
            return sorted((k, one(x)) for k, x in v.items())
        return v

    return tuple(one(v) for v in row)


def collected(df) -> list[tuple]:
    return sorted((canonical(r) for r in df.collect()), key=lambda r: r[0])


@pytest.mark.parametrize(("writer", "reader"), [("embedded", "native"), ("native", "embedded")])
def test_a_table_either_engine_writes_the_other_reads_bit_for_bit(spark, native, tmp_path, writer, reader):
    path = str(tmp_path / "t")
    df = spark.createDataFrame(matrix_rows(), SCHEMA)
    write_table(df, path, writer, mode="append", partition_by=["p"])
    want = collected(df)
    for engine in (writer, reader):
        back = read_table(spark, path, engine)
        assert [(f.name, f.dataType) for f in back.schema.fields] == [(f.name, f.dataType) for f in SCHEMA.fields], engine
        assert collected(back) == want, engine
    # the embedded engine's other decoder too: the Python data source (object storage's path)
    if reader == "embedded":
        assert collected(read_table(spark, path, "embedded", embedded_reader="python")) == want
    # each partition value prunes to its own rows on the reader; the null partition by IS NULL
    # (or a spec's None, which names it)
    for value in ("x/y", "50%"):
        one = read_table(spark, path, reader, partitions=[{"p": value}])
        assert [r.id for r in one.collect()] == [NASTY.index(value)], value
    nulls = read_table(spark, path, reader, filters=[("p", "is null", None)])
    assert [r.id for r in nulls.collect()] == [NASTY.index(None)]


@pytest.mark.parametrize("writer", ["embedded", "native"])
def test_replacing_a_partition_on_one_engine_is_seen_by_the_other(spark, native, tmp_path, writer):
    path = str(tmp_path / "t")
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("ds", T.DateType())])
    d1, d2 = dt.date(2024, 6, 1), dt.date(2024, 6, 2)
    other = "native" if writer == "embedded" else "embedded"
    write_table(spark.createDataFrame([(1, d1), (2, d2)], schema), path, other, mode="append", partition_by=["ds"])
    write_table(
        spark.createDataFrame([(10, d1), (11, d1)], schema),
        path,
        writer,
        mode="overwrite",
        partition_by=["ds"],
        replace_partitions=[{"ds": d1}],
    )
    for engine in ("embedded", "native"):
        assert sorted(r.id for r in read_table(spark, path, engine).collect()) == [2, 10, 11], engine
    assert table_version(path, "native") == table_version(path, "embedded") == 1


def test_delta_spark_commands_work_on_a_table_the_embedded_engine_wrote(spark, native, tmp_path):
    path = str(tmp_path / "t")
    schema = T.StructType(
        [T.StructField("id", T.LongType()), T.StructField("v", T.DoubleType()), T.StructField("ds", T.DateType())]
    )
    days = [dt.date(2024, 6, d) for d in (1, 2)]
    # as many commits as delta-spark's default checkpoint interval (10): its first commit on our
    # log, the OPTIMIZE at version 10, writes a checkpoint that LakeScore must then read through
    for i in range(10):
        rows = [(i * 10 + j, float(j), days[j % 2]) for j in range(4)]
        write_table(spark.createDataFrame(rows, schema).coalesce(1), path, "embedded", mode="append", partition_by=["ds"])
    want = collected(read_table(spark, path, "embedded"))
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert (detail.format, detail.partitionColumns, detail.numFiles) == ("delta", ["ds"], 20)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").orderBy("version").collect()
    assert [h.version for h in history] == list(range(10))

    spark.sql(f"OPTIMIZE delta.`{path}`")  # version 10: each day's 10 files compacted into one
    assert os.path.exists(os.path.join(path, "_delta_log", f"{10:020d}.checkpoint.parquet"))
    spark.sql(f"INSERT INTO delta.`{path}` VALUES (999, 1.0, DATE'2024-06-03')")  # version 11
    after = read_table(spark, path, "embedded")
    assert collected(after) == sorted([*want, canonical((999, 1.0, dt.date(2024, 6, 3)))], key=lambda r: r[0])
    assert len(after.inputFiles()) == 3  # the two compacted files and the inserted one

    spark.sql(f"RESTORE TABLE delta.`{path}` TO VERSION AS OF 9")  # version 12
    assert collected(read_table(spark, path, "embedded")) == want
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        removed = spark.sql(f"VACUUM delta.`{path}` RETAIN 0 HOURS").collect()
    finally:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")
    assert removed  # the compacted files and the inserted one, which the restored snapshot does not use
    assert collected(read_table(spark, path, "embedded")) == want
    assert collected(read_table(spark, path, "native")) == want
    # VACUUM commits twice on delta-spark 4 (VACUUM START and VACUUM END): versions 13 and 14
    assert table_version(path, "embedded") == table_version(path, "native") == 14


def test_an_embedded_write_lists_the_invariants_feature_a_crash_left_out(spark, native, tmp_path):
    # delta-rs's own create leaves out the invariants writer feature on writer 7 with NOT NULL
    # columns (delta-io/delta-rs#2882): what a crash between our create and its feature commit leaves
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    path = str(tmp_path / "t")
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("ntz", pa.timestamp("us"))])
    write_deltalake(path, pa.table({"id": [1], "ntz": [TS]}, schema=schema))
    protocol = DeltaTable(path).protocol()
    assert protocol.min_writer_version == 7 and "invariants" not in (protocol.writer_features or [])
    spark_schema = T.StructType([T.StructField("id", T.LongType(), False), T.StructField("ntz", T.TimestampNTZType())])
    write_table(spark.createDataFrame([(2, TS)], spark_schema), path, "embedded", mode="append")
    assert "invariants" in DeltaTable(path).protocol().writer_features
    assert sorted(r.id for r in read_table(spark, path, "native").collect()) == [1, 2]
