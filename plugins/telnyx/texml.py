"""The TeXML documents voicebot answers Telnyx calls with. Every value from a caller or a config
file is XML-escaped: a caller ID is attacker-controlled text."""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape, quoteattr

_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'


def connect_stream(url: str, parameters: Mapping[str, str], codec: str = "PCMU") -> str:
    """A bidirectional RTP stream: Telnyx sends `codec` at 8 kHz and plays what we send back in
    the same codec; `parameters` come back in `start.custom_parameters`."""
    params = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items() if v
    )
    attrs = f'codec="{codec}" bidirectionalMode="rtp" bidirectionalCodec="{codec}"'
    return (
        f"{_HEAD}<Response><Connect><Stream url={quoteattr(url)} {attrs}>{params}</Stream>"
        "</Connect></Response>"
    )


def reject() -> str:
    return f'{_HEAD}<Response><Reject reason="busy"/></Response>'


def dial(target: str, caller_id: str = "") -> str:
    attrs = f" callerId={quoteattr(caller_id)}" if caller_id else ""
    inner = f"<Sip>{escape(target)}</Sip>" if target.lower().startswith("sip") else escape(target)
    return f"{_HEAD}<Response><Dial{attrs}>{inner}</Dial></Response>"
