"""Shared plumbing of the cloud providers: retries before the first byte, error mapping, and
keeping PCM16 chunks sample-aligned.

The OpenAI SDK retries by itself (429/5xx/timeouts, honouring Retry-After) before it returns a
stream. The Deepgram and ElevenLabs SDKs do not retry streaming requests, so `retrying_stream`
does it for them, and only before the first chunk was handed on: after that a retry would make
the caller hear the start of a sentence twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import field
from typing import Any

from voicebot.config.extras import install_extra
from voicebot.providers import AudioChunk, ProviderError, Usage
from voicebot.records.usage import report_usage

log = logging.getLogger("voicebot.cloud")

#: Longest server-requested wait we honour; a longer Retry-After means "use the next provider".
MAX_RETRY_WAIT = 2.0
BASE_BACKOFF = 0.2


def status_retryable(status: int | None) -> bool:
    return status is not None and (status in (408, 409, 429) or status >= 500)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms` or `retry-after`), if it said."""
    lower = {k.lower(): v for k, v in (headers or {}).items()}
    for key, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lower.get(key)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            continue
    return None


def backoff(attempt: int, headers: Mapping[str, str] | None = None) -> float | None:
    """Seconds to wait before retry number `attempt` (0-based), or None when not worth waiting."""
    asked = retry_after(headers)
    if asked is not None:
        return asked if asked <= MAX_RETRY_WAIT else None
    delay = min(BASE_BACKOFF * 2**attempt, MAX_RETRY_WAIT)
    return delay * (0.75 + 0.25 * random.random())


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__


def map_error(provider: str, exc: BaseException) -> ProviderError:
    """Turn whatever an SDK raised into a `ProviderError` that says what happened.

    The SDKs raise their own ApiError/APIStatusError (with `status_code`) for HTTP answers and
    httpx/websockets/OS errors for the transport; all of those are retryable except client
    errors (4xx other than 408/409/429), which the same request would hit again.
    """
    if isinstance(exc, ProviderError):
        return exc
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        hint = ""
        if status in (401, 403):
            hint = ": check the API key"
        elif status == 404:
            hint = ": check the model / voice name and base_url"
        return ProviderError(
            f"{provider}: HTTP {status}{hint}",
            provider=provider,
            retryable=status_retryable(status),
        )
    if is_timeout(exc):
        return ProviderError(f"{provider}: timed out", provider=provider, retryable=True)
    # SDK API errors print their headers, which may hold the request's Authorization.
    detail = "" if hasattr(exc, "headers") else f": {exc}"
    return ProviderError(
        f"{provider}: {type(exc).__name__}{detail}", provider=provider, retryable=True
    )


