"""The few TwiML documents voicebot answers with.

Every value that came from a caller or a config file (phone numbers, SIP URIs, custom parameter
values) is XML-escaped: a caller ID is attacker-controlled text on an unauthenticated webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'


def connect_stream(stream_url: str, parameters: Mapping[str, str] | None = None) -> str:
    """`<Connect><Stream>`: Twilio opens a bidirectional media stream to `stream_url` and passes
    `parameters` back in the stream's `start.customParameters`."""
    params = "".join(
        f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>"
        for name, value in (parameters or {}).items()
        if value
    )
    return (
        f"{_HEAD}<Response><Connect><Stream url={quoteattr(stream_url)}>{params}</Stream>"
        "</Connect></Response>"
    )


def reject(reason: Literal["busy", "rejected"] = "busy") -> str:
    """Refuse the call without answering it (the caller hears a busy tone; nothing is billed)."""
    return f'{_HEAD}<Response><Reject reason="{reason}"/></Response>'


def dial(target: str, caller_id: str = "") -> str:
    """Redirect a live call to a phone number, or a SIP endpoint when `target` is a `sip:` URI."""
    attrs = f" callerId={quoteattr(caller_id)}" if caller_id else ""
    if target.lower().startswith("sip:"):
        inner = f"<Sip>{escape(target)}</Sip>"
    else:
        inner = escape(target)
    return f"<Response><Dial{attrs}>{inner}</Dial></Response>"
