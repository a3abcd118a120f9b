"""The http node against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from voicebot.dialogue import Hangup, Note

from .flows_helpers import Bot, write


@pytest.fixture
async def server():
    seen: list[dict] = []
    never = asyncio.Event()

    async def lookup(request: web.Request) -> web.Response:
        seen.append({
            "query": dict(request.query),
            "auth": request.headers.get("Authorization"),
            "body": await request.json(),
        })  # fmt: skip
        return web.json_response({"status": "ok", "data": {"items": [{"eta": "tomorrow"}]}})

    async def slow(request: web.Request) -> web.Response:
        await never.wait()
        return web.json_response({})

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>")

    app = web.Application()
    app.router.add_post("/orders/{id}", lookup)
    app.router.add_get("/slow", slow)
    app.router.add_get("/broken", broken)
    app.router.add_get("/html", html)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    never.set()
    await runner.cleanup()


FLOW = """
    slots:
      order: {type: digits, prompt: Order number?}
    defaults:
      on_error: sorry
    nodes:
      ask:
        ask: order
        next: lookup
      lookup:
        http:
          url: "BASE/orders/{{ order }}"
          method: POST
          headers: {Authorization: "Bearer {{ call.token }}"}
          query: {verbose: 1}
          json: {order: "{{ order }}", who: "{{ call.caller }}"}
          timeout_ms: 2000
        map: {eta: data.items.0.eta, missing: data.nothing.here}
        result: answer
        next: tell
      tell:
        say: Status {{ answer.status }}, arriving {{ eta }}.
        hangup:
      sorry:
        say: The order system is unavailable.
        hangup: error
"""


async def test_http_maps_json_answer_into_variables(tmp_path: Path, server) -> None:
    base, seen = server
    write(tmp_path, main=FLOW.replace("BASE", base))
    bot = Bot(tmp_path, variables={"token": "t0k", "caller": "+15550100"})
    await bot.start()
    await bot.send("one two three")
    assert seen == [{
        "query": {"verbose": "1"},
        "auth": "Bearer t0k",
        "body": {"order": "123", "who": "+15550100"},
    }]  # fmt: skip
    assert bot.said == "Status ok, arriving tomorrow."
    assert bot.d.values["eta"] == "tomorrow" and bot.d.values["missing"] is None


@pytest.mark.parametrize(
    ("path", "timeout_ms", "message"),
    [
        ("/slow", 100, "timed out after 100 ms"),
        # generous where the timeout is not what is tested, so a busy machine cannot turn
        # these answers into timeouts
        ("/broken", 10000, "answered HTTP 500: boom"),
        ("/html", 10000, "did not answer JSON: '<html>'"),
    ],
)
async def test_http_failures_take_the_error_path(
    tmp_path: Path, server, path, timeout_ms, message
) -> None:
    base, _ = server
    write(
        tmp_path,
        main=f"""
        defaults:
          on_error: sorry
        nodes:
          lookup:
            http: {{url: "{base}{path}", timeout_ms: {timeout_ms}}}
            next: bye
          bye:
            hangup:
          sorry:
            say: The order system is unavailable.
            hangup: error
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    assert bot.said == "The order system is unavailable."
    assert bot.of(Hangup) == [Hangup("error")]
    error = next(n for n in bot.of(Note) if n.kind == "error")
    assert message in error.data["message"]


async def test_http_unreachable_server(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        nodes:
          lookup:
            http: {url: "http://127.0.0.1:9/x", timeout_ms: 500}
            next: bye
          bye:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    assert bot.of(Hangup) == [Hangup("error")]
    error = next(n for n in bot.of(Note) if n.kind == "error")
    assert error.data["message"].startswith("GET http://127.0.0.1:9/x failed: ClientConnectorError")
