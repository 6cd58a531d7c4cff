"""The errors LakeScore's table I/O raises, on either engine; ``jobs.tables`` exports them."""

from __future__ import annotations


class UnsupportedFeatureError(ValueError):
    """A table uses a feature this engine cannot honour: retrying will not help (exit 2)."""


class TableWriteError(RuntimeError):
    """A Delta write that LakeScore refused or could not commit; the message names the table."""


class SchemaMismatchError(TableWriteError, ValueError):
    """The data's schema differs from the table's and the write did not ask for (or allow) evolution."""


class ConcurrentWriteError(TableWriteError):
    """Another writer committed to the partitions this write replaces after this write was planned."""
