"""Plivo's Call API on 127.0.0.1, reached by the real `plivo` SDK through its public settings.

The SDK always sends to `https://api.plivo.com`. It is pointed here the way an operator points it
at a corporate egress proxy: `telephony.plivo.proxy` (an HTTP CONNECT proxy on loopback, which
tunnels only `api.plivo.com:443`, to the fake) and `telephony.plivo.ca_bundle` (a test CA, made
by `trustme`, that signed the fake's certificate for api.plivo.com). Nothing in the SDK is
patched: its request building, JSON bodies, Basic auth, TLS and error handling all run.

The fake answers as Plivo documents: `POST /v1/Account/{auth_id}/Call/{uuid}/` (transfer, 202
`{"api_id", "message": "call transferred"}`), `DELETE` the same (hang-up, 204); a wrong Basic
credential 401, an unknown call 404 `{"api_id", "error": "not found"}`. `behaviour[uuid]` makes
one call fail another way (a status code, or "hang" to never answer until the fake stops).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

HOST = "api.plivo.com"


@dataclass
class PlivoApi:
    auth_id: str
    auth_token: str
    ca_path: str = ""
    proxy: str = ""
    #: (method, path, JSON body, Authorization) of every request that reached the API
    seen: list[tuple[str, str, dict, str]] = field(default_factory=list)
    #: the CONNECT targets the proxy was asked for, allowed or not
    tunnels: list[str] = field(default_factory=list)
    live_calls: set[str] = field(default_factory=set)
    behaviour: dict[str, Any] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def options(self) -> dict[str, str]:
        """The `telephony.plivo` keys that send the SDK here."""
        return {"proxy": self.proxy, "ca_bundle": self.ca_path}

    def _expected_auth(self) -> str:
        raw = f"{self.auth_id}:{self.auth_token}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def call(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        auth = request.headers.get("Authorization", "")
        self.seen.append((request.method, request.path, body, auth))
        api_id = str(uuid.uuid4())
        if auth != self._expected_auth() or request.match_info["auth"] != self.auth_id:
            error = {"api_id": api_id, "error": "authentication failed"}
            return web.json_response(error, status=401)
        call = request.match_info["call"]
        special = self.behaviour.get(call)
        if special == "hang":
            await self.release.wait()
        elif isinstance(special, int):
            return web.json_response({"api_id": api_id, "error": "fake failure"}, status=special)
        if call not in self.live_calls:
            return web.json_response({"api_id": api_id, "error": "not found"}, status=404)
        if request.method == "DELETE":
            self.live_calls.discard(call)
            return web.Response(status=204)
        if body.get("legs") not in ("aleg", "bleg", "both"):
            return web.json_response({"api_id": api_id, "error": "invalid legs"}, status=400)
        return web.json_response({"api_id": api_id, "message": "call transferred"}, status=202)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _serve_proxy(api: PlivoApi, upstream_port: int) -> asyncio.Server:
    """An HTTP CONNECT proxy (RFC 9110 §9.3.6) that tunnels `api.plivo.com:443` to the fake."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        api.tunnels.append(f"{method} {target}")
        if method != "CONNECT" or target != f"{HOST}:443":
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        pipes = [
            asyncio.ensure_future(_pipe(reader, up_writer)),
            asyncio.ensure_future(_pipe(up_reader, writer)),
        ]
        tasks.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        tasks.difference_update(pipes)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    server.tasks = tasks  # type: ignore[attr-defined]
    return server


@contextlib.asynccontextmanager
async def plivo_api(tmp_path: Path, auth_id: str, auth_token: str) -> AsyncIterator[PlivoApi]:
    ca = trustme.CA()
    ca_path = tmp_path / "plivo-test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(tls)
    api = PlivoApi(auth_id, auth_token, ca_path=str(ca_path))
    app = web.Application()
    app.router.add_route("*", "/v1/Account/{auth}/Call/{call}/", api.call)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proxy = await _serve_proxy(api, port)
    api.proxy = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    try:
        yield api
    finally:
        api.release.set()
        proxy.close()
        for task in list(proxy.tasks):  # type: ignore[attr-defined]
            task.cancel()
        await proxy.wait_closed()
        await runner.cleanup()
