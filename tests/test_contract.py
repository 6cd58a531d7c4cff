import pytest
from pyspark.sql import types as T

from transforms.contract import ContractError, check_contract, conform

SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("tenure", T.IntegerType()),
        T.StructField("charge", T.FloatType()),
        T.StructField("plan", T.StringType()),
    ]
)


def test_safe_widenings_are_returned_as_casts():
    casts = check_contract(SCHEMA, {"id": None, "tenure": T.DoubleType(), "charge": T.DoubleType(), "plan": T.StringType()}, "t")
    assert casts == {"tenure": T.DoubleType(), "charge": T.DoubleType()}


def test_missing_and_incompatible_columns_are_all_named_with_the_table():
    with pytest.raises(ContractError) as err:
        check_contract(SCHEMA, {"region": T.StringType(), "plan": T.DoubleType(), "charge": T.IntegerType()}, "/data/customers")
    text = str(err.value)
    assert text.startswith("input table /data/customers breaks the contract")
    assert "column 'region' is missing (expected string)" in text
    assert "column 'plan' has type string, expected double" in text
    assert "column 'charge' has type float, expected int" in text  # narrowing is not safe


def test_conform_applies_the_casts(spark):
    df = spark.createDataFrame([(1, 2, 1.5, "a")], SCHEMA).transform(conform({"tenure": T.DoubleType()}))
    assert [f.dataType for f in df.schema.fields] == [T.LongType(), T.DoubleType(), T.FloatType(), T.StringType()]
    assert df.first().tenure == 2.0


def test_every_type_a_config_may_declare_is_a_spark_type_of_that_name():
    from jobs.config import CONTRACT_TYPES
    from transforms.contract import SPARK_TYPES

    assert set(CONTRACT_TYPES.values()) == set(SPARK_TYPES)  # every type a config may declare can be checked
    assert all(t.simpleString() == name for name, t in SPARK_TYPES.items())


def test_a_declared_type_narrower_than_the_tables_is_refused():
    from transforms.contract import SPARK_TYPES

    with pytest.raises(ContractError, match=r"column 'id' has type bigint, expected int"):
        check_contract(SCHEMA, {"id": SPARK_TYPES["int"]}, "t")


# --- through the real entry point ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_input(tmp_path_factory, registry):
    from tests.helpers import write_demo_input

    home = tmp_path_factory.mktemp("contract")
    write_demo_input(home / "customers", days=1, rows_per_day=40)
    return home


def _run(home, registry, capsys, *sets):
    from deltalake import DeltaTable

    from jobs.score import main
    from tests.helpers import job_config, ledger

    work = home / f"run{len(list(home.iterdir()))}"
    work.mkdir()
    (work / "customers").symlink_to(home / "customers")
    code = main(["--conf", job_config(work, registry), "--partition", "ds=2024-06-01", *[a for s in sets for a in ("--set", s)]])
    out = capsys.readouterr()
    written = [t for t in ("scored", "quarantine") if DeltaTable.is_deltatable(str(work / t))]
    runs = ledger(work / "runs")
    return code, out.out + out.err, written, runs, work


def test_declared_type_the_input_breaks_exits_2_naming_table_column_expected_and_found(small_input, registry, capsys):
    code, output, written, runs, work = _run(small_input, registry, capsys, "contract.columns.tenure_months=string")
    message = (
        f"input table {(work / 'customers').resolve()} breaks the contract: column 'tenure_months' has type int, expected string"
    )
    assert code == 2 and message in output
    assert written == []  # nothing scored or quarantined
    assert list(runs["status"]) == ["rejected"] and message in runs["error"].iloc[0]


def test_declared_column_the_input_lacks_exits_2_and_names_it(small_input, registry, capsys):
    code, output, written, runs, work = _run(small_input, registry, capsys, "contract.columns.loyalty_tier=string")
    assert code == 2 and written == []
    assert (
        f"input table {(work / 'customers').resolve()} breaks the contract: column 'loyalty_tier' is missing (expected string)"
        in output
    )
    assert runs["status"].tolist() == ["rejected"]
