"""The embedded engine's two readers: Spark's Parquet reader only where it provably returns the
rows the Delta log describes, the Python data source elsewhere, and features neither can honor
refused by name."""

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.tables import read_table, write_table
from jobs.tables.embedded import FileSlice
from jobs.tables.reading import _layout_refusal

NASTY = ["a b", "x/y", "k=v", "50%", "t:1", "héllo ✓", "#?&", None]


def rows_of(df, *columns):
    return sorted((tuple(r[c] for c in columns) for r in df.collect()), key=repr)


@pytest.mark.parametrize("writer", ["lakescore", "delta-rs"])
def test_string_partition_values_with_escaped_characters_read_exactly(spark, tmp_path, writer):
    path = str(tmp_path / "t")
    ids = list(range(len(NASTY)))
    if writer == "delta-rs":
        write_deltalake(path, pa.table({"id": ids, "p": pa.array(NASTY, pa.string())}), partition_by=["p"])
    else:
        schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("p", T.StringType())])
        write_table(
            spark.createDataFrame(list(zip(ids, NASTY, strict=True)), schema), path, "embedded", mode="append", partition_by=["p"]
        )
    truth = sorted(((r["id"], r["p"]) for r in DeltaTable(path).to_pyarrow_table().to_pylist()), key=repr)
    assert truth == sorted(zip(ids, NASTY, strict=True), key=repr)
    # whichever reader auto picks (files whose directory Spark would unescape differently go
    # through the Python reader), and the Python reader forced, give delta-rs's rows
    assert rows_of(read_table(spark, path, "embedded"), "id", "p") == truth
    assert rows_of(read_table(spark, path, "embedded", embedded_reader="python"), "id", "p") == truth
    if writer == "lakescore":  # Hive's escaping, as delta-spark lays out directories: Spark reads them all
        assert rows_of(read_table(spark, path, "embedded", embedded_reader="spark"), "id", "p") == truth
    one = read_table(spark, path, "embedded", filters=[("p", "=", "k=v")])
    assert rows_of(one, "id", "p") == [(2, "k=v")]


def test_typed_partition_columns_and_null_partitions_go_through_spark_parquet(spark, tmp_path):
    path = str(tmp_path / "t")
    data = pa.table(
        {
            "id": [1, 2, 3, 4],
            "n": pa.array([-5, 7, None, 7], pa.int32()),
            "flag": pa.array([True, False, True, None]),
            "d": pa.array([dt.date(2024, 1, 31), None, dt.date(1999, 12, 31), dt.date(2024, 1, 31)], pa.date32()),
        }
    )
    write_deltalake(path, data, partition_by=["n", "flag", "d"])
    df = read_table(spark, path, "embedded", embedded_reader="spark")  # raises if it could not
    assert [(f.name, f.dataType) for f in df.schema.fields] == [
        ("id", T.LongType()),
        ("n", T.IntegerType()),
        ("flag", T.BooleanType()),
        ("d", T.DateType()),
    ]
    assert rows_of(df, "id", "n", "flag", "d") == sorted((tuple(r.values()) for r in data.to_pylist()), key=repr)
    assert rows_of(read_table(spark, path, "embedded", filters=[("n", "=", 7), ("flag", "is null", None)]), "id") == [(4,)]


def test_dates_and_timestamps_before_1582_are_not_rebased(spark, tmp_path):
    """Spark would refuse (or shift) such dates in Parquet files that lack its version tag."""
    path = str(tmp_path / "t")
    old_day, old_moment = dt.date(1000, 3, 1), dt.datetime(1200, 5, 6, 7, 8, 9, 123456)
    write_deltalake(
        path,
        pa.table({"id": [1], "d": pa.array([old_day], pa.date32()), "ts": pa.array([old_moment], pa.timestamp("us"))}),
    )
    row = read_table(spark, path, "embedded", embedded_reader="spark").collect()[0]
    assert (row.d, row.ts) == (old_day, old_moment)


