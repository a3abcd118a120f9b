"""REST and subjects: chats belong to their subject, credentials come in headers only, the
operations routes need auth, and a token without a subject is refused."""

from __future__ import annotations

import aiohttp
import pytest

from voicebot.server.telephony import TELEPHONY

from .support import serve
from .test_auth import auth_config, make_token, open_ws, refused


def bearer(sub: str) -> dict[str, str]:
    """Made per test: a token made at import time would expire during a long suite."""
    return {"Authorization": f"Bearer {make_token(sub=sub)}"}


def serve_auth(tmp_path):
    return serve(tmp_path, auth_config())


async def chat(http, server, headers, text, session_id=None):
    body = {"text": text} if session_id is None else {"text": text, "session_id": session_id}
    async with http.post(f"{server.http}/api/chat", json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_a_chat_belongs_to_its_subject(tmp_path):
    alice, bob = bearer("alice"), bearer("bob")
    async with serve_auth(tmp_path) as server, aiohttp.ClientSession() as http:
        mine = await chat(http, server, alice, "hello")
        sid = mine["session_id"]
        # Bob cannot continue it: to him it is unknown, so he gets a conversation of his own
        his = await chat(http, server, bob, "hello", sid)
        assert his["session_id"] != sid and his["greeting"] == "Hi."
        again = await chat(http, server, alice, "hello again", sid)
        assert again["session_id"] == sid and again["greeting"] is None
        # nor open it as a voice call
        code, why = await refused(
            await open_ws(server, f"?session_id={sid}&token={make_token(sub='bob')}")
        )
        assert code == 4001 and "another subject" in why
        # and only Alice can erase it, which ends the conversation
        url = f"{server.http}/api/v1/sessions/{sid}"
        async with http.delete(url, headers=bob) as r:
            assert r.status == 404
        async with http.delete(url, headers=alice) as r:
            assert r.status == 200
        # a new conversation (greeted again): the id, now free, is adopted as the client's own
        after = await chat(http, server, alice, "still there?", sid)
        assert after["session_id"] == sid and after["greeting"] == "Hi."


@pytest.mark.parametrize("path", ["/api/v1/sessions", "/calls", "/ws/stats", "/telephony/stats"])
async def test_rest_takes_credentials_in_headers_only(tmp_path, path):
    token = make_token()
    method = "POST" if path.startswith("/api/") else "GET"
    async with serve_auth(tmp_path) as server, aiohttp.ClientSession() as http:
        url = f"{server.http}{path}"
        refused_ways = [
            {"params": {"token": token}},
            {"headers": {"Sec-WebSocket-Protocol": f"bearer, {token}"}},
        ]
        for kw in refused_ways:
            async with http.request(method, url, **kw) as r:
                assert r.status == 401, kw
                assert (await r.json())["code"] == "unauthorized"
        for headers in ({"Authorization": f"Bearer {token}"}, {"X-API-Key": token}):
            async with http.request(method, url, headers=headers) as r:
                assert r.status == 200, headers


async def test_telephony_stats_reset_needs_auth(tmp_path):
    alice = bearer("alice")
    async with serve_auth(tmp_path) as server, aiohttp.ClientSession() as http:
        telephony = server.runner.app[TELEPHONY]
        before = telephony.inbound_lag
        async with http.get(f"{server.http}/telephony/stats?reset=1") as r:
            assert r.status == 401
        assert telephony.inbound_lag is before  # nothing was reset
        async with http.get(f"{server.http}/telephony/stats?reset=1", headers=alice) as r:
            assert r.status == 200 and "inbound_lag_ms" in await r.json()
        assert telephony.inbound_lag is not before


@pytest.mark.parametrize("sub", ["", "   "])
async def test_a_token_with_an_empty_subject_is_refused(tmp_path, sub):
    token = make_token(sub=sub)
    async with serve_auth(tmp_path) as server, aiohttp.ClientSession() as http:
        code, why = await refused(await open_ws(server, f"?token={token}"))
        assert code == 4001 and why == "token has an empty 'sub' claim"
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{server.http}/api/v1/sessions", json={}, headers=headers) as r:
            assert r.status == 401
            assert (await r.json())["message"] == "token has an empty 'sub' claim"
