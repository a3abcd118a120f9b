"""The one table of error codes: each string `code` sent to clients has a stable integer
`status` beside it, for clients that switch on numbers.

The numbers follow HTTP's meaning (4xx: the client's mistake, 5xx: ours or a provider's), so a
code means the same on `/ws/voice` as on the REST routes. A code missing here is a bug caught by
`tests/test_protocol_errors.py`; an unknown one would still go out, as 500.
"""

from __future__ import annotations

STATUS: dict[str, int] = {
    # the message could not be understood
    "invalid_json": 400,
    "invalid_message": 400,
    "unknown_type": 400,
    # a field is wrong
    "invalid_text": 400,
    "invalid_audio": 400,
    "invalid_dtmf": 400,
    "invalid_config": 400,
    "invalid_auth": 400,
    # who the client is
    "auth_failed": 401,
    # too much
    "text_too_long": 413,
    "audio_too_large": 413,
    "message_too_large": 413,
    "rate_limited": 429,
    # what the server cannot take
    "unsupported_encoding": 415,
    "unsupported_audio": 415,
    # a provider failed or missed its deadline
    "stt_failed": 502,
    "tts_failed": 502,
    "provider_failed": 502,
    # the server
    "overloaded": 503,
    "internal_error": 500,
}


def status_of(code: str) -> int:
    return STATUS.get(code, 500)
