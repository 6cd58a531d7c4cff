"""Credentials out of text that is logged, reported or recorded.

A ``tracking_uri`` of ``http://user:password@host`` reached the log and the ledger; a presigned S3
URL carries its signature in the query. :func:`redact` blanks both wherever they appear in a
string, and :class:`RedactingFilter` does it to every log record a LakeScore handler emits.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# scheme://userinfo@ : the userinfo (user, user:password, a token as the user name) is masked
# whole. It runs to the last @ before the host part ends, so a password with a raw @ is masked too.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#@\"'<>]+(?:@[^\s/?#@\"'<>]+)*)@")
# ?name=value or &name=value where the name says it is a secret: X-Amz-Signature,
# X-Amz-Credential, X-Amz-Security-Token, access_token, api_key, password, sig (Azure SAS), ...
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&][^=&\s#\"'<>]*?(?:token|passw(?:or)?d|pwd|secret|key|signature|credential|sig)[^=&\s#\"'<>]*=)"
    r"(?P<value>[^&\s#\"'<>]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with URI credentials masked: ``scheme://user:pw@host`` -> ``scheme://***@host``,
    and the values of query parameters named like a secret -> ``***``."""
    if "://" not in text and "=" not in text:
        return text  # the common case, cheaply
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['name']}{MASK}", text)


def redact_value(value: Any) -> Any:
    """A log argument, redacted if it is text or renders as text (an exception, a path); numbers
    and other values pass as they are, so ``%d`` still formats them."""
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's message, arguments, exception and stack text before any
    handler formats it (the record is shared: every handler then sees it redacted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(str(record.msg))  # what getMessage would make of a non-string message
        if isinstance(record.args, dict):
            record.args = {k: redact_value(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(redact_value(v) for v in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
