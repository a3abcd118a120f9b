"""What the JSON media-stream carriers (Twilio, Telnyx, Plivo, Exotel) share: strict field
access that turns a bad message into `MalformedMessage` instead of a `KeyError`, digit and
integer checks, base64 audio, and the check of a transfer target.

Twilio takes only the field checks: its hot path keeps its own orjson parse and strict base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from voicebot.telephony.carrier import MalformedMessage, MalformedStart, TelephonyError

DTMF_DIGITS = frozenset("0123456789*#ABCDabcd")
_MAX_DIGITS = 15  # ~31,000 years of milliseconds; anything longer is not a real field
#: A transfer target: an E.164 number, or a SIP URI (no markup characters: it lands in XML/JSON).
TRANSFER_TARGET = re.compile(r"^(\+?[0-9*#]{2,20}|sips?:[^\s<>&\"']{3,200})$")


def json_object(message: str | bytes) -> dict[str, Any]:
    try:
        msg = json.loads(message)
    except (ValueError, TypeError, RecursionError) as exc:
        raise MalformedMessage(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(msg, dict):
        raise MalformedMessage("a message must be a JSON object")
    return msg


def event_name(msg: dict[str, Any], key: str = "event") -> str:
    event = msg.get(key)
    if not isinstance(event, str):
        raise MalformedMessage(f"a message needs a string '{key}' field")
    return event


def section(
    msg: dict[str, Any], key: str, error: type[MalformedMessage] = MalformedMessage
) -> dict:
    value = msg.get(key)
    if not isinstance(value, dict):
        raise error(f"'{msg.get('event')}' message needs an object '{key}'")
    return value


def string(obj: dict[str, Any], key: str, error: type[MalformedMessage] = MalformedMessage) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise error(f"field '{key}' must be a string")
    return value


def optional_string(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def digit(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 1 or value not in DTMF_DIGITS:
        raise MalformedMessage(f"a DTMF digit must be one of 0-9 * # A-D, got {preview(value)}")
    return value.upper()


def integer(value: Any, name: str, error: type[MalformedMessage] = MalformedMessage) -> int:
    """A JSON integer, or the decimal string some carriers send for numbers; never a float
    (`Infinity`/`NaN` are floats to `json`), a bool, or a number too long to be real."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) < 10**_MAX_DIGITS:
            return value
    elif isinstance(value, str) and 0 < len(value) <= _MAX_DIGITS and value.isascii():
        if value.isdigit() or (value[0] == "-" and value[1:].isdigit()):
            return int(value)
    raise error(f"{name} must be an integer, got {preview(value)}")


def optional_integer(value: Any, name: str) -> int | None:
    return None if value is None else integer(value, name)


def preview(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def audio(obj: dict[str, Any], key: str = "payload") -> bytes:
    try:
        return base64.b64decode(string(obj, key), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedMessage(f"media.{key} is not valid base64") from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def start_parameters(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedStart(f"{name} must be an object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def check_target(target: str, carrier: str) -> None:
    if not TRANSFER_TARGET.match(target):
        raise TelephonyError(
            f"cannot transfer a {carrier} call to {target!r}: use an E.164 number "
            "(+15551234567) or a sip: URI"
        )
