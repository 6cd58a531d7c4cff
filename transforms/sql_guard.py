"""Spark SQL written in config, checked before it runs: deny by default.

``derive`` steps and ``expression`` rules carry Spark SQL expressions, from the job's YAML or from a
model's ``lakescore/pipeline.json``. Spark would run whatever they say: ``reflect`` and
``java_method`` call any Java method (a config once wrote an AWS secret and /etc/passwd into the
scored table), ``input_file_name`` and subqueries read what the job was not asked to read, and
``rand``/``uuid``/``current_*`` make a rerun score differently. So every such expression is parsed
by the session's own parser (the one ``F.expr`` uses, so what is checked is exactly what would
run) and its Catalyst tree is walked; anything not allowed below is refused:

* **functions** (``UnresolvedFunction``): only the one-part names in :data:`ALLOWED_FUNCTIONS`,
  deterministic built-in scalar functions: arithmetic, conditionals and null handling, strings,
  regular expressions, dates computed from their arguments, casts, arrays, maps and structs
  (higher-order ones too: their lambdas are walked like any other node), hashes and JSON. Not
  allowed: ``reflect``, ``java_method``, ``try_reflect``, ``input_file_*``, ``rand``/``randn``/
  ``random``/``uuid``/``shuffle``/``uniform``, ``current_*``/``now``/``localtimestamp``,
  ``monotonically_increasing_id``, ``spark_partition_id``, ``aes_*``, ``xpath*``/``from_xml``,
  ``raise_error``/``assert_true``, aggregates and window functions, and every name qualified by a
  catalog or database (a persistent UDF) or registered in the session as a temporary function
  (a Python or Java UDF, even one shadowing a built-in's name). ``unix_timestamp()`` without
  arguments is the current time, so it needs one.
* **syntax** (every other node): only the classes in :data:`ALLOWED_NODES`, the operators and
  special forms the parser builds (``+``, ``AND``, ``CASE``, ``CAST``, ``LIKE``, ``IN (...)``,
  ``x[0]``, lambdas, ...). Refused by not being there: subqueries (``EXISTS``, ``IN (SELECT ...)``,
  scalar subqueries, which are the only way an expression names a table), window expressions,
  ``*``, and ``IDENTIFIER('...')`` (its function name is a string, only known after the check).
* **names** (``UnresolvedAttribute``): a column, unless it is one of :data:`LITERAL_FUNCTIONS`
  (``current_timestamp``, ``user``, ...), which Spark resolves to the function when no column
  has that name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pyspark.sql import SparkSession

from transforms.specs import RuleConfig, StepConfig

ALLOWED_FUNCTIONS = frozenset(
    {
        # math
        *"abs acos acosh asin asinh atan atan2 atanh bin bround cbrt ceil ceiling conv cos cosh cot csc degrees".split(),
        *"e exp expm1 factorial floor greatest hex hypot least ln log log10 log1p log2 mod nanvl negative pi".split(),
        *"pmod positive pow power radians rint round sec sign signum sin sinh sqrt tan tanh unhex width_bucket".split(),
        *"try_add try_divide try_mod try_multiply try_subtract div bit_count bit_get getbit".split(),
        *"shiftleft shiftright shiftrightunsigned".split(),
        # conditionals and nulls
        *"between coalesce equal_null if ifnull isnan isnotnull isnull nullif nullifzero nvl nvl2 zeroifnull".split(),
        # strings and regular expressions
        *"ascii base64 bit_length btrim char char_length character_length chr concat concat_ws contains decode".split(),
        *"elt encode endswith find_in_set format_number format_string initcap instr lcase left len length".split(),
        *"levenshtein like ilike locate lower lpad ltrim luhn_check mask octet_length overlay position printf".split(),
        *"regexp regexp_count regexp_extract regexp_extract_all regexp_instr regexp_like regexp_replace".split(),
        *"regexp_substr repeat replace reverse right rlike rpad rtrim soundex space split split_part startswith".split(),
        *"substr substring substring_index to_binary to_char to_number to_varchar translate trim try_to_binary".split(),
        *"try_to_number ucase unbase64 upper url_decode url_encode try_url_decode parse_url try_parse_url".split(),
        # dates and times, from their arguments (never the clock)
        *"add_months date_add date_diff date_format date_from_unix_date date_part date_sub date_trunc dateadd".split(),
        *"datediff datepart day dayname dayofmonth dayofweek dayofyear extract from_unixtime from_utc_timestamp".split(),
        *"hour last_day make_date make_dt_interval make_interval make_timestamp make_timestamp_ltz".split(),
        *"make_timestamp_ntz make_ym_interval minute month monthname months_between next_day quarter second".split(),
        *"timestamp_micros timestamp_millis timestamp_seconds to_date to_timestamp to_timestamp_ltz".split(),
        *"to_timestamp_ntz to_unix_timestamp to_utc_timestamp trunc try_make_interval try_make_timestamp".split(),
        *"try_to_date try_to_timestamp unix_date unix_micros unix_millis unix_seconds unix_timestamp weekday".split(),
        *"weekofyear year convert_timezone".split(),
        # casts and types
        *"bigint binary boolean cast date decimal double float int smallint string timestamp tinyint typeof".split(),
        # arrays, maps, structs (higher-order functions included: their lambdas are checked too)
        *"aggregate array array_append array_compact array_contains array_distinct array_except array_insert".split(),
        *"array_intersect array_join array_max array_min array_position array_prepend array_remove".split(),
        *"array_repeat array_size array_sort array_union arrays_overlap arrays_zip cardinality element_at".split(),
        *"exists filter flatten forall get map map_concat map_contains_key map_entries map_filter".split(),
        *"map_from_arrays map_from_entries map_keys map_values map_zip_with named_struct reduce sequence size".split(),
        *"slice sort_array str_to_map struct transform transform_keys transform_values try_element_at zip_with".split(),
        # hashes and JSON
        *"crc32 hash md5 sha sha1 sha2 xxhash64 from_json get_json_object json_array_length json_object_keys".split(),
        "to_json",
    }
)

# Operators and special forms, by Catalyst class (simple name; Scala's ``$`` suffixes dropped)
ALLOWED_NODES = frozenset(
    {
        *"Literal UnresolvedAttribute UnresolvedFunction UnresolvedExtractValue".split(),
        *"LambdaFunction UnresolvedNamedLambdaVariable".split(),
        *"Add Subtract Multiply Divide Remainder IntegralDivide Pmod UnaryMinus UnaryPositive".split(),
        *"BitwiseAnd BitwiseOr BitwiseXor BitwiseNot ShiftLeft ShiftRight ShiftRightUnsigned".split(),
        *"EqualTo EqualNullSafe GreaterThan GreaterThanOrEqual LessThan LessThanOrEqual".split(),
        *"And Or Not In IsNull IsNotNull IsUnknown IsNotUnknown CaseWhen If Cast".split(),
        *"Like RLike ILike LikeAny LikeAll NotLikeAny NotLikeAll".split(),
        *"Concat Substring StringTrim StringTrimLeft StringTrimRight StringTrimBoth StringLocate Overlay".split(),
        *"TimestampAdd TimestampDiff CreateNamedStruct NamePlaceholder Collate UnresolvedCollation".split(),
    }
)

# names Spark resolves to a function when no column is called that: they read the clock or the session
LITERAL_FUNCTIONS = frozenset(
    {"current_date", "current_time", "current_timestamp", "current_user", "current_path", "user", "session_user", "grouping__id"}
)
NEEDS_ARGUMENTS = frozenset({"unix_timestamp"})  # without one: the current time
_CATALYST = "org.apache.spark.sql.catalyst."


class UnsafeExpressionError(ValueError):
    """A config expression that is not valid Spark SQL or uses what :mod:`transforms.sql_guard`
    does not allow; the message names the file, the key path and the function or syntax."""


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(i) for i in range(scala_seq.length())]


def _nodes(root: Any) -> Iterator[Any]:
    """Every node of a Catalyst expression tree, root first."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(_seq(node.children())))


