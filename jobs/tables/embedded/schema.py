"""Schemas: a write's Spark schema compared with its table's (both engines refuse a mismatch the
same way), and the Arrow schema the embedded engine reads and writes data in."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql.types import ArrayType, DataType, MapType, StructField, StructType

from jobs.tables.embedded.errors import SchemaMismatchError


def target_schema(schema: StructType) -> pa.Schema:
    """The Arrow form of a Spark schema, timestamps in UTC: what the reader yields and the writer gets."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, timezone="UTC")


def _loose(kind: DataType) -> DataType:
    """``kind`` with every nullability flag set: writes are checked on names and types only."""
    if isinstance(kind, StructType):
        return StructType([StructField(f.name, _loose(f.dataType), True) for f in kind.fields])
    if isinstance(kind, ArrayType):
        return ArrayType(_loose(kind.elementType), True)
    if isinstance(kind, MapType):
        return MapType(_loose(kind.keyType), _loose(kind.valueType), True)
    return kind


@dataclass(frozen=True)
class SchemaDiff:
    """How a write's columns differ from its table's: by name, and by type where both have the column."""

    new: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    changed: tuple[tuple[str, str, str], ...] = ()  # (column, table type, data type)

    def __bool__(self) -> bool:
        return bool(self.new or self.missing or self.changed)

    def describe(self) -> str:
        parts = []
        if self.new:
            parts.append(f"new column(s) {list(self.new)}")
        if self.missing:
            parts.append(f"missing column(s) {list(self.missing)}")
        if self.changed:
            parts.append("changed type(s) " + ", ".join(f"{c}: {t} -> {d}" for c, t, d in self.changed))
        return "; ".join(parts)


def schema_diff(table: StructType, data: StructType) -> SchemaDiff:
    """Compare a write's Spark schema with its table's (nullability ignored, nested types compared whole)."""
    ours = {f.name: f.dataType for f in table.fields}
    theirs = {f.name: f.dataType for f in data.fields}
    changed = tuple(
        (name, ours[name].simpleString(), theirs[name].simpleString())
        for name in ours
        if name in theirs and _loose(ours[name]) != _loose(theirs[name])
    )
    return SchemaDiff(
        new=tuple(n for n in theirs if n not in ours), missing=tuple(n for n in ours if n not in theirs), changed=changed
    )


def refuse_schema_mismatch(path: str, table: StructType, data: StructType, merge_schema: bool) -> SchemaDiff:
    """How a write's schema differs from its table's; raises
    SchemaMismatchError, naming the table and the columns, when the write may not go ahead.

    New columns are added (nullable) only with ``merge_schema``; with it, columns the data lacks
    are written as nulls. A changed type is always refused: old files could not be read as it.
    Both engines check this, so a mismatch is the same error whichever writes.
    """
    diff = schema_diff(table, data)
    if not diff:
        return diff
    if diff.changed or not merge_schema:
        hint = "" if diff.changed else "; pass merge_schema=True to add new columns"
        raise SchemaMismatchError(f"Delta write to {path}: the data's schema differs from the table's: {diff.describe()}{hint}")
    required = [f.name for f in table.fields if f.name in diff.missing and not f.nullable]
    if required:
        raise SchemaMismatchError(f"Delta write to {path}: missing column(s) {required} are not nullable in the table")
    return diff


def has_not_null(data_type: DataType) -> bool:
    """Whether any field, at any depth, is NOT NULL (delta-spark reads each as an invariant)."""
    if isinstance(data_type, StructType):
        return any(not f.nullable or has_not_null(f.dataType) for f in data_type.fields)
    if isinstance(data_type, ArrayType):
        return has_not_null(data_type.elementType)
    if isinstance(data_type, MapType):
        return has_not_null(data_type.keyType) or has_not_null(data_type.valueType)
    return False
