"""Credentials never reach a log line: not the access log, not aiohttp's bad-request errors.

aiohttp logs the request line with its query string (where `/ws/voice?token=` lives), request
headers on demand, and, when a request is malformed, an exception quoting up to 100 bytes of the
offending line: a URL with a token, or the value of an `Authorization` header, or of an
`X-API-Key` header with nothing around it to recognise it by. So:

- query parameters named like a credential are masked, their names compared after
  percent-decoding (`?%74oken=` is `?token=` to the server, so it is to the log too);
- `Bearer …`, `Authorization: …`, `X-API-Key: …` and anything shaped like a JWT are masked;
- a malformed request (the client's fault) is logged as one line, without a traceback and without
  any byte of what was sent: only the kind of error.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

MASK = "[redacted]"

#: Parameter names whose value is a credential, compared lower-case after percent-decoding.
SENSITIVE_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "key", "jwt"})

#: Loggers that may carry request data. A logger's filters see only its own records, not its
#: children's, so each is named.
LOGGERS = (
    "aiohttp.access",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "aiohttp.internal",
    "asyncio",
)

_DELIM = r"(?:[?&;]|%3[Ff]|%26)"  # also percent-encoded, as in a URL inside a parameter
_PARAM = re.compile(
    rf"(?P<head>{_DELIM}(?P<name>(?:(?!%3[DdFf]|%26)[^=&;\s\"'#?<>])+)(?:=|%3[Dd]))"
    r"(?P<value>[^&;\s\"'#<>]*)"
)
_HEADER = re.compile(
    r"(?i)(?P<head>\bauthorization\b[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?"
    r"|\bx-api-key\b[\"']?\s*[:=]\s*[\"']?"
    r"|\b(?:bearer|access_token)\s*,\s*"
    r"|\bbearer\s+)"
    r"(?P<value>[^\s\"',;]+)"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _param_name(raw: str) -> str:
    name = raw
    for _ in range(4):  # `%2574oken` is `%74oken` is `token`
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.strip().lower()


def _mask_params(text: str, depth: int = 0) -> str:
    def mask(m: re.Match[str]) -> str:
        if _param_name(m["name"]) in SENSITIVE_PARAMS:
            return m["head"] + MASK
        if depth >= 2:
            return m[0]
        # a value may hold an encoded URL with its own query (`?next=%2Fa%3Ftoken%3D…`);
        # the depth bound keeps a crafted line from costing more than a few passes
        return m["head"] + _mask_params(m["value"], depth + 1)

    return _PARAM.sub(mask, text)


def redact(text: str) -> str:
    """`text` with every credential it may contain masked."""
    text = _mask_params(text)
    text = _HEADER.sub(lambda m: m["head"] + MASK, text)
    return _JWT.sub(MASK, text)


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value


def _kind(exc: BaseException) -> str:
    """What went wrong with a malformed request, without quoting any of it."""
    message = getattr(exc, "message", "") or ""
    phrase = re.match(r"[^:'\"\n]*", message if isinstance(message, str) else "")
    words = phrase[0].strip() if phrase else ""
    return f"{type(exc).__name__}: {words}" if words else type(exc).__name__


class RedactCredentials(logging.Filter):
    """Masks credentials in a record: its message, its arguments, its traceback and its extra
    fields (aiohttp's access log passes the request line again as `first_request_line`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | RequestPayloadError):
            # the client's malformed request, not our bug: no traceback, none of its bytes
            record.msg, record.args = (
                "%s: malformed request (%s)",
                (
                    redact(_message(record)),
                    _kind(exc),
                ),
            )
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        else:
            record.msg, record.args = redact(_message(record)), ()
            if record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_info, record.exc_text = None, redact(text)
            elif record.exc_text:
                record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD:
                setattr(record, key, _redact_value(value))
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):  # arguments that do not fit the format: log them raw
        return f"{record.msg} {record.args}"


def install() -> None:
    """Idempotent: every app created in the process shares the loggers."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
