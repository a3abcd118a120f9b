"""The REST side's rules: reading bodies, refusing clearly, and the URLs the server hands out.

Every client mistake on `/api/*` ends as a 4xx with a JSON `{"type":"error","code","message"}`
body and no traceback in the log: a bad body, a bad charset, a broken `Content-Encoding`, a body
over the size limit, an unknown route. A bug of ours is still a 500, logged with its traceback.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from .public_url import ws_base

log = logging.getLogger("voicebot.rest")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RestError(Exception):
    """A refusal the client caused; becomes its JSON error response (see `rest_errors`)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.close = close  # the connection cannot carry another request

    def response(self) -> web.Response:
        response = json_error(self.status, self.code, self.message, self.headers)
        if self.close:
            response.force_close()
        return response


def json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"type": "error", "code": code, "message": message}, status=status, headers=headers
    )


def too_many(code: str, message: str, retry_after: float, status: int = 429) -> RestError:
    """429/503 with `Retry-After` in whole seconds (at least 1, so a client never spins)."""
    return RestError(status, code, message, {"Retry-After": str(max(1, math.ceil(retry_after)))})


#: `Content-Encoding`s a REST body may have. Not deflate: aiohttp (3.14) leaves the handler
#: waiting forever on a deflate body that ends early, and no client needs it.
BODY_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip"})


async def read_body(request: web.Request) -> bytes:
    """The whole body; a body that cannot be read (broken compression, over the size limit)
    is the client's error."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in BODY_ENCODINGS:
        raise RestError(
            415, "unsupported_encoding", "Content-Encoding must be gzip or none", close=True
        )
    try:
        return await request.read()
    except RequestPayloadError as exc:
        # the stream is broken: answer, close the connection, and do not read the rest of it
        request.content.feed_eof()
        why = getattr(exc.__cause__, "message", "") or "it is cut short or badly encoded"
        reason = f"the body cannot be read: {why}"
        raise RestError(400, "invalid_body", reason, close=True) from None
    except web.HTTPRequestEntityTooLarge as exc:
        raise RestError(413, "body_too_large", exc.text or "the body is too large") from None


async def json_object(request: web.Request, max_bytes: int = 0) -> dict[str, Any]:
    """The body as a JSON object; an empty body is an empty object. A declared length over
    `max_bytes` (when given) is refused before a byte of the body is read."""
    if not request.body_exists:
        return {}
    if max_bytes and (request.content_length or 0) > max_bytes:
        raise RestError(413, "body_too_large", f"the body is over {max_bytes} bytes")
    raw = await read_body(request)
    if not raw:  # also a gzip stream cut short before its first byte (aiohttp does not tell)
        return {}
    try:
        text = raw.decode(request.charset or "utf-8")
    except LookupError:
        raise RestError(
            415, "unsupported_charset", f"unknown charset '{request.charset}'"
        ) from None
    except ValueError:
        raise RestError(400, "invalid_body", f"the body is not valid {request.charset}") from None
    try:
        body = json.loads(text)
    except RecursionError:
        raise RestError(400, "invalid_json", "body is nested too deeply") from None
    except ValueError:
        raise RestError(400, "invalid_json", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RestError(400, "invalid_body", "body must be a JSON object")
    return body


def bounded_str(body: dict[str, Any], key: str, max_bytes: int) -> str | None:
    """An optional string field no longer than `max_bytes` (UTF-8)."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RestError(400, "invalid_body", f"`{key}` must be a string")
    if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise RestError(413, "field_too_long", f"`{key}` is over {max_bytes} bytes")
    return value


def check_metadata(body: dict[str, Any], max_bytes: int) -> None:
    """`metadata` is checked (an object, at most `max_bytes` as JSON) but not kept: nothing in
    the server reads it, so holding it would only give a flood something to fill memory with."""
    metadata = body.get("metadata")
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise RestError(400, "invalid_body", "`metadata` must be an object")
    if len(json.dumps(metadata).encode()) > max_bytes:
        raise RestError(413, "field_too_long", f"`metadata` is over {max_bytes} bytes")


def voice_url(request: web.Request, public_url: str, session_id: str) -> str:
    """Where a client connects with its session: under `server.public_url` when set, else the
    address this request actually reached. Never the `Host` header: a forged one would hand the
    client a URL of the attacker's choosing."""
    if public_url:
        base = ws_base(public_url.rstrip("/"))
    else:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        host, port = (sockname[0], sockname[1]) if sockname else ("127.0.0.1", 0)
        host = f"[{host}]" if ":" in host else host
        base = f"{'wss' if request.secure else 'ws'}://{host}:{port}"
    return f"{base}/ws/voice?session_id={session_id}"


@web.middleware
async def rest_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Innermost middleware: `RestError` becomes its response, and aiohttp's own errors on
    `/api/*` (unknown route, wrong method, body too large) get a JSON body like ours."""
    try:
        return await handler(request)
    except RestError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        if exc.content_type == "application/json":
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        code = (exc.reason or "error").lower().replace(" ", "_")
        return json_error(exc.status, code, exc.reason or "error", headers)
