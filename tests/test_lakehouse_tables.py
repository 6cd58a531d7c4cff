"""Input tables as a real lakehouse holds them: made by delta-spark itself, with the features such
tables carry. The native engine reads each of them right; the embedded engine reads each right
or refuses it before anything is written, naming the feature: never wrong rows, never a crash.
The job scores such a table on native (exit 0) and refuses it on embedded (exit 2)."""

from __future__ import annotations

import datetime as dt
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from pyspark.sql import functions as F

from jobs.score import main
from jobs.tables import read_table, table_schema, table_version
from tests.helpers import D1, D2, delta, job_config, ledger, require_native, write_demo_input

BASE = "id INT, v DOUBLE, ds DATE"
SIX = "(1, 1.0, DATE'2024-06-01'), (2, 2.0, DATE'2024-06-01'), (3, 3.0, DATE'2024-06-01'), (4, 4.0, DATE'2024-06-02'), (5, 5.0, DATE'2024-06-02'), (6, 6.0, DATE'2024-06-02')"
ALL_SIX = [(i, float(i), D1 if i <= 3 else D2) for i in range(1, 7)]

# name: (columns, table properties, statements after the first insert, expected rows, what the
# embedded engine does: "read" or the feature it refuses by name)
FEATURES = {
    "deletion vectors after DELETE, UPDATE and MERGE": (
        BASE,
        {"delta.enableDeletionVectors": "true"},
        [
            "DELETE FROM {t} WHERE id % 3 = 0",
            "UPDATE {t} SET v = -v WHERE id = 1",
            "MERGE INTO {t} AS t USING (SELECT 2 AS id, 9.0D AS v) AS s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v",
        ],
        [(1, -1.0, D1), (2, 9.0, D1), (4, 4.0, D2), (5, 5.0, D2)],
        "deletionVectors",
    ),
    "column mapping after RENAME COLUMN": (
        BASE,
        {"delta.columnMapping.mode": "name"},
        ["ALTER TABLE {t} RENAME COLUMN v TO value"],
        ALL_SIX,
        "columnMapping",
    ),
    "v2 checkpoints": (
        BASE,
        {"delta.checkpointPolicy": "v2", "delta.checkpointInterval": "2"},
        ["INSERT INTO {t} VALUES (7, 7.0, DATE'2024-06-02')", "INSERT INTO {t} VALUES (8, 8.0, DATE'2024-06-02')"],
        [*ALL_SIX, (7, 7.0, D2), (8, 8.0, D2)],
        "v2Checkpoint",
    ),
    "type widening (int to bigint)": (
        BASE,
        {"delta.enableTypeWidening": "true"},
        ["ALTER TABLE {t} CHANGE COLUMN id TYPE BIGINT", "INSERT INTO {t} VALUES (10000000000, 0.5, DATE'2024-06-02')"],
        [*ALL_SIX, (10_000_000_000, 0.5, D2)],
        "typeWidening",
    ),
    "change data feed after UPDATE": (
        BASE,
        {"delta.enableChangeDataFeed": "true"},
        ["UPDATE {t} SET v = 0.0 WHERE id = 6"],
        [*ALL_SIX[:5], (6, 0.0, D2)],
        "read",
    ),
    "vacuumProtocolCheck": (BASE, {"delta.feature.vacuumProtocolCheck": "supported"}, [], ALL_SIX, "read"),
    "generated and identity columns": (
        "id INT, v DOUBLE, ds DATE, twice INT GENERATED ALWAYS AS (id * 2), rid BIGINT GENERATED ALWAYS AS IDENTITY",
        {},
        [],
        None,
        "read",
    ),
}


def make_table(spark, path: str, columns: str, properties: dict[str, str], after: list[str]) -> None:
    t = f"delta.`{path}`"
    props = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    spark.sql(f"CREATE TABLE {t} ({columns}) USING delta PARTITIONED BY (ds) {f'TBLPROPERTIES ({props})' if props else ''}")
    spark.sql(f"INSERT INTO {t} (id, v, ds) VALUES {SIX}")
    for statement in after:
        spark.sql(statement.format(t=t))


def rows(df, *columns) -> list[tuple]:
    return sorted(tuple(r[c] for c in columns) for r in df.collect())


