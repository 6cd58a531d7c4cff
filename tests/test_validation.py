import math
import re
from collections import Counter

from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    assert reason.asDict() == {
        "rule": "tenure_range",
        "column": "tenure",
        "message": "tenure is outside [0, 100]",
        "code": "range",
    }


def test_without_rules_every_row_is_good(spark):
    df = spark.createDataFrame([(1, 1, math.nan, None)], SCHEMA).transform(validate([]))
    assert df.where(is_quarantined()).count() == 0
    assert df.schema[REASONS].dataType.elementType.fieldNames() == ["rule", "column", "message", "code"]


def reasons(spark, rows, schema, rules):
    df = spark.createDataFrame(rows, schema).transform(validate(rules))
    return df.select("id", F.col(REASONS).alias("reasons"))


def test_regex_breaks_on_a_non_matching_value_and_ignores_nulls(spark):
    rule = RuleConfig("regex", "plan_format", "plan", pattern="^[a-z]+$")
    rows = [(1, 0, 0.0, "basic"), (2, 0, 0.0, "Basic"), (3, 0, 0.0, None), (4, 0, 0.0, "basic2"), (5, 0, 0.0, "")]
    expected = spark.createDataFrame(
        [
            (1, []),
            (2, [("plan_format", "plan", "plan does not match ^[a-z]+$", "regex")]),
            (3, []),
            (4, [("plan_format", "plan", "plan does not match ^[a-z]+$", "regex")]),
            (5, [("plan_format", "plan", "plan does not match ^[a-z]+$", "regex")]),
        ],
        "id long, reasons array<struct<rule string, column string, message string, code string>>",
    )
    assert_df_equality(reasons(spark, rows, SCHEMA, [rule]), expected, ignore_row_order=True, ignore_nullable=True)


def test_unique_quarantines_every_row_of_a_duplicated_key_with_the_count(spark):
    rule = RuleConfig("unique", "key_unique", columns=("id", "plan"))
    rows = [
        (1, 0, 0.0, "a"),
        (1, 1, 0.0, "a"),
        (1, 2, 0.0, "a"),  # three rows share (1, a)
        (1, 0, 0.0, "b"),  # same id, other plan: a different key
        (2, 0, 0.0, None),
        (2, 0, 0.0, None),  # a key with a null part is not compared
        (None, 0, 0.0, "a"),
        (None, 0, 0.0, "a"),
    ]
    dup = [("key_unique", "id, plan", "(id, plan) is duplicated: 3 rows share this key", "unique")]
    expected = spark.createDataFrame(
        [(1, dup), (1, dup), (1, dup), (1, []), (2, []), (2, []), (None, []), (None, [])],
        "id long, reasons array<struct<rule string, column string, message string, code string>>",
    )
    assert_df_equality(reasons(spark, rows, SCHEMA, [rule]), expected, ignore_row_order=True, ignore_nullable=True)


def test_unique_adds_no_columns_and_an_empty_partition_stays_empty(spark):
    rules = [RuleConfig("unique", "id_unique", columns=("id",))]
    empty = spark.createDataFrame([], SCHEMA).transform(validate(rules))
    assert empty.columns == [*SCHEMA.fieldNames(), REASONS]
    assert empty.count() == 0


def test_range_allow_nan_lets_nan_and_inf_through_but_still_checks_bounds(spark):
    strict = RuleConfig("range", "strict", "charge", min=0, max=10)
    lenient = RuleConfig("range", "lenient", "charge", min=0, max=10, allow_nan=True)
    rows = [
        (1, 0, math.nan, "a"),
        (2, 0, math.inf, "a"),
        (3, 0, -math.inf, "a"),
        (4, 0, 11.0, "a"),
        (5, 0, 5.0, "a"),
        (6, 0, None, "a"),
    ]
    expected = spark.createDataFrame(
        [(1, ["strict"]), (2, ["strict"]), (3, ["strict"]), (4, ["strict", "lenient"]), (5, []), (6, [])],
        "id long, rules array<string>",
    )
    got = spark.createDataFrame(rows, SCHEMA).transform(validate([strict, lenient]))
    got = got.select("id", F.transform(F.col(REASONS), lambda r: r["rule"]).alias("rules"))
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