def _node_name(node: Any) -> tuple[str, str]:
    """(full class name, simple name without Scala's ``$`` and ``$$anon`` suffixes)."""
    full = node.getClass().getName()
    return full, full.rsplit(".", 1)[-1].split("$", 1)[0]


def _is_subquery(node: Any) -> bool:
    """A subquery: a ``PlanExpression`` (``ScalarSubquery``, ``Exists``, ``ListQuery``), or the
    ``IN`` that holds a ``ListQuery``."""
    cls = node.getClass()
    if cls.getName().endswith(".InSubquery"):
        return True
    while cls is not None:
        if cls.getName().endswith(".PlanExpression"):
            return True
        cls = cls.getSuperclass()
    return False


def _function_problem(spark: SparkSession, node: Any) -> str | None:
    parts = [str(p) for p in _seq(node.nameParts())]
    name = ".".join(parts)
    if len(parts) != 1:
        return f"function {name}: a qualified name (a catalog function or UDF) is not allowed"
    lowered = name.lower()
    if lowered not in ALLOWED_FUNCTIONS:
        return f"function {name} is not allowed (not a deterministic built-in scalar function LakeScore allows)"
    if lowered in NEEDS_ARGUMENTS and node.arguments().length() == 0:
        return f"function {name}() without arguments reads the clock"
    identifier = spark._jvm.org.apache.spark.sql.catalyst.FunctionIdentifier.apply(lowered)  # type: ignore[union-attr]
    if spark._jsparkSession.sessionState().catalog().isTemporaryFunction(identifier):
        return f"function {name} is registered in this session as a temporary function (a UDF)"
    return None