@pytest.mark.parametrize("feature", list(FEATURES))
def test_a_delta_spark_table_with_a_feature_reads_right_or_is_refused_by_name(spark, native, tmp_path, feature):
    columns, properties, after, expected, embedded = FEATURES[feature]
    path = str(tmp_path / "t")
    make_table(spark, path, columns, properties, after)
    value = "value" if "RENAME" in feature else "v"
    got = read_table(spark, path, "native")
    if expected is None:  # generated and identity columns: computed by delta-spark on insert
        assert rows(got, "id", "twice") == [(i, 2 * i) for i in range(1, 7)]
        assert len({r.rid for r in got.collect()}) == 6
        expected = ALL_SIX
    assert rows(got, "id", value, "ds") == expected
    assert table_version(path, "native") == len(after) + 1
    if embedded == "read":
        assert rows(read_table(spark, path, "embedded"), "id", value, "ds") == expected
        assert rows(read_table(spark, path, "embedded", embedded_reader="python"), "id", value, "ds") == expected
        assert table_schema(path, engine="embedded") == table_schema(path, engine="native")
    else:
        with pytest.raises(ValueError, match=rf"uses reader feature\(s\) .*{embedded}.* use the native engine"):
            read_table(spark, path, "embedded").collect()


@pytest.fixture(scope="module")
def variant_table(tmp_path_factory, spark):
    """A table delta-spark made with a VARIANT column: a JSON value and a null. Its path."""
    require_native(spark)
    path = str(tmp_path_factory.mktemp("variant") / "t")
    spark.sql(f"CREATE TABLE delta.`{path}` (id INT, j VARIANT) USING delta")
    spark.sql(f"""INSERT INTO delta.`{path}` VALUES (1, parse_json('{{"a": 1, "b": [true, null]}}')), (2, NULL)""")
    return path


def test_variant_columns_are_read_by_native(spark, variant_table):
    got = read_table(spark, variant_table, "native").selectExpr("id", "to_json(j) AS j")
    assert rows(got, "id", "j") == [(1, '{"a":1,"b":[true,null]}'), (2, None)]


def test_variant_columns_are_refused_by_embedded_naming_the_feature(spark, variant_table):
    # delta-rs gives a variant back as struct<metadata, value> (and would lose a shredded one's
    # typed columns): refused, naming the feature
    with pytest.raises(ValueError, match=r"reader feature\(s\) variantType"):
        read_table(spark, variant_table, "embedded")


def test_timestamp_ntz_columns_read_the_same_on_both_engines(spark, native, tmp_path):
    path = str(tmp_path / "t")
    spark.sql(f"CREATE TABLE delta.`{path}` (id INT, t TIMESTAMP_NTZ) USING delta")
    spark.sql(
        f"INSERT INTO delta.`{path}` VALUES (1, TIMESTAMP_NTZ'0001-01-01 00:00:00'), (2, TIMESTAMP_NTZ'9999-12-31 23:59:59.999999'), (3, NULL)"
    )
    want = [(1, dt.datetime(1, 1, 1)), (2, dt.datetime(9999, 12, 31, 23, 59, 59, 999999)), (3, None)]
    for engine, reader in (("native", "auto"), ("embedded", "spark"), ("embedded", "python")):
        assert sorted(read_table(spark, path, engine, embedded_reader=reader).collect(), key=lambda r: r.id) == [
            tuple(w) for w in want
        ], (engine, reader)
    # a year-9999 maximum in the file statistics: skipping by it must neither overflow nor skip
    late = read_table(spark, path, "embedded", filters=[("t", ">", dt.datetime(9999, 12, 31, 23, 59, 59))])
    assert [r.id for r in late.collect()] == [2]


def test_int96_timestamps_outside_the_nanosecond_range_read_right(spark, native, tmp_path):
    """Spark (and Hive, and Impala) wrote timestamps as INT96 for years; pyarrow's default reads
    them through nanoseconds, which overflow before 1677 and after 2262."""
    path = str(tmp_path / "t")
    stamps = [
        dt.datetime(1500, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC),
        dt.datetime(3000, 1, 1, tzinfo=dt.UTC),
    ]
    spark.conf.set("spark.sql.parquet.outputTimestampType", "INT96")
    try:
        df = spark.createDataFrame([(i, s) for i, s in enumerate(stamps)], "id INT, t TIMESTAMP")
        df.write.format("delta").save(path)
    finally:
        spark.conf.unset("spark.sql.parquet.outputTimestampType")
    data = [f for f in os.listdir(path) if f.endswith(".parquet")]
    assert str(pq.read_schema(os.path.join(path, data[0])).field("t").type) == "timestamp[ns]"  # INT96 on disk
    want = [(i, s.replace(tzinfo=None)) for i, s in enumerate(stamps)]
    for engine, reader in (("native", "auto"), ("embedded", "spark"), ("embedded", "python")):
        assert sorted(tuple(r) for r in read_table(spark, path, engine, embedded_reader=reader).collect()) == want, (
            engine,
            reader,
        )


