"""Files on local disk and object storage: pyarrow filesystems (one cached S3 filesystem per bucket
and process), and the few file operations the reader and writer need."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from collections.abc import Iterator
from urllib.parse import quote, unquote

log = logging.getLogger("lakescore.delta")


class StorageCredentialsError(ValueError):
    """Object storage refused a table for want of configuration: no credentials the provider chain
    could find, or a bucket in another region than the one configured. The same environment gives
    the same answer on every retry, so it is a configuration error (exit 2), not a transient one."""


# what delta-rs (object_store, the AWS SDK's provider chain) says when credentials or the region
# are missing or wrong; network failures and throttling say none of these, and stay retryable
_CREDENTIALS = re.compile(r"no credentials|loading credentials|credential provider|IMDS|InvalidAccessKeyId", re.IGNORECASE)
_REGION = re.compile(r"incorrectly configured region|PermanentRedirect|AuthorizationHeaderMalformed", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _innermost(err: BaseException) -> str:
    """delta-rs's error chain (one cause a line, drawn with colours and arrows) down to its last cause."""
    lines = [_ANSI.sub("", line).replace("↳", "").strip() for line in str(err).splitlines()]
    return next((line for line in reversed(lines) if line), type(err).__name__)


def storage_error(path: str, err: BaseException) -> BaseException:
    """``err`` as a StorageCredentialsError naming the table, when it says credentials or the
    region are missing or wrong; else ``err`` itself."""
    if not path.startswith(("s3://", "s3a://")):
        return err
    text = str(err)
    if _CREDENTIALS.search(text):
        return StorageCredentialsError(
            f"Delta table {path}: no AWS credentials found (the last provider tried says: {_innermost(err)}); give the driver and the executors "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, a web identity token or an instance role) "
            "and AWS_REGION"
        )
    if _REGION.search(text):
        return StorageCredentialsError(
            f"Delta table {path}: the bucket is not in the configured region ({_innermost(err)}); set AWS_REGION "
            "to the bucket's region for the driver and the executors"
        )
    return err


@contextlib.contextmanager
def explained(path: str) -> Iterator[None]:
    """Re-raise storage errors about missing credentials or region as StorageCredentialsError:
    delta-rs's own first line is only "Operation not supported", and names no table."""
    try:
        yield
    except OSError as err:
        better = storage_error(path, err)
        if better is err:
            raise
        raise better from err


def filesystem(uri: str):
    """The pyarrow filesystem for a URI and the path inside it.

    Object stores take their credentials, region and endpoint from the environment (AWS_* for S3),
    as delta-rs does, so the Parquet files and the log are reached the same way. ``s3a://`` (the
    Hadoop spelling, which delta-rs accepts) is read as ``s3://``.
    """
    import pyarrow.fs as pafs

    scheme, _, rest = uri.partition("://")
    if scheme not in ("s3", "s3a"):
        return pafs.FileSystem.from_uri(uri)
    bucket = rest.partition("/")[0]
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    with explained(uri):
        return _s3_filesystem(bucket, environment), rest


@functools.lru_cache(maxsize=16)
def _s3_filesystem(bucket: str, environment: tuple[tuple[str, str], ...]):
    # One filesystem per bucket and environment, per process: building one from a URI can cost a
    # request (the bucket's region), and a task opens one file per partition it writes or reads.
    # The environment is part of the key only, so a changed endpoint or key gets a new filesystem.
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(f"s3://{bucket}")[0]


def table_filesystem(path: str):
    """The pyarrow filesystem of a table and its root in it (no trailing slash), for listing."""
    import pyarrow.fs as pafs

    if "://" in path:
        fs, root = filesystem(path)
    else:
        fs, root = pafs.LocalFileSystem(), os.path.abspath(path)
    return fs, root.rstrip("/")


def join_path(root: str, relative: str) -> str:
    """A data file's location from the table root and the log's (percent-encoded) path, which may
    also be absolute."""
    relative = unquote(relative)
    if "://" in relative or relative.startswith("/"):
        return relative
    return f"{root.rstrip('/')}/{relative}"


def touch(uri: str) -> None:
    try:
        if "://" in uri:
            fs, where = filesystem(uri)
            fs.open_output_stream(where).close()
        else:
            os.makedirs(os.path.dirname(uri), exist_ok=True)
            open(uri, "ab").close()
    except OSError as err:  # the sweep still runs; a task finishing later leaves files for vacuum
        log.warning("could not write %s: %s", uri, err)


def file_exists(uri: str) -> bool:
    if "://" in uri:
        import pyarrow.fs as pafs

        fs, where = filesystem(uri)
        return fs.get_file_info(where).type != pafs.FileType.NotFound
    return os.path.exists(uri)


def remote_size(uri: str) -> int:
    fs, p = filesystem(uri)
    return fs.get_file_info(p).size


def delete_file(full: str) -> None:
    try:
        if "://" in full:
            # delta-rs's object store, not pyarrow's: pyarrow's S3 delete_file writes an empty
            # "directory/" marker object when it removes the last file under a prefix.
            from deltalake.fs import DeltaStorageHandler

            parent, _, name = full.rpartition("/")
            # the handler percent-decodes its URL: quoted, an escaped directory ("p=t%3A1") stays one
            DeltaStorageHandler(quote(parent, safe=":/")).delete_file(name)
        else:
            os.remove(full)
    except FileNotFoundError:
        pass  # already gone: abort after a task cleaned up after itself
    except Exception as err:  # delta-rs raises its own errors; a leftover file must not hide the write's error
        log.warning("could not delete %s: %s", full, err)


def delete_under(path: str, relatives: set[str]) -> None:
    """Delete files given relative to the table root, already unquoted (so no join_path, which unquotes)."""
    for relative in sorted(relatives):
        delete_file(f"{path.rstrip('/')}/{relative}")