def _node_problem(spark: SparkSession, node: Any) -> str | None:
    """Why this one node may not run, or None."""
    full, simple = _node_name(node)
    if not full.startswith(_CATALYST) or simple not in ALLOWED_NODES:
        if _is_subquery(node):
            return f"a subquery ({simple}) is not allowed: an expression may read only its own row"
        return f"the syntax {simple} is not allowed"
    if simple == "UnresolvedFunction":
        return _function_problem(spark, node)
    if simple == "UnresolvedAttribute":
        parts = [str(p) for p in _seq(node.nameParts())]
        if len(parts) == 1 and parts[0].lower() in LITERAL_FUNCTIONS:
            return f"{parts[0]} is the function {parts[0].lower()}, not deterministic"
    return None


def check_expression(spark: SparkSession, text: str, where: str) -> None:
    """Parse ``text`` with the session's SQL parser and refuse what is not allowed.

    Raises:
        UnsafeExpressionError: ``<where>: <what is refused> in <text>``.
    """
    try:
        root = spark._jsparkSession.sessionState().sqlParser().parseExpression(text)
    except Exception as exc:  # py4j wraps Spark's ParseException
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeExpressionError(f"{where}: {text!r} is not a valid Spark SQL expression: {first}") from None
    for node in _nodes(root):
        problem = _node_problem(spark, node)
        if problem:
            raise UnsafeExpressionError(f"{where}: {problem}, in {text!r} (allowed: transforms/sql_guard.py)")


def config_expressions(
    steps: Iterable[StepConfig], rules: Iterable[RuleConfig], steps_key: str = "preprocessing"
) -> list[tuple[str, str]]:
    """Every SQL expression of these steps and rules, with its key path: (``preprocessing[2].expr``, text)."""
    found = [(f"{steps_key}[{i}].expr", s.param("expr")) for i, s in enumerate(steps) if s.kind == "derive"]
    found += [(f"validation.rules[{i}].expr", r.expr) for i, r in enumerate(rules) if r.kind == "expression"]
    return [(key, text or "") for key, text in found]


def check_config_sql(
    spark: SparkSession,
    steps: Sequence[StepConfig],
    rules: Sequence[RuleConfig],
    source: str,
    steps_key: str = "preprocessing",
) -> None:
    """Check every expression of a config's steps and rules (``source``: the file, or
    ``model <uri> lakescore/pipeline.json`` with ``steps_key="steps"``), before any row is read.

    Raises:
        UnsafeExpressionError: naming ``source``, the key path and what is refused.
    """
    for key, text in config_expressions(steps, rules, steps_key):
        check_expression(spark, text, f"{source}: {key}")