def test_timestamp_partitions_are_read_by_the_python_reader(spark, tmp_path, caplog):
    path = str(tmp_path / "t")
    moments = [dt.datetime(2024, 6, 1, 12, 30), dt.datetime(2024, 6, 2, 0, 0, 1)]
    write_deltalake(path, pa.table({"id": [1, 2], "at": pa.array(moments, pa.timestamp("us"))}), partition_by=["at"])
    caplog.set_level("INFO", logger="lakescore.delta")
    df = read_table(spark, path, "embedded")
    assert rows_of(df, "id", "at") == [(1, moments[0]), (2, moments[1])]
    assert "through the Python reader, since partition column 'at' is timestamp_ntz" in caplog.text
    with pytest.raises(ValueError, match="Spark's Parquet reader cannot read it exactly: partition column 'at'"):
        read_table(spark, path, "embedded", embedded_reader="spark")


def test_floating_fields_in_structs_are_read_by_the_python_reader(spark, tmp_path):
    """Spark pushes struct-field comparisons into Parquet statistics, where pyarrow leaves NaN out."""
    path = str(tmp_path / "t")
    s = pa.array([{"x": float("nan")}, {"x": 1.0}], pa.struct([("x", pa.float64())]))
    write_deltalake(path, pa.table({"id": [1, 2], "s": s}))
    df = read_table(spark, path, "embedded").where(F.col("s.x") > 5)
    assert [r.id for r in df.collect()] == [1]  # NaN is above every number in Spark
    with pytest.raises(ValueError, match="column 's' has a floating field inside a struct"):
        read_table(spark, path, "embedded", embedded_reader="spark")


@pytest.mark.parametrize(
    ("relative", "values", "reason"),
    [
        ("ds=2024-06-01/part-0.parquet", (("ds", dt.date(2024, 6, 1)),), None),
        ("ds=__HIVE_DEFAULT_PARTITION__/part-0.parquet", (("ds", None),), None),
        # log paths are URIs: "p=a%20b" is the directory "p=a b", "p=a%2520b" the directory "p=a%20b"
        ("p=a%20b/part-0.parquet", (("p", "a b"),), None),
        ("p=a%2520b/part-0.parquet", (("p", "a b"),), None),
        ("p=50%2525/part-0.parquet", (("p", "50%"),), None),
        # delta-rs escapes non-ASCII as UTF-8 bytes, which Spark would unescape one char per byte
        ("p=h%25C3%25A9llo/part-0.parquet", (("p", "héllo"),), "does not spell"),
        ("ds=2024-06-02/part-0.parquet", (("ds", dt.date(2024, 6, 1)),), "does not spell"),
        ("a0/part-0.parquet", (("ds", dt.date(2024, 6, 1)),), "does not spell"),
        ("part-0.parquet", (("ds", dt.date(2024, 6, 1)),), "not in the table's partition directories"),
        ("ds=2024-06-01/_part-0.parquet", (("ds", dt.date(2024, 6, 1)),), "hidden"),
        ("s3://elsewhere/part-0.parquet", (), "outside"),
        # the string itself, not a null: Spark's discovery would make it one
        ("p=__HIVE_DEFAULT_PARTITION__/part-0.parquet", (("p", "__HIVE_DEFAULT_PARTITION__"),), "would read as null"),
    ],
)
def test_files_whose_directories_do_not_spell_the_logs_values_are_not_read_by_spark(relative, values, reason):
    refusal = _layout_refusal(FileSlice(relative, values), [c for c, _ in values])
    assert refusal is None if reason is None else reason in refusal


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([("ds", "=", "2024-06-01")], "compares date column 'ds' with a str"),
        ([("id", "in", [1, "2"])], "compares bigint column 'id' with a str"),
        ([("id", "=", True)], "with a bool"),
        ([("ds", "=", dt.datetime(2024, 6, 1))], "with a datetime"),
        ([("nope", "=", 1)], "no column 'nope'"),
        ([("id", "~", 1)], "op one of"),
        ([("id", "<", None)], "use \\(column, 'is null', None\\)"),
    ],
)
def test_filters_the_planner_could_not_compare_are_refused(spark, tmp_path, filters, message):
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"id": [1, 2], "ds": pa.array([dt.date(2024, 6, 1)] * 2, pa.date32())}), partition_by=["ds"])
    for reader in ("auto", "python"):
        with pytest.raises(ValueError, match=message):
            read_table(spark, path, "embedded", filters=filters, embedded_reader=reader)


