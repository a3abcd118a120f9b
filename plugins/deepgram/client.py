"""What Deepgram's STT and TTS share: the options every Deepgram provider takes, and the
process-wide SDK client (one HTTP connection pool) behind them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._cloud import (
    SharedClient,
    bounded,
    http_client,
    require_key,
)


@dataclass
class DeepgramOptions:
    api_key: str = ""
    #: Empty for Deepgram's cloud; a self-hosted or test server as http(s)://host:port (the
    #: WebSocket URL is derived from it).
    base_url: str = ""
    #: Seconds: connecting, and each read of a response.
    timeout: float = bounded(10.0, 0.05)
    #: Retries on 429/5xx/connection errors, only before any result was received.
    max_retries: int = bounded(2, 0, 10)


class DeepgramClient(SharedClient):
    """Owns the process-wide `AsyncDeepgramClient` (and its HTTP connection pool)."""

    default_url = "https://api.deepgram.com"
    requires = ("deepgram", "httpx")
    key_env = "DEEPGRAM_API_KEY"
    _http: Any = None

    async def start(self) -> None:
        from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment

        opts = self.options
        require_key(self.name, opts.api_key, self.key_env)
        kwargs: dict[str, Any] = {}
        if opts.base_url:
            base = opts.base_url.rstrip("/")
            ws = "ws" + base[len("http") :] if base.startswith("http") else base
            kwargs["environment"] = DeepgramClientEnvironment(
                base=base, production=ws, agent=ws, agent_rest=base
            )
        self._http = http_client(opts.timeout)
        self._client = AsyncDeepgramClient(
            api_key=opts.api_key, httpx_client=self._http, max_retries=0, **kwargs
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        self._client = self._http = None


# --------------------------------------------------------------------------------------------- STT
