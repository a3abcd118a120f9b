"""The `browser:` config section: how the `/ws/voice` door meets clients that were written for
other servers (docs/configuration.md, docs/protocol.md "Bringing your existing client")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .options import LineOf, Problem

#: Routes of the server itself: an extra WebSocket path may not shadow them.
RESERVED_PATHS = ("/", "/ws/voice", "/health", "/calls", "/ws/stats", "/metrics")
_PATH = re.compile(r"^/[A-Za-z0-9._~/-]{1,200}$")


@dataclass
class BrowserConfig:
    #: What a client that announces no `sample_rate` sends and receives; announced to it in the
    #: `audio_config` of the `connected` status.
    sample_rate: int = field(default=16000, metadata={"min": 8000, "max": 48000})
    #: Bot audio: `pcm` (headerless PCM16, as always), `wav`, `mp3` or `webm`.
    output: Literal["pcm", "wav", "mp3", "webm"] = "pcm"
    #: `voicebot` (binary audio + one JSON object per event) or `envelope` (JSON only); a
    #: connection's `?dialect=` overrides it.
    dialect: Literal["voicebot", "envelope"] = "voicebot"
    #: Extra WebSocket paths served exactly like `/ws/voice` (for clients hard-coded to one).
    paths: list[str] = field(default_factory=list)
    #: A JSON `{"type":"heartbeat"}` every this many seconds; 0 sends none.
    heartbeat_s: float = field(default=0.0, metadata={"min": 0, "max": 3600})
    #: The largest JSON message (a base64 utterance); bigger ones close the socket with 1009.
    max_message_bytes: int = field(
        default=4 * 1024 * 1024, metadata={"min": 1024, "max": 64 * 1024 * 1024}
    )


def check_browser(cfg: BrowserConfig, file: str, line_of: LineOf, problems: list[Problem]) -> None:
    """What the dataclass cannot say about `browser.paths`: each a distinct, plain path that
    shadows no route of the server."""
    seen: set[str] = set()
    for i, path in enumerate(cfg.paths):
        key = f"browser.paths[{i}]"
        why = ""
        if not isinstance(path, str) or not _PATH.match(path):
            why = "must be a path such as /voice-agent/ws/voice (letters, digits, . _ ~ - /)"
        elif path in RESERVED_PATHS or path.startswith("/api/"):
            why = f"{path} is already a route of the server"
        elif path in seen:
            why = f"{path} is listed twice"
        if why:
            problems.append(Problem(file, line_of(key), key, why))
        seen.add(path)
