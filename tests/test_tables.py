"""Table I/O, run against each engine (native skipped where delta-spark's jars are absent)."""

import datetime as dt
import decimal
import os
import time

import pandas as pd
import pyarrow as pa
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import types as T

from jobs.tables import read_table, table_version, write_table
from tests.helpers import ID_X_NAME_DS, append_two_days, delta_rs_rows, id_x_name_rows, parquet_on_disk

D1, D2, D3 = dt.date(2024, 6, 1), dt.date(2024, 6, 2), dt.date(2024, 6, 3)


def test_written_table_reads_back_exactly_with_delta_rs(spark, engine, tmp_path):
    rows = id_x_name_rows(D1, 5) + id_x_name_rows(D2, 4, 100)
    write_table(spark.createDataFrame(rows, ID_X_NAME_DS), str(tmp_path / "t"), engine, mode="append", partition_by=["ds"])
    assert delta_rs_rows(tmp_path / "t") == sorted(rows)
    assert DeltaTable(str(tmp_path / "t")).metadata().partition_columns == ["ds"]


def test_table_written_by_delta_rs_reads_back_in_spark(spark, engine, tmp_path):
    frame = pd.DataFrame(id_x_name_rows(D1, 3) + id_x_name_rows(D2, 2, 10), columns=["id", "x", "name", "ds"])
    write_deltalake(str(tmp_path / "t"), frame, partition_by=["ds"])
    expected = spark.createDataFrame(frame.astype(object).where(frame.notna(), None).values.tolist(), ID_X_NAME_DS)
    assert_df_equality(read_table(spark, str(tmp_path / "t"), engine), expected, ignore_row_order=True, ignore_nullable=True)


