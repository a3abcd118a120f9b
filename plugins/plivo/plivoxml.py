"""The Plivo XML documents voicebot answers with; every value is XML-escaped."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
CONTENT_TYPE = "audio/x-mulaw;rate=8000"


def stream(url: str, extra_headers: str, status_url: str = "") -> str:
    """A bidirectional μ-law stream that holds the call (`keepCallAlive`) until it closes;
    `extra_headers` come back in the `start` message's `extra_headers`."""
    attrs = (
        f'bidirectional="true" keepCallAlive="true" audioTrack="inbound" '
        f'contentType="{CONTENT_TYPE}" extraHeaders={quoteattr(extra_headers)}'
    )
    if status_url:
        attrs += f' statusCallbackUrl={quoteattr(status_url)} statusCallbackMethod="POST"'
    return f"{_HEAD}<Response><Stream {attrs}>{escape(url)}</Stream></Response>"


def hangup(reason: str = "busy") -> str:
    return f'{_HEAD}<Response><Hangup reason="{reason}"/></Response>'


def dial(target: str, caller_id: str = "") -> str:
    attrs = f" callerId={quoteattr(caller_id)}" if caller_id else ""
    kind = "User" if target.lower().startswith("sip") else "Number"
    return f"{_HEAD}<Response><Dial{attrs}><{kind}>{escape(target)}</{kind}></Dial></Response>"
