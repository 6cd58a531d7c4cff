"""Every Delta primitive type, nested types and nulls round-trip through each engine, both ways
(native skipped without delta-spark's jars); partition pruning on every comparison."""

import datetime as dt
import decimal

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import types as T

from jobs.tables import read_table, write_table

TS = dt.datetime(2024, 6, 1, 12, 30, 15, 123456)
COLUMNS = [
    # name, Spark type, Arrow type (as delta-rs stores it), a value
    ("b", T.BooleanType(), pa.bool_(), True),
    ("i8", T.ByteType(), pa.int8(), -7),
    ("i16", T.ShortType(), pa.int16(), 300),
    ("i32", T.IntegerType(), pa.int32(), -70000),
    ("i64", T.LongType(), pa.int64(), 2**40),
    ("f32", T.FloatType(), pa.float32(), 1.5),
    ("f64", T.DoubleType(), pa.float64(), -2.25e-300),
    ("dec", T.DecimalType(18, 4), pa.decimal128(18, 4), decimal.Decimal("-12345.6789")),
    ("s", T.StringType(), pa.string(), "héllo ✓"),
    ("bin", T.BinaryType(), pa.binary(), b"\x00\xffbytes"),
    ("d", T.DateType(), pa.date32(), dt.date(1999, 12, 31)),
    ("ts", T.TimestampType(), pa.timestamp("us", tz="UTC"), TS),
    ("ntz", T.TimestampNTZType(), pa.timestamp("us"), TS),
    ("arr", T.ArrayType(T.LongType()), pa.list_(pa.int64()), [1, None, 3]),
    ("m", T.MapType(T.StringType(), T.DoubleType()), pa.map_(pa.string(), pa.float64()), {"k": 0.5}),
    (
        "st",
        T.StructType([T.StructField("x", T.IntegerType()), T.StructField("y", T.StringType())]),
        pa.struct([("x", pa.int32()), ("y", pa.string())]),
        (4, "z"),
    ),
]
SPARK_SCHEMA = T.StructType([T.StructField(n, t, True) for n, t, _, _ in COLUMNS] + [T.StructField("ds", T.DateType())])
D1 = dt.date(2024, 6, 1)


def spark_value(name, value):
    if name == "ts":
        return value.replace(tzinfo=dt.UTC)
    return value


def normalize(row: dict) -> dict:
    """Collected Spark rows: timestamps come back naive in the session's UTC; structs as Rows; maps as dicts."""
    out = {}
    for name, value in row.items():
        if hasattr(value, "asDict"):
            value = tuple(value)
        elif isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        out[name] = value
    return out


def expected_rows():
    full = {n: v for n, _, _, v in COLUMNS} | {"ds": D1}
    empty = {n: None for n, _, _, _ in COLUMNS} | {"ds": D1}
    return [full, empty]


