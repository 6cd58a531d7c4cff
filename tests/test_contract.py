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
