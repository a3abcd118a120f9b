"""Rate limits: token buckets for messages/s and bytes/s per connection, per call for decoded
audio, and for session creation per client (`ClientRateLimit`).

The byte budget follows the call's own audio format, so "at most `audio_realtime_factor` × real
time" holds whatever rate or encoding the client chose; the burst allows one maximum-size message
(a whole utterance sent at once) but not a sustained flood. Bytes are not enough for a compressed
encoding: two bytes of Opus may be 120 ms of audio, so the same rule is applied again to the
decoded seconds (`voicebot.audio.budget.AudioBudget`), which is what the CPU pays for.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from typing import Any

from ..audio.budget import TokenBucket
from ..audio.types import AudioFormat
from ..config import LimitsConfig

# webm (compressed) is budgeted as if it were PCM16 at its rate: generous for bytes, and its real
# cost is held by AudioBudget
_BYTES_PER_SAMPLE = {"pcm_s16le": 2, "mulaw": 1, "alaw": 1}

#: JSON messages (base64 audio in any container, whatever the connection declared) are budgeted
#: as the richest audio they may carry: 48 kHz stereo PCM16, base64 (4/3). Their decoded seconds
#: are held by `AudioBudget` like every other audio.
JSON_BYTES_PER_S = 48000 * 2 * 2 * 4 / 3


class ConnectionLimiter:
    """Decides, message by message, whether a connection is within its budget."""

    def __init__(
        self, limits: LimitsConfig, fmt: AudioFormat, max_json_bytes: int | None = None
    ) -> None:
        self.limits = limits
        self.messages = TokenBucket(limits.max_messages_per_s, limits.message_burst)
        self.bytes = TokenBucket(0.0, 0.0)
        json_burst = max(max_json_bytes or limits.max_frame_bytes, limits.max_frame_bytes)
        self.json_bytes = TokenBucket(JSON_BYTES_PER_S * limits.audio_realtime_factor, json_burst)
        self._format: AudioFormat | None = None
        self._follow(fmt)

    def _follow(self, fmt: AudioFormat) -> None:
        if fmt is self._format or fmt == self._format:  # runs per message: identity first
            return
        first, self._format = self._format is None, fmt
        per_s = fmt.sample_rate * _BYTES_PER_SAMPLE.get(fmt.encoding, 2)
        self.bytes.rate = per_s * self.limits.audio_realtime_factor
        self.bytes.capacity = max(per_s * self.limits.audio_burst_s, self.limits.max_frame_bytes)
        self.bytes.tokens = (
            self.bytes.capacity if first else min(self.bytes.tokens, self.bytes.capacity)
        )

    def admit(self, size: int, fmt: AudioFormat, text: bool = False) -> str | None:
        """None if the message may pass, else why not (sent to the client before closing).
        `text`: a JSON message, budgeted apart from the binary audio stream."""
        self._follow(fmt)
        now = time.monotonic()
        if not self.messages.take(1, now):
            return f"more than {self.limits.max_messages_per_s:g} messages per second"
        if not (self.json_bytes if text else self.bytes).take(size, now):
            return (
                f"data arrives faster than {self.limits.audio_realtime_factor:g}× real time; "
                "stream audio as it is captured"
            )
        return None


def calls_of(calls: dict[str, Any], subject: str) -> int:
    return sum(1 for c in calls.values() if c.variables.get("subject") == subject)


class ClientRateLimit:
    """A token bucket per client (an address or a subject), for requests that make the server
    hold something, such as sessions.

    The table of buckets is bounded: past `max_clients`, the least recently seen client's bucket is
    dropped. A dropped bucket is a full one again, which gives that client no more than a fresh
    address would."""

    def __init__(self, per_minute: float, burst: int, max_clients: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """0 when `client` may go ahead now (and a token is taken), else seconds to wait."""
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst)
            while len(self._buckets) >= self.max_clients:
                self._buckets.popitem(last=False)
        self._buckets[client] = bucket  # most recently seen last
        if bucket.take(1):
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def client_key(remote: str | None, subject: str | None) -> str:
    """Who a per-client limit counts against: the authenticated subject, else the address.

    An IPv6 client usually holds a whole /64, so its addresses count as one."""
    if subject is not None:
        return "subject:" + subject
    if not remote:
        return "address:unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return "address:" + remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"address:{address.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"address:{address}"
