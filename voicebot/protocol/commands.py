"""The `/ws/voice` client messages, sans I/O: JSON text in, typed commands out (every dialect
reads the same vocabulary).

Existing clients spell the same command several ways (`{"type":"end_turn"}`,
`{"type":"control","command":"end_audio"}`, `{"command":"end_audio"}`, `{"action":"stop"}`); all of
them are normalised here so the handler sees one vocabulary.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ..audio import INBOUND_ENCODINGS, MAX_RATE, MIN_RATE
from ..audio.encoders import OUTPUTS
from .errors import status_of


class ProtocolError(ValueError):
    """A client message we cannot act on; `code` goes into the JSON `error` reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def status(self) -> int:
        """The stable integer beside `code` (`errors.STATUS`)."""
        return status_of(self.code)


@dataclass(frozen=True)
class Command:
    """kind: config, end_turn, interrupt, text, audio, dtmf, ping, pause, resume, end_call,
    reset, auth."""

    kind: str
    text: str = ""
    digit: str = ""
    audio: bytes = b""
    sample_rate: int | None = None
    encoding: str | None = None
    output: str | None = None
    token: str = ""


_ALIASES = {
    "end_turn": "end_turn",
    "end_audio": "end_turn",
    "interrupt": "interrupt",
    "ping": "ping",
    "pause": "pause",
    "resume": "resume",
    "end_call": "end_call",
    "stop": "end_call",
    "hangup": "end_call",
    "reset": "reset",
    "typing": "typing",
}

DTMF_DIGITS = set("0123456789*#ABCD")


def parse_message(raw: str, max_text_chars: int = 2000) -> Command:
    try:
        msg = json.loads(raw)
    except RecursionError:
        raise ProtocolError("invalid_json", "message is not valid JSON") from None
    except ValueError as exc:  # JSONDecodeError, or an integer past Python's 4,300-digit limit
        detail = "message is not valid JSON"
        if not isinstance(exc, json.JSONDecodeError):
            detail = "message has a number too long to read"
        raise ProtocolError("invalid_json", detail) from None
    if not isinstance(msg, dict):
        raise ProtocolError("invalid_message", "message must be a JSON object")
    kind = msg.get("type")
    if kind is None and "token" in msg:
        kind = "auth"
    if kind is None or kind == "control":
        kind = msg.get("command", msg.get("action"))
    if not isinstance(kind, str):
        raise ProtocolError("invalid_message", "message has no `type`")
    if kind in _ALIASES:
        return Command(_ALIASES[kind])
    if kind == "config":
        return _config(msg)
    if kind == "text":
        text = msg.get("text", msg.get("content"))
        if not isinstance(text, str) or not text.strip():
            raise ProtocolError("invalid_text", "`text` message needs a non-empty `text` string")
        if len(text) > max_text_chars:
            raise ProtocolError(
                "text_too_long", f"text is {len(text)} characters; the limit is {max_text_chars}"
            )
        if not _encodable(text):
            raise ProtocolError(
                "invalid_text", "`text` has an unpaired surrogate (\\ud800-\\udfff)"
            )
        return Command("text", text=text.strip())
    if kind == "audio":
        content = msg.get("content", msg.get("audio"))
        if not isinstance(content, str):
            raise ProtocolError("invalid_audio", "`audio` message needs base64 `content`")
        try:
            return Command("audio", audio=base64.b64decode(content, validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolError("invalid_audio", "`content` is not valid base64") from None
    if kind == "dtmf":
        digit = str(msg.get("digit", ""))
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise ProtocolError("invalid_dtmf", "`digit` must be one of 0-9 * # A-D")
        return Command("dtmf", digit=digit)
    if kind == "auth":
        token = msg.get("token")
        if not isinstance(token, str):
            raise ProtocolError("invalid_auth", "`auth` message needs a `token` string")
        return Command("auth", token=token)
    raise ProtocolError("unknown_type", f"unknown message type '{kind}'")


def _encodable(text: str) -> bool:
    """JSON allows lone `\\ud800` escapes; such a string fails every later `.encode()` (STT,
    TTS, logs, storage), so it is refused here rather than deep in a call."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _config(msg: dict[str, Any]) -> Command:
    rate = msg.get("sample_rate")
    encoding = msg.get("encoding")
    if rate is not None and (
        not isinstance(rate, int) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE
    ):
        raise ProtocolError("invalid_config", f"sample_rate must be {MIN_RATE}-{MAX_RATE}")
    if encoding is not None and encoding not in INBOUND_ENCODINGS:
        raise ProtocolError(
            "invalid_config", f"encoding must be one of {', '.join(INBOUND_ENCODINGS)}"
        )
    output = msg.get("output")
    if output is not None and output not in OUTPUTS:
        raise ProtocolError("invalid_config", f"output must be one of {', '.join(OUTPUTS)}")
    return Command("config", sample_rate=rate, encoding=encoding, output=output)


def parse_query_format(query: dict[str, str], default_rate: int = 16000) -> tuple[int, str]:
    """`sample_rate` and `encoding` from the connection URL, validated; a client that announces
    no rate gets `default_rate` (`browser.sample_rate`)."""
    raw_rate = query.get("sample_rate", str(default_rate))
    try:
        rate = int(raw_rate)
    except ValueError:
        raise ProtocolError("invalid_config", f"sample_rate '{raw_rate}' is not a number") from None
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ProtocolError("invalid_config", f"sample_rate must be {MIN_RATE}-{MAX_RATE}")
    encoding = query.get("encoding", "pcm_s16le")
    if encoding not in INBOUND_ENCODINGS:
        raise ProtocolError(
            "invalid_config", f"encoding must be one of {', '.join(INBOUND_ENCODINGS)}"
        )
    return rate, encoding
