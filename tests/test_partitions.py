import datetime as dt

import pytest
from pyspark.sql import types as T

from jobs.run.partition_spec import PartitionError, parse_partition, partition_label

SCHEMA = T.StructType(
    [T.StructField("ds", T.DateType()), T.StructField("hour", T.IntegerType()), T.StructField("region", T.StringType())]
)


def test_values_are_parsed_to_the_partition_column_type():
    spec = parse_partition("ds=2024-06-01,hour=7", SCHEMA, ["ds", "hour"])
    assert spec == {"ds": dt.date(2024, 6, 1), "hour": 7}
    assert partition_label(spec) == "ds=2024-06-01,hour=7"


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("ds=2024-13-01", "'2024-13-01' is not a valid date for partition column 'ds'"),
        ("ds=2024-06-01' OR 1=1 --", "is not a valid date"),
        ("region=eu", "'region' is not a partition column"),
        ("ds", "expected column=value"),
        ("ds=2024-06-01,ds=2024-06-02", "'ds' is given twice"),
    ],
)
def test_bad_partition_arguments_are_refused_with_the_argument_named(arg, message):
    with pytest.raises(PartitionError) as err:
        parse_partition(arg, SCHEMA, ["ds"])
    assert message in str(err.value)
    assert arg.split(",")[0][:5] in str(err.value)


def test_every_partition_column_needs_a_value():
    with pytest.raises(PartitionError, match=r"no value for partition column\(s\) \['hour'\]"):
        parse_partition("ds=2024-06-01", SCHEMA, ["ds", "hour"])


# --- the null partition and year-1 dates -------------------------------------------------------

Y1 = dt.date(1, 1, 1)


@pytest.mark.parametrize(
    ("arg", "spec"),
    [
        ("ds=__HIVE_DEFAULT_PARTITION__,hour=7", {"ds": None, "hour": 7}),
        ("ds=2024-06-01,hour=__HIVE_DEFAULT_PARTITION__", {"ds": dt.date(2024, 6, 1), "hour": None}),
        ("ds=0001-01-01,hour=0", {"ds": Y1, "hour": 0}),
    ],
)
def test_the_null_partition_and_year_1_labels_parse_back_to_their_spec(arg, spec):
    assert parse_partition(arg, SCHEMA, ["ds", "hour"]) == spec
    assert partition_label(spec) == arg


def test_a_string_partition_column_reads_the_hive_null_name_as_null():
    assert parse_partition("region=__HIVE_DEFAULT_PARTITION__", SCHEMA, ["region"]) == {"region": None}


def test_specs_sort_with_the_null_partition_first():
    from jobs.run.partition_spec import partition_sort_key

    specs = [{"ds": dt.date(2024, 6, 1)}, {"ds": None}, {"ds": Y1}]
    assert sorted(specs, key=partition_sort_key) == [{"ds": None}, {"ds": Y1}, {"ds": dt.date(2024, 6, 1)}]


def test_native_replace_where_names_the_null_partition_with_is_null():
    from jobs.tables import _replace_where_sql

    assert _replace_where_sql([{"ds": None, "hour": 7}]) == "(`ds` IS NULL AND `hour` = 7)"
    assert _replace_where_sql([{"ds": Y1}, {"ds": None}]) == "(`ds` = '0001-01-01') OR (`ds` IS NULL)"


DAYS = T.StructType([T.StructField("id", T.LongType()), T.StructField("ds", T.DateType())])


def ids(df) -> list[int]:
    return sorted(r.id for r in df.collect())


def test_the_null_and_year_1_partitions_are_read_and_replaced_alone_on_both_engines(spark, engine, tmp_path):
    from jobs.tables import read_table, write_table

    path = str(tmp_path / "t")
    day = dt.date(2024, 6, 1)
    rows = [(1, day), (2, Y1), (3, None), (4, None)]
    write_table(spark.createDataFrame(rows, DAYS), path, engine, mode="append", partition_by=["ds"])
    readers = ("auto", "python") if engine == "embedded" else ("auto",)
    for reader in readers:
        assert ids(read_table(spark, path, engine, [{"ds": None}], embedded_reader=reader)) == [3, 4], reader
        assert ids(read_table(spark, path, engine, [{"ds": Y1}], embedded_reader=reader)) == [2], reader
    assert ids(read_table(spark, path, engine, filters=[("ds", "in", [Y1, day])])) == [1, 2]
    for spec, new_id in (({"ds": None}, 30), ({"ds": Y1}, 20)):
        again = spark.createDataFrame([(new_id, spec["ds"])], DAYS)
        write_table(again, path, engine, mode="overwrite", partition_by=["ds"], replace_partitions=[spec])
    assert sorted(tuple(r) for r in read_table(spark, path, engine).select("id").collect()) == [(1,), (20,), (30,)]


def test_the_embedded_engine_replaces_the_null_partition_only_in_a_transaction_of_its_own(spark, tmp_path):
    """delta-rs's IN never matches the null partition, so replacing it with another at once would
    leave its old rows: refused, and nothing is committed."""
    from deltalake import DeltaTable

    from jobs.tables import write_table

    path = str(tmp_path / "t")
    day = dt.date(2024, 6, 1)
    write_table(spark.createDataFrame([(1, day), (2, None)], DAYS), path, "embedded", mode="append", partition_by=["ds"])
    again = spark.createDataFrame([(10, day), (20, None)], DAYS)
    with pytest.raises(Exception, match="replacing the null partition together with others at once is not supported"):
        write_table(
            again, path, "embedded", mode="overwrite", partition_by=["ds"], replace_partitions=[{"ds": day}, {"ds": None}]
        )
    assert DeltaTable(path).version() == 0
