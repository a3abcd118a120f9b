"""A wire-compatible loopback fake of Twilio's Calls resource (REST API 2010-04-01), for the
official `twilio` SDK pointed at it through `telephony.twilio.api_base_url`.

It speaks what Twilio documents: form-encoded POSTs to `/2010-04-01/Accounts/{sid}/Calls.json`
(create) and `/Calls/{CallSid}.json` (update), HTTP Basic auth with the account SID and auth token
(401 with error 20003 otherwise), JSON call resources, and Twilio's JSON errors (`code`,
`message`, `more_info`, `status`). A test makes it fail on purpose: `refuse[number or CallSid] =
(status, code, message)`, `not_json` (a proxy's HTML error page), or `hang` (accepts the request
and never answers, until the fake stops).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    auth: str | None
    content_type: str
    form: list[tuple[str, str]]

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.form if k == key), None)

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.form if k == key]


@dataclass
class FakeTwilioRest:
    account_sid: str
    auth_token: str
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    refuse: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    not_json: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    placed: int = 0
    received: asyncio.Event = field(default_factory=asyncio.Event)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def _error(self, status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )

    async def _read(self, request: web.Request) -> Seen | web.Response:
        form = await request.post()
        seen = Seen(
            request.method,
            request.path,
            request.headers.get("Authorization"),
            request.content_type,
            [(k, str(v)) for k, v in form.items()],
        )
        self.requests.append(seen)
        self.received.set()
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if seen.auth != f"Basic {expected}" or request.match_info["account"] != self.account_sid:
            return self._error(401, 20003, "Authenticate")
        return seen

    async def _failure(self, key: str) -> web.Response | None:
        if key in self.hang:
            await self._release.wait()
            return web.Response(status=504)
        if key in self.not_json:
            return web.Response(
                status=502, text="<html>Bad Gateway</html>", content_type="text/html"
            )
        if key in self.refuse:
            return self._error(*self.refuse[key])
        return None

    def _call(self, sid: str, status: str, to: str = "", from_: str = "") -> dict[str, Any]:
        path = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json"
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": from_,
            "status": status,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": "Thu, 03 Dec 2026 18:00:00 +0000",
            "date_updated": "Thu, 03 Dec 2026 18:00:00 +0000",
            "uri": path,
        }

    async def create(self, request: web.Request) -> web.Response:
        seen = await self._read(request)
        if isinstance(seen, web.Response):
            return seen
        failure = await self._failure(seen.get("To") or "")
        if failure is not None:
            return failure
        if not (seen.get("To") and seen.get("From") and (seen.get("Url") or seen.get("Twiml"))):
            return self._error(400, 21205, "Url parameter is required.")
        self.placed += 1
        sid = f"CA900{self.placed}"
        return web.json_response(
            self._call(sid, "queued", seen.get("To") or "", seen.get("From") or ""), status=201
        )

    async def update(self, request: web.Request) -> web.Response:
        seen = await self._read(request)
        if isinstance(seen, web.Response):
            return seen
        name = request.match_info["call"]
        if not name.endswith(".json"):
            return web.Response(status=404)
        sid = name[: -len(".json")]
        failure = await self._failure(sid)
        if failure is not None:
            return failure
        status = seen.get("Status") or "in-progress"
        return web.json_response(self._call(sid, status))


@contextlib.asynccontextmanager
async def fake_twilio_rest(account_sid: str, auth_token: str):
    fake = FakeTwilioRest(account_sid, auth_token)
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls.json", fake.create)
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}", fake.update)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        yield fake
    finally:
        fake._release.set()
        await runner.cleanup()
