"""Logging for jobs: every line carries the run id; text for people, JSON lines for machines; no
line carries a credential (``jobs.redact``)."""

from __future__ import annotations

import json
import logging
import sys

from jobs.redact import RedactingFilter

_run_id = "-"


class _RunId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _run_id
        return True


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "run_id": record.run_id,  # type: ignore[attr-defined]  # set by _RunId, the handler's filter
            "message": record.getMessage(),
        }
        # the redacting filter leaves the exception's text in exc_text, credentials masked
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if exc:
            payload["exc"] = exc
        return json.dumps(payload)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when the handler was made.

    A handler holding the stream it was built with writes into a closed file once that stream is
    replaced and closed (pytest's capture between tests, a notebook kernel restarting its streams).
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """LakeScore's one handler on the ``lakescore`` logger: run id on every line, credentials in
    URIs masked in the message, its arguments and the exception text."""
    handler = StderrHandler()
    handler.addFilter(_RunId())
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(_Json())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(run_id)s] %(name)s: %(message)s"))
    root = logging.getLogger("lakescore")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for noisy in ("py4j", "mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def set_run_id(run_id: str) -> None:
    global _run_id
    _run_id = run_id
