"""The URL a provider used to reach us, as seen from outside a TLS-terminating proxy.

Webhook signatures cover the exact public URL, and the TwiML we answer must point the provider at
a public `wss://` address, so both need the outside view: `server.public_url` when configured
(the reliable choice), else what the proxy says in `X-Forwarded-Proto`/`X-Forwarded-Host`, else
the request's own scheme and `Host`.
"""

from __future__ import annotations

from aiohttp import web


def public_base(request: web.Request, public_url: str = "") -> str:
    """`scheme://host[:port][/prefix]`, without a trailing slash."""
    if public_url:
        return public_url.rstrip("/")
    proto = _first(request.headers.get("X-Forwarded-Proto")) or request.scheme
    host = _first(request.headers.get("X-Forwarded-Host")) or request.host
    return f"{proto.lower()}://{host}"


def ws_base(http_base: str) -> str:
    """The WebSocket origin matching an HTTP origin (https → wss, http → ws)."""
    scheme, sep, rest = http_base.partition("://")
    scheme = {"https": "wss", "http": "ws"}.get(scheme.lower(), scheme.lower())
    return scheme + sep + rest


def request_url(request: web.Request, public_url: str = "", websocket: bool = False) -> str:
    """The full public URL of this request, query string included (what a provider signs).

    The path and query are taken exactly as they arrived (`raw_path`): a re-encoded query
    (`%7E` → `~`) would no longer match the signature."""
    base = public_base(request, public_url)
    return (ws_base(base) if websocket else base) + request.raw_path


def _first(value: str | None) -> str:
    return value.split(",")[0].strip() if value else ""