def test_rerun_of_same_partition_replaces_rows_and_leaves_others(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    append_two_days(spark, path, engine, 5, 5, 100)
    replacement = spark.createDataFrame(id_x_name_rows(D2, 3, 500), ID_X_NAME_DS)
    for _ in range(2):  # twice: a rerun must not duplicate
        write_table(replacement, path, engine, mode="overwrite", partition_by=["ds"], replace_partitions=[{"ds": D2}])
    expected = spark.createDataFrame(id_x_name_rows(D1, 5) + id_x_name_rows(D2, 3, 500), ID_X_NAME_DS)
    assert_df_equality(read_table(spark, path, engine), expected, ignore_row_order=True, ignore_nullable=True)


def test_overwrite_with_no_rows_empties_just_that_partition(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    append_two_days(spark, path, engine, 2, 2, 10)
    write_table(
        spark.createDataFrame([], ID_X_NAME_DS),
        path,
        engine,
        mode="overwrite",
        partition_by=["ds"],
        replace_partitions=[{"ds": D1}],
    )
    assert sorted(r.id for r in read_table(spark, path, engine).collect()) == [10, 11]


def test_rows_outside_the_replaced_partition_fail_the_write(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    write_table(spark.createDataFrame(id_x_name_rows(D1, 2), ID_X_NAME_DS), path, engine, mode="append", partition_by=["ds"])
    before = table_version(path)
    with pytest.raises(Exception, match=r"outside|replaceWhere|DELTA_REPLACE_WHERE"):
        write_table(
            spark.createDataFrame(id_x_name_rows(D2, 2), ID_X_NAME_DS),
            path,
            engine,
            mode="overwrite",
            partition_by=["ds"],
            replace_partitions=[{"ds": D1}],
        )
    assert table_version(path) == before


def test_partition_filter_prunes_files_before_reading(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    frame = pd.DataFrame(
        id_x_name_rows(D1, 4) + id_x_name_rows(D2, 4, 10) + id_x_name_rows(D3, 4, 20), columns=["id", "x", "name", "ds"]
    )
    write_deltalake(path, frame, partition_by=["ds"])  # one file per partition
    df = read_table(spark, path, engine, partitions=[{"ds": D2}])
    assert sorted(r.id for r in df.collect()) == [10, 11, 12, 13]
    if engine == "embedded":  # only the D2 file was planned
        assert len(df.inputFiles()) == 1
    wider = read_table(spark, path, engine, partitions=[{"ds": D2}, {"ds": D3}])
    assert sorted(r.id for r in wider.collect()) == [10, 11, 12, 13, 20, 21, 22, 23]


def test_read_at_an_earlier_version_sees_that_snapshot(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    write_table(spark.createDataFrame(id_x_name_rows(D1, 2), ID_X_NAME_DS), path, engine, mode="append", partition_by=["ds"])
    v0 = table_version(path)
    write_table(spark.createDataFrame(id_x_name_rows(D1, 3, 50), ID_X_NAME_DS), path, engine, mode="append", partition_by=["ds"])
    assert sorted(r.id for r in read_table(spark, path, engine, version=v0).collect()) == [0, 1]
    assert read_table(spark, path, engine).count() == 5


def test_add_actions_carry_file_statistics(spark, tmp_path):
    path = str(tmp_path / "t")
    write_table(
        spark.createDataFrame(id_x_name_rows(D1, 6), ID_X_NAME_DS).coalesce(1),
        path,
        "embedded",
        mode="append",
        partition_by=["ds"],
    )
    actions = pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pylist()
    assert len(actions) == 1
    a = actions[0]
    assert (a["num_records"], a["min.id"], a["max.id"], a["min.x"], a["max.x"]) == (6, 0, 5, 0.0, 7.5)
    assert a["null_count.name"] == 2  # ids 0 and 3


def test_commit_metadata_is_recorded(spark, tmp_path):
    path = str(tmp_path / "t")
    write_table(
        spark.createDataFrame(id_x_name_rows(D1, 1), ID_X_NAME_DS),
        path,
        "embedded",
        mode="append",
        partition_by=["ds"],
        commit_metadata={"lakescore.run_id": "abc"},
    )
    assert DeltaTable(path).history(1)[0]["lakescore.run_id"] == "abc"


def test_write_reports_its_own_commit_version_when_another_commit_follows(spark, tmp_path):
    from jobs.tables import WRITE_TOKEN, committed_version

    path = str(tmp_path / "t")
    first = write_table(
        spark.createDataFrame(id_x_name_rows(D1, 1), ID_X_NAME_DS), path, "embedded", mode="append", partition_by=["ds"]
    )
    second = write_table(
        spark.createDataFrame(id_x_name_rows(D1, 1, 10), ID_X_NAME_DS), path, "embedded", mode="append", partition_by=["ds"]
    )
    assert (first.version, second.version) == (0, 1)
    other = pa.table({"id": pa.array([99], pa.int64()), "x": [1.0], "name": ["other"], "ds": pa.array([D1], pa.date32())})
    write_deltalake(path, other, mode="append")  # another writer, just after
    tokens = {e["version"]: e.get(WRITE_TOKEN) for e in DeltaTable(path).history()}
    assert tokens[2] is None and tokens[0] != tokens[1]
    assert committed_version(path, tokens[1]) == (1, True)  # not 2, the table's latest
    assert committed_version(path, tokens[0]) == (0, True)
    assert committed_version(path, "no such token") == (2, False)


def test_nested_and_decimal_types_round_trip(spark, tmp_path):
    schema = T.StructType(
        [
            T.StructField("id", T.LongType()),
            T.StructField("amount", T.DecimalType(10, 2)),
            T.StructField("ts", T.TimestampType()),
            T.StructField("tags", T.ArrayType(T.StringType())),
            T.StructField("attrs", T.MapType(T.StringType(), T.LongType())),
            T.StructField("pt", T.StructType([T.StructField("a", T.IntegerType()), T.StructField("b", T.StringType())])),
            T.StructField("ds", T.DateType()),
        ]
    )
    ts = dt.datetime(2024, 6, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    rows = [(1, decimal.Decimal("12.34"), ts, ["a", None], {"k": 1}, (1, "x"), D1), (2, None, None, None, None, None, D1)]
    path = str(tmp_path / "t")
    write_table(spark.createDataFrame(rows, schema), path, "embedded", mode="append", partition_by=["ds"])
    back = sorted(read_table(spark, path, "embedded").collect(), key=lambda r: r.id)
    assert back[0].amount == decimal.Decimal("12.34")
    assert back[0].ts == ts.replace(tzinfo=None)  # the session time zone is UTC
    assert (back[0].tags, back[0].attrs, back[0].pt.asDict()) == (["a", None], {"k": 1}, {"a": 1, "b": "x"})
    assert [back[1].amount, back[1].tags, back[1].pt] == [None, None, None]


def test_statistics_skip_files_that_cannot_match_and_never_lose_rows(spark, engine, tmp_path):
    from pyspark.sql import functions as F

    path = str(tmp_path / "t")
    # built in Arrow, not pandas: pandas would turn the NaN into a null
    low = pa.table({"id": list(range(0, 10)), "x": [float("nan")] + [1.0] * 9, "name": ["a"] * 10})
    high = pa.table({"id": list(range(100, 110)), "x": [2000.0] * 10, "name": pa.nulls(10, pa.string())})
    write_deltalake(path, low)
    write_deltalake(path, high, mode="append")  # two files, disjoint id ranges
    by_id = read_table(spark, path, engine, filters=[("id", ">", 50)])
    assert sorted(r.id for r in by_id.collect()) == list(range(100, 110))
    nulls = read_table(spark, path, engine, filters=[("name", "is null", None)])
    assert nulls.count() == 10
    # floating columns are not used for skipping: NaN is above every number in Spark
    by_x = read_table(spark, path, engine, filters=[("x", ">", 1000.0)])
    assert sorted(r.id for r in by_x.collect()) == [0, *range(100, 110)]
    # nor by Spark's Parquet reader, whose row-group statistics (from pyarrow) leave NaN out
    where_x = read_table(spark, path, engine).where(F.col("x") > 1000)
    assert sorted(r.id for r in where_x.collect()) == [0, *range(100, 110)]
    if engine == "embedded":
        assert (len(by_id.inputFiles()), len(nulls.inputFiles()), len(by_x.inputFiles())) == (1, 1, 2)
        # the Python reader skips by the same statistics when Spark pushes a .where down to it
        python = [
            read_table(spark, path, engine, embedded_reader="python").where(condition)
            for condition in (F.col("id") > 50, F.col("name").isNull(), F.col("x") > 1000)
        ]
        assert [sorted(r.id for r in df.collect()) for df in python] == [
            list(range(100, 110)),
            list(range(100, 110)),
            [0, *range(100, 110)],
        ]
        assert [df.rdd.getNumPartitions() for df in python] == [1, 1, 2]


def test_read_as_of_a_timestamp_sees_that_snapshot(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    write_table(spark.createDataFrame(id_x_name_rows(D1, 2), ID_X_NAME_DS), path, engine, mode="append", partition_by=["ds"])
    # A commit's time is its log file's modification time (the protocol's rule without in-commit
    # timestamps, and what delta-spark and delta-rs both use), not commitInfo's own clock; 20 ms
    # after it is inside that snapshot whatever the clocks' rounding (the next commit is 200 ms on)
    committed = os.path.getmtime(os.path.join(path, "_delta_log", f"{0:020d}.json"))
    time.sleep(0.2)
    write_table(spark.createDataFrame(id_x_name_rows(D1, 3, 50), ID_X_NAME_DS), path, engine, mode="append", partition_by=["ds"])
    as_of = dt.datetime.fromtimestamp(committed + 0.02, dt.UTC).isoformat()
    assert sorted(r.id for r in read_table(spark, path, engine, timestamp=as_of).collect()) == [0, 1]


def test_read_as_of_a_timestamp_before_the_first_commit_is_refused(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    write_table(spark.createDataFrame(id_x_name_rows(D1, 2), ID_X_NAME_DS), path, engine, mode="append", partition_by=["ds"])
    with pytest.raises(Exception, match=r"before the earliest version|EARLIER_THAN_COMMIT_RETENTION"):
        read_table(spark, path, engine, timestamp="2001-01-01T00:00:00+00:00").collect()


def test_app_transaction_makes_a_retried_write_commit_once(spark, engine, tmp_path):
    path = str(tmp_path / "t")
    df = spark.createDataFrame(id_x_name_rows(D1, 3), ID_X_NAME_DS)
    write_table(df, path, engine, mode="append", partition_by=["ds"], app_transaction=("job/ds=2024-06-01", 7))
    files_after_first = parquet_on_disk(path)
    version = table_version(path)

    write_table(df, path, engine, mode="append", partition_by=["ds"], app_transaction=("job/ds=2024-06-01", 7))  # a retry
    assert table_version(path) == version and read_table(spark, path, engine).count() == 3
    if engine == "embedded":  # the retry's files were deleted, not left behind
        assert parquet_on_disk(path) == files_after_first

    write_table(df, path, engine, mode="append", partition_by=["ds"], app_transaction=("job/ds=2024-06-01", 8))
    assert read_table(spark, path, engine).count() == 6
    assert DeltaTable(path).transaction_version("job/ds=2024-06-01") == 8


def test_small_batches_are_gathered_into_row_groups(spark, tmp_path):
    import pyarrow.parquet as pq

    path = str(tmp_path / "t")
    df = spark.createDataFrame(id_x_name_rows(D1, 3000) + id_x_name_rows(D2, 1000, 10_000), ID_X_NAME_DS).coalesce(1)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "100")  # 40 batches, both days in each
    try:
        write_table(df, path, "embedded", mode="append", partition_by=["ds"])
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    for a in pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pylist():
        meta = pq.ParquetFile(f"{path}/{a['path']}").metadata
        assert (meta.num_row_groups, meta.num_rows) == (1, a["num_records"])  # not one per batch


def write_in_4_row_batches(path, ids_by_day):
    """The embedded writer in this process (as a task runs it), fed 4-row batches holding every
    day's next ids: the row counts of each written file's row groups, sorted."""
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import to_arrow_schema

    from jobs.tables import embedded

    writer = embedded.DeltaDataSource({"path": path, "partition_by": "ds"}).writer(ID_X_NAME_DS, False)
    batches = [
        pa.RecordBatch.from_pylist(
            [{"id": i, "x": 0.5, "name": "n", "ds": day} for day, ids in ids_by_day for i in ids[k : k + 4]],
            schema=to_arrow_schema(ID_X_NAME_DS),
        )
        for k in range(0, max(len(ids) for _, ids in ids_by_day), 4)
    ]
    writer.commit([writer.write(iter(batches))])
    metas = [
        pq.ParquetFile(f"{path}/{a['path']}").metadata
        for a in pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pylist()
    ]
    return sorted(tuple(m.row_group(i).num_rows for i in range(m.num_row_groups)) for m in metas)


def test_row_groups_are_cut_at_the_row_target(spark, tmp_path, monkeypatch):
    """With a small row target, to see where the writer cuts."""
    from jobs.tables import embedded

    monkeypatch.setattr(embedded, "ROW_GROUP_ROWS", 10)
    assert write_in_4_row_batches(str(tmp_path / "a"), [(D1, list(range(30)))]) == [
        (12, 12, 6)
    ]  # 4-row batches: cut once 10 are reached


def test_row_groups_are_cut_at_the_task_buffer_cap(spark, tmp_path, monkeypatch):
    """With a tiny cap on the Arrow data a task's open files hold, to see where the writer cuts."""
    from jobs.tables import embedded

    monkeypatch.setattr(embedded, "ROW_GROUP_ROWS", 1000)
    monkeypatch.setattr(embedded, "TASK_BUFFER_BYTES", 1)  # every batch exceeds it: both files write out each time
    assert write_in_4_row_batches(str(tmp_path / "b"), [(D1, list(range(8))), (D2, list(range(100, 108)))]) == [(4, 4), (4, 4)]


def test_writes_roll_files_at_the_target_size_with_per_file_statistics(spark, tmp_path):
    import pyarrow.parquet as pq

    path = str(tmp_path / "t")
    rows = id_x_name_rows(D1, 3000) + id_x_name_rows(D2, 1000, 10_000)
    df = spark.createDataFrame(rows, ID_X_NAME_DS).coalesce(1)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "500")
    try:
        write_table(df, path, "embedded", mode="append", partition_by=["ds"], target_file_size=20_000)
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    actions = pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pylist()
    assert len(actions) > 2  # more than one file per partition
    for a in actions:  # each file's statistics describe that file and no other
        data = pq.read_table(f"{path}/{a['path']}")
        assert a["num_records"] == data.num_rows
        assert (a["min.id"], a["max.id"]) == (min(data["id"].to_pylist()), max(data["id"].to_pylist()))
        assert a["null_count.name"] == data["name"].null_count
    assert sorted(r[0] for r in delta_rs_rows(tmp_path / "t")) == sorted(r[0] for r in rows)
    assert sum(a["num_records"] for a in actions) == len(rows)
    assert read_table(spark, path, "embedded").count() == len(rows)