def test_every_type_written_by_spark_reads_back_exactly_with_delta_rs(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    rows = [tuple(spark_value(k, r[k]) if r[k] is not None else None for k in SPARK_SCHEMA.fieldNames()) for r in expected_rows()]
    write_table(spark.createDataFrame(rows, SPARK_SCHEMA), path, engine, mode="append", partition_by=["ds"])
    got = sorted(DeltaTable(path).to_pyarrow_table().to_pylist(), key=lambda r: r["b"] is None)
    for want, have in zip(expected_rows(), got, strict=True):
        for name, _, _, _ in COLUMNS:
            value = have[name]
            if name == "ts" and value is not None:
                value = value.replace(tzinfo=None)
            if name == "m" and value is not None:
                value = dict(value)
            if name == "st" and value is not None:
                value = (value["x"], value["y"])
            assert value == want[name], name
    schema = pa.schema(DeltaTable(path).schema().to_arrow())
    assert {f.name: str(f.type) for f in schema}["dec"] == "decimal128(18, 4)"


def test_every_type_written_by_delta_rs_reads_back_exactly_in_spark(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    arrays = {}
    for name, _, arrow_type, value in COLUMNS:
        v = value.replace(tzinfo=dt.UTC) if name == "ts" else value
        if name == "st":
            v = {"x": value[0], "y": value[1]}
        if name == "m":
            v = list(value.items())
        arrays[name] = pa.array([v, None], type=arrow_type)
    arrays["ds"] = pa.array([D1, D1], pa.date32())
    write_deltalake(path, pa.table(arrays), partition_by=["ds"])
    # the embedded engine has two readers (Spark's Parquet reader on local files, the Python data
    # source elsewhere): each must read every type exactly
    for reader in ("spark", "python") if engine == "embedded" else ("auto",):
        df = read_table(spark, path, engine, embedded_reader=reader)
        assert [(f.name, f.dataType) for f in df.schema.fields] == [(f.name, f.dataType) for f in SPARK_SCHEMA.fields], reader
        got = sorted((normalize(r.asDict()) for r in df.collect()), key=lambda r: r["b"] is None)
        assert got == expected_rows(), reader


def day(d):
    return dt.date(2024, 6, d)


@pytest.mark.parametrize(
    ("condition", "filters", "expected_days"),
    [
        ("ds = '2024-06-02'", [("ds", "=", day(2))], [2]),
        ("ds IN ('2024-06-01', '2024-06-03')", [("ds", "in", [day(1), day(3)])], [1, 3]),
        ("ds < '2024-06-02'", [("ds", "<", day(2))], [1]),
        ("ds <= '2024-06-02'", [("ds", "<=", day(2))], [1, 2]),
        ("ds > '2024-06-02'", [("ds", ">", day(2))], [3, 4]),
        ("ds >= '2024-06-03'", [("ds", ">=", day(3))], [3, 4]),
        ("ds BETWEEN '2024-06-02' AND '2024-06-03'", [("ds", ">=", day(2)), ("ds", "<=", day(3))], [2, 3]),
        (
            "ds > '2024-06-01' AND ds < '2024-06-04' AND ds <> '2024-06-02'",
            [("ds", ">", day(1)), ("ds", "<", day(4)), ("ds", "!=", day(2))],
            [3],
        ),
        ("ds NOT IN ('2024-06-01', '2024-06-04')", [("ds", "not in", [day(1), day(4)])], [2, 3]),
    ],
)
def test_partition_pruning_plans_only_matching_files(spark, engine, tmp_path_factory, caplog, condition, filters, expected_days):
    path = tmp_path_factory.getbasetemp() / "pruning"
    if not DeltaTable.is_deltatable(str(path)):
        days = [day(d) for d in range(1, 5)]
        write_deltalake(str(path), pa.table({"id": list(range(4)), "ds": pa.array(days, pa.date32())}), partition_by=["ds"])
    caplog.set_level("INFO", logger="lakescore.delta")
    planned = read_table(spark, str(path), engine, filters=filters)
    assert sorted(r.ds.day for r in planned.collect()) == expected_days
    where = read_table(spark, str(path), engine).where(condition)
    assert sorted(r.ds.day for r in where.collect()) == expected_days
    if engine == "embedded":
        # the planner skipped the other days' files before Spark saw any: it reads exactly these
        assert len(planned.inputFiles()) == len(expected_days)
        assert f"{len(expected_days)} of 4 files planned ({4 - len(expected_days)} skipped by partition filters" in caplog.text
        # the Python reader gets the SQL condition pushed down by Spark: one Spark partition per planned file
        pushed = read_table(spark, str(path), engine, embedded_reader="python").where(condition)
        assert sorted(r.ds.day for r in pushed.collect()) == expected_days
        assert pushed.rdd.getNumPartitions() == max(len(expected_days), 1)


def test_not_equal_on_a_partition_column_never_returns_null_partitions(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    days = pa.array([dt.date(2024, 6, 1), dt.date(2024, 6, 2), None], pa.date32())
    write_deltalake(path, pa.table({"id": [1, 2, 3], "ds": days}), partition_by=["ds"])
    df = read_table(spark, path, engine).where("ds <> '2024-06-02'")
    assert [r.id for r in df.collect()] == [1]  # SQL: NULL <> x is null, so id 3 is not returned
    planned = read_table(spark, path, engine, filters=[("ds", "!=", dt.date(2024, 6, 2))])
    assert [r.id for r in planned.collect()] == [1]
    if engine == "embedded":
        assert len(planned.inputFiles()) == 1
        pushed = read_table(spark, path, engine, embedded_reader="python").where("ds <> '2024-06-02'")
        assert [r.id for r in pushed.collect()] == [1] and pushed.rdd.getNumPartitions() == 1
    assert sorted(r.id for r in read_table(spark, path, engine).where("ds IS NULL").collect()) == [3]
