import math

from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import RuleConfig
from transforms.validation import REASONS, is_quarantined, validate

SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("tenure", T.IntegerType()),
        T.StructField("charge", T.DoubleType()),
        T.StructField("plan", T.StringType()),
    ]
)
RULES = [
    RuleConfig("not_null", "id_present", "id"),
    RuleConfig("range", "tenure_range", "tenure", min=0, max=100),
    RuleConfig("range", "charge_range", "charge", min=0),
    RuleConfig("allowed_values", "plan_known", "plan", values=("basic", "premium")),
    RuleConfig("expression", "charge_per_tenure", expr="charge <= tenure * 100"),
]


def rules_broken(spark, rows):
    df = spark.createDataFrame(rows, SCHEMA).transform(validate(RULES))
    return df.select("id", F.transform(F.col(REASONS), lambda r: r["rule"]).alias("rules"))


def test_every_broken_rule_is_listed_not_just_the_first(spark):
    rows = [
        (1, 5, 10.0, "basic"),  # good
        (None, -1, 10.0, "gold"),  # three rules
        (3, 200, float("nan"), "premium"),  # range, range (NaN); expression is null -> failure
        (4, 1, float("inf"), None),  # inf breaks the range; null plan is not the allowed_values rule's business
        (5, None, None, None),  # nulls only break not_null rules; the expression is null -> failure
    ]
    expected = spark.createDataFrame(
        [
            (1, []),
            (None, ["id_present", "tenure_range", "plan_known", "charge_per_tenure"]),  # 10 > -1 * 100
            (3, ["tenure_range", "charge_range", "charge_per_tenure"]),
            (4, ["charge_range", "charge_per_tenure"]),
            (5, ["charge_per_tenure"]),
        ],
        "id long, rules array<string>",
    )
    assert_df_equality(rules_broken(spark, rows), expected, ignore_row_order=True, ignore_nullable=True)


def test_reasons_carry_the_column_and_a_message(spark):
    df = spark.createDataFrame([(1, 101, 1.0, "basic")], SCHEMA).transform(validate(RULES))
    (reason,) = df.select(F.explode(REASONS).alias("r")).select("r.*").collect()
    assert reason.asDict() == {"rule": "tenure_range", "column": "tenure", "message": "tenure is outside [0, 100]"}


def test_without_rules_every_row_is_good(spark):
    df = spark.createDataFrame([(1, 1, math.nan, None)], SCHEMA).transform(validate([]))
    assert df.where(is_quarantined()).count() == 0
    assert df.schema[REASONS].dataType.elementType.fieldNames() == ["rule", "column", "message"]