@pytest.mark.parametrize(
    ("configuration", "feature"),
    [({"delta.enableDeletionVectors": "true"}, "deletionVectors"), ({"delta.columnMapping.mode": "name"}, "columnMapping")],
)
def test_tables_with_features_the_engine_cannot_honor_are_refused_by_name(spark, tmp_path, configuration, feature):
    """Column mapping on the older protocol lists no reader feature, yet its files hold physical
    column names: read by logical name they give nulls (delta-rs's own to_pyarrow_table does)."""
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"id": [1, 2]}), configuration=configuration)
    for reader in ("auto", "python"):
        with pytest.raises(
            Exception, match=f"reader feature\\(s\\) [^;]*\\b{feature}\\b[^;]* that the embedded engine cannot read"
        ):
            read_table(spark, path, "embedded", embedded_reader=reader).collect()
    more = spark.createDataFrame([(3,)], "id long")
    with pytest.raises(Exception, match=f"reader feature\\(s\\) [^;]*\\b{feature}\\b[^;]* that the embedded engine cannot write"):
        write_table(more, path, "embedded", mode="append")


BOTH = ("auto", "python")


def test_partition_specs_follow_sql_on_both_readers(spark, tmp_path):
    """A spec names partition columns with typed values; on a column the table is not partitioned
    by it is a plain filter, a null names the null partition, and a string for a date is refused."""
    path = str(tmp_path / "t")
    day = dt.date(2024, 6, 1)
    data = pa.table(
        {"id": [1, 2, 3], "day": pa.array([day, day, None], pa.date32()), "ds": pa.array([day, None, day], pa.date32())}
    )
    write_deltalake(path, data, partition_by=["ds"])
    for reader in BOTH:
        assert rows_of(read_table(spark, path, "embedded", [{"day": day}], embedded_reader=reader), "id") == [(1,), (2,)]
        assert rows_of(read_table(spark, path, "embedded", [{"ds": day}], embedded_reader=reader), "id") == [(1,), (3,)]
        assert rows_of(read_table(spark, path, "embedded", [{"ds": None}], embedded_reader=reader), "id") == [(2,)]
        with pytest.raises(ValueError, match="compares date column 'ds' with a str"):
            read_table(spark, path, "embedded", [{"ds": "2024-06-01"}], embedded_reader=reader)


def test_timestamp_statistics_cut_to_the_millisecond_never_skip_a_matching_file(spark, tmp_path):
    path = str(tmp_path / "t")
    moment = dt.datetime(2024, 6, 1, 12, 0, 0, 999)  # the log's max says 12:00:00.000
    write_deltalake(path, pa.table({"id": [1], "ts": pa.array([moment], pa.timestamp("us"))}))
    for reader in BOTH:
        df = read_table(
            spark, path, "embedded", filters=[("ts", ">=", dt.datetime(2024, 6, 1, 12, 0, 0, 500))], embedded_reader=reader
        )
        assert rows_of(df, "id") == [(1,)], reader


def test_nan_in_a_floating_partition_column_is_above_every_number_as_in_spark(spark, tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"id": [1, 2], "x": [float("nan"), 1.0]}), partition_by=["x"])
    for reader in BOTH:
        assert rows_of(read_table(spark, path, "embedded", filters=[("x", ">", 5.0)], embedded_reader=reader), "id") == [(1,)]
        assert rows_of(read_table(spark, path, "embedded", embedded_reader=reader).where(F.col("x") > 5), "id") == [(1,)]


def test_a_table_path_with_glob_characters_is_read_through_the_python_reader(spark, tmp_path, caplog):
    path = str(tmp_path / "a{b}*")  # delta-rs refuses "[" in a path
    write_deltalake(path, pa.table({"id": [1, 2], "ds": pa.array([dt.date(2024, 6, 1)] * 2, pa.date32())}), partition_by=["ds"])
    caplog.set_level("INFO", logger="lakescore.delta")
    assert rows_of(read_table(spark, path, "embedded"), "id") == [(1,), (2,)]
    assert "reads as a glob" in caplog.text
