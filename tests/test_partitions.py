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
