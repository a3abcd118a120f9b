"""One log record, one line: control characters in voicebot's log fields are escaped.

Log fields often carry text from the wire (a Twilio `streamSid`, an unknown event's name, a
parser's complaint quoting its input). Written raw, a newline in one of them starts a second
line that a log reader cannot tell from a real one, e.g. a forged `voicebot.audit` entry. So
rather than trusting every call site to remember, the escape is applied where records are made:
a log-record factory that, for voicebot's own loggers, formats the message at once and spells
its non-printable characters as `\\n`, `\\x1b`, `\\u2028`... Tracebacks (`exc_info`) stay
multi-line: they are ours, not the caller's.
"""

from __future__ import annotations

import logging
from typing import Any

_PREFIXES = ("voicebot",)  # voicebot.* and voicebot_plugins.*
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """`text` with every non-printable character (controls, line and paragraph separators,
    bidi overrides) backslash-escaped; printable text is returned as is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


def _escape_char(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def _safe(arg: Any) -> Any:
    if isinstance(arg, str):
        return escape(arg)
    if isinstance(arg, BaseException):
        return escape(str(arg))
    return arg


def _sanitise(record: logging.LogRecord) -> None:
    """Format the message now and escape the result: exact, whatever the conversions (`%s`,
    `%r`, `%d`) and wherever the wire text sits. A record whose format and arguments do not
    match is left for the handler to report, as logging does, with its arguments escaped."""
    try:
        message = record.getMessage()
    except Exception:
        if isinstance(record.args, tuple):
            record.args = tuple(_safe(a) for a in record.args)
        return
    record.msg, record.args = escape(message), ()


def install() -> None:
    """Wrap the current log-record factory once per process (other wrappers keep working)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_voicebot_safe", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.startswith(_PREFIXES):
            _sanitise(record)
        return record

    factory._voicebot_safe = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