# --- quarantine accounting over randomly corrupted rows --------------------------------------

PROP_SCHEMA = T.StructType(
    [
        T.StructField("row", T.LongType()),
        T.StructField("id", T.LongType()),
        T.StructField("tenure", T.IntegerType()),
        T.StructField("charge", T.DoubleType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("plan", T.StringType()),
        T.StructField("code", T.StringType()),
    ]
)
PATTERN = "^[A-Z]{2}[0-9]$"
PROP_RULES = [
    RuleConfig("not_null", "id_present", "id"),
    RuleConfig("unique", "id_unique", columns=("id",)),
    RuleConfig("range", "tenure_range", "tenure", min=0, max=100),
    RuleConfig("range", "charge_range", "charge", min=0),
    RuleConfig("range", "score_range", "score", max=1, allow_nan=True),
    RuleConfig("allowed_values", "plan_known", "plan", values=("basic", "premium")),
    RuleConfig("regex", "code_format", "code", pattern=PATTERN),
    RuleConfig("expression", "charge_cap", expr="charge <= 1000"),
]
FLOATS = st.one_of(st.none(), st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 0.5, 2.0, 999.0, 5000.0]))
ROW = st.tuples(
    st.one_of(st.none(), st.integers(1, 6)),  # a small id space makes duplicates common
    st.one_of(st.none(), st.integers(-5, 105)),
    FLOATS,
    FLOATS,
    st.one_of(st.none(), st.sampled_from(["basic", "premium", "gold", ""])),
    st.one_of(st.none(), st.sampled_from(["AB1", "ab1", "AB12", "XY9", ""])),
)


def expected_rules(rows):
    """The rules each row breaks, computed in Python from the rule definitions."""
    ids = Counter(r[0] for r in rows if r[0] is not None)
    finite = lambda x: x is not None and math.isfinite(x)  # noqa: E731
    out = []
    for id_, tenure, charge, score, plan, code in rows:
        broken = set()
        if id_ is None:
            broken.add("id_present")
        elif ids[id_] > 1:
            broken.add("id_unique")
        if tenure is not None and not 0 <= tenure <= 100:
            broken.add("tenure_range")
        if charge is not None and not (finite(charge) and charge >= 0):
            broken.add("charge_range")
        if finite(score) and score > 1:
            broken.add("score_range")
        if plan is not None and plan not in ("basic", "premium"):
            broken.add("plan_known")
        if code is not None and not re.search(PATTERN, code):
            broken.add("code_format")
        if not (charge is not None and not math.isnan(charge) and charge <= 1000):
            broken.add("charge_cap")  # null or NaN cannot be shown to be <= 1000
        out.append(broken)
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=0, max_size=25))
def test_every_row_is_scored_or_quarantined_with_every_reason_it_earns(spark, rows):
    df = spark.createDataFrame([(i, *r) for i, r in enumerate(rows)], PROP_SCHEMA).transform(validate(PROP_RULES))
    got = {
        r["row"]: (r["q"], set(r["rules"]))
        for r in df.select("row", is_quarantined().alias("q"), F.col(REASONS)["rule"].alias("rules")).collect()
    }
    expected = expected_rules(rows)
    assert sorted(got) == list(range(len(rows)))  # rows in = rows out, none lost or repeated
    good = [i for i, (q, _) in got.items() if not q]
    bad = [i for i, (q, _) in got.items() if q]
    assert len(good) + len(bad) == len(rows)
    assert {i: rules for i, (_, rules) in got.items()} == dict(enumerate(expected))
    assert all(got[i][1] for i in bad) and not any(expected[i] for i in good)
