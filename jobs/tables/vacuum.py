"""Deleting what a table's log no longer needs: ``vacuum``, with delta-rs's full mode and the
embedded engine's end markers."""

from __future__ import annotations

import logging

from jobs.tables.embedded.markers import expired_end_markers

log = logging.getLogger("lakescore.tables")

# delta.deletedFileRetentionDuration's default; how long vacuum keeps abort markers by default
DEFAULT_RETENTION_HOURS = 7 * 24


def vacuum(
    path: str, *, retention_hours: int | None = None, dry_run: bool = True, allow_short_retention: bool = False
) -> list[str]:
    """Delete files under the table that its log no longer needs, or list them (``dry_run``, the default).

    That is files removed from the table more than ``retention_hours`` ago, and files the log never
    referenced (a killed writer's, a crashed job's) once they are that old: delta-rs's ``full``
    vacuum, since its default mode only looks at files the log removed. Also the markers ended
    writes leave under ``_lakescore/ended/`` once they are that old (a week by default).

    Args:
        retention_hours: keep files younger than this; default the table's
            ``delta.deletedFileRetentionDuration`` (one week unless set).
        dry_run: only return what would be deleted.
        allow_short_retention: required for a retention below the table's setting. A short
            retention breaks time travel to older versions, and can delete the files of a write
            that is running right now (they are not in the log until it commits), which would then
            commit references to missing files: only use it when no writer is running.

    Returns:
        The deleted (or, with ``dry_run``, deletable) files, relative to the table root.
    """
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(path):
        raise FileNotFoundError(f"vacuum: no Delta table at {path}")
    files = DeltaTable(path).vacuum(
        retention_hours=retention_hours,
        dry_run=dry_run,
        enforce_retention_duration=not allow_short_retention,
        full=True,
    )
    # delta-rs has checked the retention by now; markers only need to outlive a straggling task
    files += expired_end_markers(
        path, DEFAULT_RETENTION_HOURS if retention_hours is None else retention_hours, delete=not dry_run
    )
    log.info("vacuum %s (retention %s h, dry_run=%s): %d file(s)", path, retention_hours, dry_run, len(files))
    return sorted(files)