def error_headers(exc: BaseException) -> Mapping[str, str] | None:
    headers = getattr(exc, "headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers


async def retrying_stream(
    provider: str, open_stream: Callable[[], AsyncIterator[bytes]], max_retries: int
) -> AsyncIterator[bytes]:
    """Iterate `open_stream()`, reopening it on a retryable failure before its first chunk.

    Closing this generator closes the SDK's generator at once, which closes the HTTP response,
    so the server sees the client leave (barge-in really stops upstream synthesis).
    """
    attempt = 0
    while True:
        stream = open_stream()
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            return
        except Exception as exc:
            await _close(stream)
            err = map_error(provider, exc)
            wait = backoff(attempt, error_headers(exc)) if attempt < max_retries else None
            if not err.retryable or wait is None:
                raise err from exc
            log.info("%s: %s; retry %d in %.2fs", provider, err, attempt + 1, wait)
            attempt += 1
            await asyncio.sleep(wait)
            continue
        break
    try:
        yield first
        async for chunk in stream:
            yield chunk
    except Exception as exc:
        raise map_error(provider, exc) from exc
    finally:
        await _close(stream)


async def _close(stream: Any) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def check_audio_type(provider: str, headers: Mapping[str, str] | None) -> None:
    """A TTS answer must be audio, or bytes that claim nothing: an HTML error page or a JSON
    body sent with status 200 (a captive portal, a misrouted proxy) would otherwise be played to
    the caller as noise."""
    lower = {k.lower(): v for k, v in (headers or {}).items()}
    ctype = lower.get("content-type", "").split(";")[0].strip().lower()
    if ctype and not (ctype.startswith("audio/") or ctype == "application/octet-stream"):
        raise ProviderError(
            f"{provider}: the server answered {ctype[:60]!r}, not audio", provider=provider
        )


def looks_like_text(data: bytes) -> bool:
    """Markup or JSON rather than samples, judged on the first 32 bytes: audio is essentially
    never that many printable ASCII bytes in a row starting with `<` or `{`."""
    head = data.lstrip()[:32]
    return (
        len(head) >= 2
        and head[:1] in (b"<", b"{")
        and all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    )


async def audio_body(
    provider: str, headers: Mapping[str, str] | None, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """The bytes of a TTS answer, checked: its content type, and that it does not start like a
    text document whatever type it claims."""
    check_audio_type(provider, headers)
    head = b""
    checked = False
    async for data in chunks:
        if not checked:
            head += data
            if len(head.lstrip()) < 32:
                continue  # too little to judge yet: hold it back
            checked = True
            data, head = head, b""
            _check_not_text(provider, data)
        yield data
    if head:  # the whole answer was shorter than the sniff
        _check_not_text(provider, head)
        yield head


def _check_not_text(provider: str, data: bytes) -> None:
    if looks_like_text(data):
        raise ProviderError(f"{provider}: the server sent text, not audio", provider=provider)


async def raw_audio(provider: str, open_response: Callable[[], Any]) -> AsyncIterator[bytes]:
    """The body of a Fern-generated SDK's `with_raw_response` audio stream, checked by
    `audio_body` (the plain SDK method hides the headers)."""
    async with open_response() as response:
        async for data in audio_body(provider, response.headers, response.data):
            yield data


class SampleAligner:
    """Re-cuts a byte stream at sample boundaries: HTTP chunking does not respect them, and a
    PCM16 chunk with an odd length would shift every later sample by one byte (loud noise)."""

    def __init__(self, width: int) -> None:
        self._width = width
        self._rest = b""

    def push(self, data: bytes) -> bytes:
        if self._width == 1:
            return data
        data = self._rest + data
        cut = len(data) - len(data) % self._width
        self._rest = data[cut:]
        return data[:cut]


async def billed_audio(
    provider: str, text: str, stream: Any, rate: int, encoding: str
) -> AsyncIterator[AudioChunk]:
    """The chunks of a `retrying_stream` of synthesized audio, cut at whole samples. The text is
    billed when the first byte arrives: a request that fails before any audio costs nothing."""
    aligner = SampleAligner(2 if encoding == "pcm_s16le" else 1)
    billed = False
    try:
        async for data in stream:
            if not billed:
                billed = True
                report_usage(Usage(provider=provider, characters=len(text)))
            data = aligner.push(data)
            if data:
                yield AudioChunk(data, rate, encoding)  # type: ignore[arg-type]
    finally:
        await stream.aclose()


def key_problem(env: str) -> str:
    return (
        f"api_key is empty. Set {env} in the environment (config.yaml reads it with "
        f'api_key: "${{{env}:-}}") or put the key under the provider\'s options'
    )


def require_key(provider: str, key: str, env: str, needed: bool = True) -> None:
    if needed and not key:
        raise ProviderError(f"{provider}: {key_problem(env)}", provider=provider)


def http_client(timeout: float) -> Any:
    """The process-wide HTTP client of one provider. httpx's default pool (100 connections)
    would queue requests behind each other with a few hundred calls speaking at once."""
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
    )


def openai_http_client(timeout: float) -> Any:
    """The `openai` SDK's own aiohttp transport (`DefaultAioHttpClient`) where the installed SDK
    has it: per request and per streamed chunk it costs under half the CPU of the httpx/httpcore
    pool (benchmarks/sdk_requests.py), which scans its connections in Python on every request.
    Same limits as `http_client`, which an SDK without the transport gets instead."""
    try:
        import httpx2
        from openai import DefaultAioHttpClient
    except ImportError:
        return http_client(timeout)
    try:
        return DefaultAioHttpClient(
            timeout=httpx2.Timeout(timeout),
            limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=200),
        )
    except RuntimeError:  # an SDK whose aiohttp transport needs an extra that is not installed
        return http_client(timeout)


class SharedClient:
    """The process-wide SDK client a cloud provider owns: one per provider instance, created in
    `start()`, shared by every call for connection reuse."""

    name: str
    options: Any
    default_url: str = ""
    install = install_extra("cloud")
    #: The environment variable the key conventionally comes from (`OPENAI_API_KEY`).
    key_env: str = ""
    #: Whether a `base_url` (a self-hosted compatible server) makes the key optional.
    key_optional_with_base_url = False

    @classmethod
    def check_options(cls, options: Any) -> dict[str, str]:
        """An empty key is found by `voicebot check`, not by the first caller."""
        if options.api_key or (cls.key_optional_with_base_url and options.base_url):
            return {}
        return {"api_key": key_problem(cls.key_env)}

    def needs_key(self) -> bool:
        return not (self.key_optional_with_base_url and self.options.base_url)

    _client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise ProviderError(f"{self.name}: provider used before start()", provider=self.name)
        return self._client

    def health(self) -> dict[str, Any]:
        """Whether it is started, and where it talks to (never the key)."""
        return {
            "name": self.name,
            "status": "ok" if self._client is not None else "stopped",
            "base_url": self.options.base_url or self.default_url,
        }


def bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    """An Options field whose numeric value the config loader checks against lo..hi."""
    return field(default=default, metadata={"min": lo, "max": hi})
