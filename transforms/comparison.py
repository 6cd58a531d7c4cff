"""Champion against challengers: the comparison aggregates :func:`transforms.stats.prediction_profile`
adds per challenger, and what is derived from them once the statistics rows are collected.

Scopes in the aggregation carry the challenger's tag (``challenger#0``, ``comparison#0``);
:func:`derive_comparisons` adds Cohen's κ and the PSI between the two histograms, which are no
plain aggregates, and :func:`tag_challengers` then turns the tag into a ``model_version``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.drift import psi
from transforms.numeric import finite, is_floating

if TYPE_CHECKING:  # transforms.stats imports this module
    from transforms.stats import Metric

Row = dict[str, Any]
CHAMPION, CHALLENGER, COMPARISON = "prediction", "challenger", "comparison"
LONG = ("scope", "column", "metric", "bucket", "value")  # every other key of a row names its partition
JOINT = ((0, 0), (0, 1), (1, 0), (1, 1))  # (champion, challenger) decisions


def challenger_scope(tag: str) -> str:
    return f"{CHALLENGER}#{tag}"


def comparison_scope(tag: str) -> str:
    return f"{COMPARISON}#{tag}"


def comparison_metrics(df: DataFrame, tag: str, outputs: T.StructType, column_of: Mapping[str, str]) -> list[Metric]:
    """The aggregates comparing a challenger with the champion, scope ``comparison#<tag>``, column =
    the output's name, for each output the challenger has (``column_of``: output -> its column).

    Integral outputs (decisions), over the rows where both are non-null: ``compared``,
    ``agreement`` (share of equal values), ``flips`` (bucket ``0->1``: champion 0, challenger 1, and
    ``1->0``), ``joint_count`` (bucket ``a,b``: champion a, challenger b, a and b in {0, 1}) and
    ``non_binary`` (rows where either value is outside {0, 1}).

    Floating outputs (scores), over the rows where both are finite: ``compared``,
    ``mean_abs_diff``, ``max_abs_diff`` and ``pearson`` (None when either side is constant).
    """
    scope = comparison_scope(tag)
    metrics: list[Metric] = []
    for field in outputs.fields:
        other = column_of.get(field.name)
        if other is None:
            continue
        if isinstance(field.dataType, T.IntegralType):
            metrics.extend(_decisions(scope, field.name, F.col(field.name), F.col(other)))
        elif is_floating(field.dataType):
            metrics.extend(_scores(scope, field.name, finite(df, field.name), finite(df, other)))
    return metrics


def _decisions(scope: str, name: str, a: Column, b: Column) -> list[Metric]:
    both = a.isNotNull() & b.isNotNull()
    binary = a.isin(0, 1) & b.isin(0, 1)
    return [
        ((scope, name, "compared", None), F.count_if(both)),
        ((scope, name, "agreement", None), F.avg(F.when(both, (a == b).cast("double")))),
        ((scope, name, "flips", "0->1"), F.count_if(both & (a == 0) & (b == 1))),
        ((scope, name, "flips", "1->0"), F.count_if(both & (a == 1) & (b == 0))),
        *(((scope, name, "joint_count", f"{i},{j}"), F.count_if(both & (a == i) & (b == j))) for i, j in JOINT),
        ((scope, name, "non_binary", None), F.count_if(both & ~binary)),
    ]


def _scores(scope: str, name: str, a: Column, b: Column) -> list[Metric]:
    both = a.isNotNull() & b.isNotNull()  # a and b are finite or null
    x, y = F.when(both, a), F.when(both, b)
    diff = F.abs(x - y)
    # not F.corr: with ANSI on (Spark 4's default) it fails the query when a side is constant
    spread = F.stddev_pop(x) * F.stddev_pop(y)
    return [
        ((scope, name, "compared", None), F.count_if(both)),
        ((scope, name, "mean_abs_diff", None), F.avg(diff)),
        ((scope, name, "max_abs_diff", None), F.max(diff)),
        ((scope, name, "pearson", None), F.when(spread > 0, F.covar_pop(x, y) / spread)),
    ]


def derive_comparisons(rows: Sequence[Row]) -> list[Row]:
    """The collected statistics rows with, per partition and ``comparison#<tag>`` output, the
    metrics derived from other rows: ``kappa`` (decisions) and ``psi`` (scores). Call it before
    :func:`tag_challengers`, which drops the tags.

    κ is Cohen's, ``(p_o - p_e) / (1 - p_e)`` from the joint counts; None when nothing was compared,
    when a decision was outside {0, 1} or when ``p_e`` is 1 (both sides one and the same class). PSI
    is :func:`transforms.drift.psi` from the champion's histogram (scope ``prediction``) to the
    challenger's (``challenger#<tag>``), in the same bins; None when either has no count.

    Args:
        rows: long rows (``scope``, ``column``, ``metric``, ``bucket``, ``value``); every other key
            (the partition columns) is passed through, and the rows are grouped by them.

    Returns:
        New rows, the given ones first; NaN values become None.
    """
    out = [_clean(r) for r in rows]
    partitions: dict[tuple[tuple[str, Any], ...], list[Row]] = {}
    for r in out:
        partitions.setdefault(tuple(sorted((k, v) for k, v in r.items() if k not in LONG)), []).append(r)
    derived: list[Row] = []
    for members in partitions.values():
        partition = {k: v for k, v in members[0].items() if k not in LONG}
        values: dict[tuple[str, str, str], dict[str | None, Any]] = {}
        for r in members:
            values.setdefault((r["scope"], r["column"], r["metric"]), {})[r["bucket"]] = r["value"]
        compared = sorted({(s, c) for s, c, _ in values if s.startswith(comparison_scope(""))})
        for scope, column in compared:
            if (scope, column, "agreement") in values:
                non_binary = values.get((scope, column, "non_binary"), {}).get(None)
                value = _kappa(values.get((scope, column, "joint_count"), {}), non_binary)
                derived.append({**partition, "scope": scope, "column": column, "metric": "kappa", "bucket": None, "value": value})
            if (scope, column, "mean_abs_diff") in values:
                challenger = challenger_scope(scope.partition("#")[2])
                value = _psi(values.get((CHAMPION, column, "histogram"), {}), values.get((challenger, column, "histogram"), {}))
                derived.append({**partition, "scope": scope, "column": column, "metric": "psi", "bucket": None, "value": value})
    return out + derived


def _kappa(joint: Mapping[str | None, Any], non_binary: float | None) -> float | None:
    n = {(i, j): round(joint.get(f"{i},{j}") or 0) for i, j in JOINT}
    total = sum(n.values())
    if total == 0 or (non_binary or 0) > 0:
        return None
    # in whole numbers, so p_e == 1 is exact: kappa = (total * agreed - chance) / (total**2 - chance)
    agreed = n[0, 0] + n[1, 1]
    chance = sum((n[k, 0] + n[k, 1]) * (n[0, k] + n[1, k]) for k in (0, 1))
    if total * total == chance:
        return None
    return (total * agreed - chance) / (total * total - chance)


def _psi(champion: Mapping[str | None, Any], challenger: Mapping[str | None, Any]) -> float | None:
    labels = sorted(set(champion) | set(challenger), key=str)
    reference = [float(champion.get(label) or 0.0) for label in labels]
    current = [float(challenger.get(label) or 0.0) for label in labels]
    if sum(reference) <= 0 or sum(current) <= 0:
        return None  # no finite score on one side: nothing to compare
    return psi(reference, current)


def tag_challengers(rows: Sequence[Row], versions: Mapping[str, str]) -> list[Row]:
    """The rows with scope ``challenger#<tag>`` as ``challenger`` and ``comparison#<tag>`` as
    ``comparison``, each with ``model_version`` = ``versions[tag]``; every other row gets
    ``model_version`` None. NaN values become None.

    Raises:
        ValueError: a tag has no version.
    """
    out = []
    for r in rows:
        kind, tagged, tag = str(r["scope"]).partition("#")
        if not (tagged and kind in (CHALLENGER, COMPARISON)):
            out.append({**_clean(r), "model_version": None})
            continue
        if tag not in versions:
            raise ValueError(f"statistics of challenger {tag!r}, but versions are given for {sorted(versions)} only")
        out.append({**_clean(r), "scope": kind, "model_version": versions[tag]})
    return out


def _clean(row: Row) -> Row:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
