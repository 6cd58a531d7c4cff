"""The markers an ended write (committed or aborted) leaves for its task attempts still running
(see docs/DESIGN.md#abort-end-markers-and-sweeps), and their expiry."""

from __future__ import annotations

import time

from jobs.tables.embedded.storage import delete_under, table_filesystem

# Where a write that has ended (committed or aborted) leaves its marker, for task attempts still
# running (see WriteTransaction.abort); readers skip "_" directories, vacuum removes old markers.
ENDED_DIR = "_lakescore/ended"


def end_marker(path: str, write_id: str) -> str:
    """Where the write ``write_id`` leaves its marker once it has ended (see docs/DESIGN.md#abort-end-markers-and-sweeps)."""
    return f"{path.rstrip('/')}/{ENDED_DIR}/{write_id}"


def expired_end_markers(path: str, older_than_hours: float, delete: bool) -> list[str]:
    """The markers ended writes left (see WriteTransaction.abort) older than this, relative to the
    table root; deleted unless ``delete`` is false. delta-rs's vacuum skips ``_`` directories."""
    import pyarrow.fs as pafs

    fs, root = table_filesystem(path)
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/{ENDED_DIR}", allow_not_found=True))
    cutoff = time.time() - older_than_hours * 3600
    expired = sorted(
        f"{ENDED_DIR}/{i.base_name}" for i in infos if i.is_file and i.mtime is not None and i.mtime.timestamp() < cutoff
    )
    if delete:
        delete_under(path, set(expired))
    return expired