def test_collated_string_columns_are_refused_by_embedded(spark, tmp_path):
    """delta-spark 4.4 (open source) cannot create collated columns here (DELTA_UNSUPPORTED_DATA_TYPES),
    but tables from other writers carry them: the log of one is made by hand, as such a writer
    records it (the collation in the field's metadata, the ``collations`` writer feature). delta-rs
    drops the collation from the schema, so comparisons would silently change meaning: refused."""
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"id": [1, 2], "s": ["A", "a"]}))
    log = os.path.join(path, "_delta_log", f"{0:020d}.json")
    actions = [json.loads(line) for line in open(log)]
    for action in actions:
        if "metaData" in action:
            schema = json.loads(action["metaData"]["schemaString"])
            schema["fields"][1]["metadata"] = {"__COLLATIONS": {"s": "spark.UTF8_LCASE"}}
            action["metaData"]["schemaString"] = json.dumps(schema)
        if "protocol" in action:
            action["protocol"] = {
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": [],
                "writerFeatures": ["collations", "domainMetadata"],
            }
    with open(log, "w") as out:
        out.write("\n".join(json.dumps(a) for a in actions) + "\n")
    with pytest.raises(ValueError, match=r"column 's' has collation spark.UTF8_LCASE"):
        read_table(spark, path, "embedded")


def delta_spark_demo_input(spark, tmp_path) -> int:
    """The demo input rewritten by delta-spark with deletion vectors, column mapping (a column
    renamed) and v2 checkpoints, then some rows deleted: the rows now in it."""
    source = tmp_path / "source"
    write_demo_input(source, days=2, rows_per_day=150)
    path = str(tmp_path / "customers")
    features = {
        "delta.enableDeletionVectors": "true",
        "delta.columnMapping.mode": "name",
        "delta.checkpointPolicy": "v2",
        "delta.checkpointInterval": "2",
    }
    spark.read.format("delta").load(str(source)).withColumn("note", F.lit("x")).write.format("delta").partitionBy("ds").options(
        **features
    ).save(path)
    t = f"delta.`{path}`"
    spark.sql(f"ALTER TABLE {t} RENAME COLUMN note TO remark")
    spark.sql(f"DELETE FROM {t} WHERE customer_id % 7 = 0")
    return spark.read.format("delta").load(path).where("ds = DATE'2024-06-02'").count()


@pytest.fixture(scope="module")
def delta_spark_input(tmp_path_factory, spark):
    """delta_spark_demo_input, made once for the tests below: (its path, the rows of ds=2024-06-02)."""
    require_native(spark)
    home = tmp_path_factory.mktemp("lakehouse")
    return home / "customers", delta_spark_demo_input(spark, home)


def score_ds_2024_06_02(tmp_path, registry, input_path, *sets):
    """The job over input_path, its tables under tmp_path: the exit code."""
    overrides = [a for s in (f"input.path={input_path}", *sets) for a in ("--set", s)]
    return main(["--conf", job_config(tmp_path, registry), "--partition", "ds=2024-06-02", *overrides])


def test_the_job_refuses_a_delta_spark_table_on_embedded_naming_its_features(delta_spark_input, tmp_path, registry):
    input_path, _ = delta_spark_input
    assert score_ds_2024_06_02(tmp_path, registry, input_path, "engine=embedded") == 2
    assert not (tmp_path / "scored").exists() and not (tmp_path / "quarantine").exists()
    runs = ledger(tmp_path / "runs")
    assert list(runs["engine"]) == ["embedded"] and list(runs["exit_code"]) == [2]
    assert "deletionVectors" in runs.iloc[0]["error"] and "columnMapping" in runs.iloc[0]["error"]


def test_the_job_scores_a_delta_spark_table_on_native(delta_spark_input, tmp_path, registry):
    input_path, rows_in = delta_spark_input
    assert score_ds_2024_06_02(tmp_path, registry, input_path) == 0  # auto: native
    scored, quarantined = delta(tmp_path / "scored"), delta(tmp_path / "quarantine")
    assert len(scored) + len(quarantined) == rows_in
    assert not (scored["customer_id"] % 7 == 0).any()  # the deleted rows stay deleted
    runs = ledger(tmp_path / "runs")
    assert list(runs["engine"]) == ["native"] and list(runs["exit_code"]) == [0]
