"""The building blocks of config validation: a key path for every error, and checked values.

Every error names the file and the key path (``conf/jobs/churn.yaml: output.scored: ...``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ALL_COLUMNS = "*"  # in a per-column threshold mapping: every column not named


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the key path."""


class Where:
    """Tracks the file and key path so every error can say where it is."""

    def __init__(self, source: str, path: str = "") -> None:
        self.source, self.path = source, path

    def __truediv__(self, key: str | int) -> Where:
        if isinstance(key, int):
            return Where(self.source, f"{self.path}[{key}]")
        return Where(self.source, f"{self.path}.{key}" if self.path else key)

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.path or '<root>'}: {message}")


def mapping_of(raw: Any, where: Where, allowed: set[str]) -> Mapping[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise where.error(f"expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - allowed, key=str)
    if unknown:
        raise (where / unknown[0]).error(f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return raw


def required(raw: Mapping[str, Any], key: str, where: Where) -> Any:
    if raw.get(key) in (None, ""):
        raise (where / key).error("is required")
    return raw[key]


def string(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not value:
        raise where.error(f"expected a non-empty string, got {value!r}")
    return value


def identifier(value: Any, where: Where) -> str:
    value = string(value, where)
    if not IDENTIFIER.match(value):
        raise where.error(f"{value!r} is not a valid column name")
    return value


def identifiers(value: Any, where: Where) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise where.error(f"expected a list of column names, got {value!r}")
    return tuple(identifier(v, where / i) for i, v in enumerate(value))


def number(value: Any, where: Where) -> float:
    """A finite or infinite number; NaN is refused: no threshold, bound or split means "not a
    number", and every comparison with NaN is false, so it would silently disable what it sets."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
        raise where.error(f"expected a number, got {value!r}")
    return float(value)


INT64_MAX = 2**63 - 1  # Spark's LongType: counts and row limits are compared with longs


def bounded_int(value: Any, where: Where, low: int, high: int, what: str = "an integer") -> int:
    """An integer in ``[low, high]``: the bounds are the ones the value meets at run time (an
    int32 Spark conf, a long column), so a bad value is refused before Spark starts, not mid-run."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise where.error(f"expected {what} between {low:,} and {high:,}, got {value!r}")
    return value


def positive_int(value: Any, where: Where, high: int = INT64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise where.error(f"expected a positive integer, got {value!r}")
    return bounded_int(value, where, 1, high, "a positive integer")


def table_path(value: Any, where: Where) -> str:
    """Local relative paths are made absolute against the working directory; URIs pass through."""
    value = string(value, where)
    if "://" in value:
        return value.rstrip("/")
    return str(Path(value).expanduser().resolve())


def boolean(value: Any, where: Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"expected true or false, got {value!r}")
    return value


def distinct_columns(raw: Mapping[str, Any], where: Where) -> tuple[str, ...]:
    """``columns``: a non-empty list of column names, none twice."""
    columns = identifiers(required(raw, "columns", where), where / "columns")
    if not columns:
        raise (where / "columns").error("expected at least one column")
    if len(set(columns)) != len(columns):
        raise (where / "columns").error(f"columns repeat: {list(columns)}")
    return columns


def canonical_uri(uri: str) -> str:
    """One spelling of a URI or path for comparing and hashing: scheme and host in lower case
    (both are case-insensitive), ``s3a://``/``s3n://`` as ``s3://`` (the same objects, see
    DESIGN.md), no credentials (``user:password@``: the same server, and a secret must not
    decide a hash), no trailing slash. The rest (paths, model names) is case-sensitive and kept."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)$", uri)
    if match is None:
        return uri.rstrip("/") or uri
    scheme, authority, rest = match.groups()
    scheme = {"s3a": "s3", "s3n": "s3"}.get(scheme.lower(), scheme.lower())
    host = authority.rpartition("@")[2]
    return f"{scheme}://{host.lower()}{rest.rstrip('/')}"


def scalar(value: Any, where: Where) -> Any:
    if not isinstance(value, (int, float, str, bool)):
        raise where.error(f"expected a scalar, got {value!r}")
    return value


def rate(value: Any, where: Where) -> float:
    rate = number(value, where)
    if not 0 <= rate <= 1:
        raise where.error(f"expected a rate between 0 and 1, got {value!r}")
    return rate


def limits(raw: Any, where: Where, limit: Callable[[Any, Where], float]) -> tuple[tuple[str, float], ...]:
    """A threshold for every column (a number) or per column (a mapping; ``*`` for the rest)."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        return ((ALL_COLUMNS, limit(raw, where)),)
    if not raw:
        raise where.error("expected a number or a non-empty mapping of column: number")
    out = []
    for col, value in raw.items():
        if col != ALL_COLUMNS:
            identifier(col, where)
        out.append((col, limit(value, where / str(col))))
    return tuple(sorted(out))
