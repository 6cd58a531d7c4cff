"""Both engines (native skipped without delta-spark's jars): table properties on create, schema
evolution only when asked, mismatches refused early with the same error."""

import os

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import types as T

from jobs.tables import SchemaMismatchError, read_table, table_version, write_table
from tests.helpers import D1, D2, ID_NAME_DS, delta_rs_rows, parquet_on_disk

WIDER = T.StructType([*ID_NAME_DS.fields, T.StructField("score", T.DoubleType())])


def base_table(spark, path, engine="embedded"):
    write_table(
        spark.createDataFrame([(1, "a", D1), (2, None, D2)], ID_NAME_DS), path, engine, mode="append", partition_by=["ds"]
    )


def test_table_properties_are_set_when_the_write_creates_the_table(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    props = {"delta.logRetentionDuration": "interval 60 days", "delta.deletedFileRetentionDuration": "interval 14 days"}
    df = spark.createDataFrame([(1, "a", D1)], ID_NAME_DS)
    write_table(df, path, engine, mode="append", partition_by=["ds"], table_properties=props)
    assert DeltaTable(path).metadata().configuration == props
    # an existing table keeps its own properties: they are a creation-time choice
    write_table(
        df, path, engine, mode="append", partition_by=["ds"], table_properties={"delta.logRetentionDuration": "interval 1 days"}
    )
    assert DeltaTable(path).metadata().configuration == props


def test_non_delta_table_properties_are_refused_before_writing(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    with pytest.raises(ValueError, match=r"t: table properties must be delta\.\* keys, got \['lakescore.owner'\]"):
        write_table(
            spark.createDataFrame([(1, "a", D1)], ID_NAME_DS),
            path,
            engine,
            mode="append",
            partition_by=["ds"],
            table_properties={"lakescore.owner": "x"},
        )
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    ("schema", "rows", "expected"),
    [
        (WIDER, [(3, "c", D1, 0.5)], r"new column\(s\) \['score'\]; pass merge_schema=True"),
        (T.StructType([ID_NAME_DS.fields[0], ID_NAME_DS.fields[2]]), [(3, D1)], r"missing column\(s\) \['name'\]"),
        (
            T.StructType([T.StructField("id", T.StringType()), *ID_NAME_DS.fields[1:]]),
            [("3", "c", D1)],
            r"changed type\(s\) id: bigint -> string",
        ),
    ],
    ids=["new", "missing", "changed"],
)
def test_a_write_whose_columns_differ_fails_naming_table_and_columns_and_writes_nothing(
    spark, engine, tmp_path, schema, rows, expected
):
    path = str(tmp_path / "t")
    base_table(spark, path, engine)
    before, files = table_version(path), parquet_on_disk(path)
    with pytest.raises(SchemaMismatchError, match=f"Delta write to {path}: .*{expected}"):
        write_table(spark.createDataFrame(rows, schema), path, engine, mode="append", partition_by=["ds"])
    assert table_version(path) == before
    assert parquet_on_disk(path) == files


def test_a_type_change_is_refused_even_with_merge_schema(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    base_table(spark, path, engine)
    before = table_version(path)
    changed = T.StructType([T.StructField("id", T.IntegerType()), *ID_NAME_DS.fields[1:], T.StructField("score", T.DoubleType())])
    with pytest.raises(SchemaMismatchError, match=r"changed type\(s\) id: bigint -> int"):
        write_table(
            spark.createDataFrame([(3, "c", D1, 1.0)], changed),
            path,
            engine,
            mode="append",
            partition_by=["ds"],
            merge_schema=True,
        )
    assert table_version(path) == before
    assert [f.name for f in DeltaTable(path).schema().fields] == ["id", "name", "ds"]


def test_merge_schema_append_adds_a_nullable_column_that_old_rows_read_as_null(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    base_table(spark, path, engine)
    write_table(
        spark.createDataFrame([(3, "c", D1, 0.5)], WIDER), path, engine, mode="append", partition_by=["ds"], merge_schema=True
    )
    expected = [(1, "a", D1, None), (2, None, D2, None), (3, "c", D1, 0.5)]
    assert_df_equality(
        read_table(spark, path, engine), spark.createDataFrame(expected, WIDER), ignore_row_order=True, ignore_nullable=True
    )
    assert delta_rs_rows(path) == [(1, "a", D1, None), (2, None, D2, None), (3, "c", D1, 0.5)]
    score = DeltaTable(path).schema().fields[-1]
    assert (score.name, score.nullable) == ("score", True)


def test_merge_schema_partition_overwrite_evolves_in_the_same_commit(spark, tmp_path):
    path = str(tmp_path / "t")
    base_table(spark, path)
    before = table_version(path)
    write_table(
        spark.createDataFrame([(5, "e", D2, 2.5)], WIDER),
        path,
        "embedded",
        mode="overwrite",
        partition_by=["ds"],
        replace_partitions=[{"ds": D2}],
        merge_schema=True,
    )
    assert table_version(path) == before + 1  # schema and data in one commit: no window with one and not the other
    expected = [(1, "a", D1, None), (5, "e", D2, 2.5)]
    assert_df_equality(
        read_table(spark, path, "embedded"), spark.createDataFrame(expected, WIDER), ignore_row_order=True, ignore_nullable=True
    )
    assert [r[0] for r in delta_rs_rows(path)] == [1, 5]


def test_merge_schema_writes_columns_the_data_lacks_as_null(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    base_table(spark, path, engine)
    narrow = T.StructType([ID_NAME_DS.fields[0], ID_NAME_DS.fields[2]])
    write_table(spark.createDataFrame([(7, D1)], narrow), path, engine, mode="append", partition_by=["ds"], merge_schema=True)
    expected = [(1, "a", D1), (2, None, D2), (7, None, D1)]
    assert_df_equality(
        read_table(spark, path, engine), spark.createDataFrame(expected, ID_NAME_DS), ignore_row_order=True, ignore_nullable=True
    )
    assert [f.name for f in DeltaTable(path).schema().fields] == ["id", "name", "ds"]


def test_nullability_differences_alone_are_not_a_mismatch(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    base_table(spark, path, engine)
    strict = T.StructType([T.StructField("id", T.LongType(), False), *ID_NAME_DS.fields[1:]])
    write_table(spark.createDataFrame([(9, "z", D1)], strict), path, engine, mode="append", partition_by=["ds"])
    assert sorted(r.id for r in read_table(spark, path, engine).collect()) == [1, 2, 9]
