"""Authentication on /ws/voice and the REST routes: every token location and every failure."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from voicebot.config import AuthConfig, JWTConfig
from voicebot.server.appkeys import AUTH
from voicebot.server.auth import Authenticator, AuthError
from voicebot.server.redact import RedactCredentials

from .support import Client, base_config, serve
from .test_voice_ws import _no_calls_left

SECRET = "test-secret-that-is-long-enough-for-hs256"


def auth_config(**auth) -> dict:
    cfg = base_config()
    cfg["security"] = {
        "auth": {
            "mode": "jwt",
            "jwt": {"secret": SECRET, "audience": "voicebot", "issuer": "https://idp.test"},
            "first_message_timeout_s": 0.5,
            **auth,
        }
    }
    return cfg


def make_token(key=SECRET, alg="HS256", headers=None, **claims) -> str:
    now = time.time()
    payload = {"sub": "alice", "exp": now + 60, "aud": "voicebot", "iss": "https://idp.test"}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def assert_not_logged(token: str, caplog) -> None:
    """Server-side logs only: the websockets client itself logs its request headers at DEBUG."""
    server_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets")]
    assert server_lines and not any(token in line for line in server_lines)


async def open_ws(server, query="", **kw) -> Client:
    return Client(await websockets.connect(f"{server.url}/ws/voice{query}", **kw))


async def connected(c: Client) -> dict:
    _, ev = await c.wait_for(lambda e: e.get("status") == "connected", timeout=5)
    return ev


async def refused(c: Client) -> tuple[int, str]:
    await asyncio.wait_for(c.closed.wait(), 5)
    return c.ws.close_code, c.ws.close_reason


@pytest.mark.parametrize("where", ["header", "query", "subprotocol", "auth_message", "bare_token"])
async def test_token_in_each_location_records_subject(tmp_path, where, caplog):
    caplog.set_level(logging.DEBUG)
    token = make_token()
    async with serve(tmp_path, auth_config()) as server:
        query, kw, first = "", {}, None
        if where == "header":
            kw["additional_headers"] = {"Authorization": f"Bearer {token}"}
        elif where == "query":
            query = f"?token={token}"
        elif where == "subprotocol":
            kw["subprotocols"] = ["bearer", token]
        elif where == "auth_message":
            first = {"type": "auth", "token": token}
        else:
            first = {"token": token}
        ws = await websockets.connect(f"{server.url}/ws/voice{query}", **kw)
        if where == "subprotocol":
            assert ws.subprotocol == "bearer"  # the marker is echoed, never the token
        if first is not None:
            await ws.send(json.dumps(first))
        c = Client(ws)
        ev = await connected(c)
        assert server.runtime.calls[ev["call_id"]].variables["subject"] == "alice"
        await c.close()
        await _no_calls_left(server)
    assert_not_logged(token, caplog)


def _alg_none_token() -> str:
    return jwt.encode(
        {"sub": "alice", "exp": time.time() + 60, "aud": "voicebot", "iss": "https://idp.test"},
        None,
        algorithm="none",
    )


FAILURES = {
    "expired": (lambda: make_token(exp=time.time() - 120), "token expired"),
    "not_yet_valid": (lambda: make_token(nbf=time.time() + 600), "not valid yet"),
    "wrong_audience": (lambda: make_token(aud="someone-else"), "audience is wrong"),
    "wrong_issuer": (lambda: make_token(iss="https://evil.test"), "issuer is wrong"),
    "bad_signature": (lambda: make_token(key="another-secret-also-long-enough-x"), "signature"),
    "alg_none": (_alg_none_token, "algorithm 'none' is not allowed"),
    "no_exp": (lambda: make_token(exp=None), "no 'exp' claim"),
    "garbage": (lambda: "not.a.jwt", "malformed"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
async def test_bad_token_closes_4001_with_reason(tmp_path, case, caplog):
    caplog.set_level(logging.DEBUG)
    make, reason = FAILURES[case]
    token = make()
    async with serve(tmp_path, auth_config()) as server:
        c = await open_ws(server, f"?token={token}")
        code, why = await refused(c)
        assert code == 4001 and reason in why, (code, why)
        assert any(e.get("code") == "auth_failed" for _, e in c.events)
        assert not server.runtime.calls
    assert_not_logged(token, caplog)


async def test_expired_token_within_leeway_is_accepted(tmp_path):
    async with serve(tmp_path, auth_config()) as server:
        c = await open_ws(server, f"?token={make_token(exp=time.time() - 5)}")
        await connected(c)
        await c.close()


async def test_missing_token_times_out_with_4001(tmp_path):
    async with serve(tmp_path, auth_config()) as server:
        c = await open_ws(server)
        start = time.monotonic()
        code, why = await refused(c)
        assert code == 4001 and "no token within 0.5 s" in why
        assert 0.4 < time.monotonic() - start < 3


async def test_audio_before_auth_is_refused(tmp_path):
    async with serve(tmp_path, auth_config()) as server:
        c = await open_ws(server)
        await c.ws.send(b"\0" * 640)
        code, why = await refused(c)
        assert code == 4001 and "token before anything else" in why


def _pem_public(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


async def test_rs256_public_key_file(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "pub.pem").write_text(_pem_public(key))
    cfg = auth_config(jwt={"public_key_file": "pub.pem", "algorithms": ["RS256"]})
    async with serve(tmp_path, cfg) as server:
        good = await open_ws(server, f"?token={make_token(key, 'RS256', aud=None, iss=None)}")
        await connected(good)
        # an HS256 token signed with the public key text must not pass (algorithm confusion)
        forged = jwt.encode(
            {"sub": "mallory", "exp": time.time() + 60}, "x" * 32, algorithm="HS256"
        )
        bad = await open_ws(server, f"?token={forged}")
        code, why = await refused(bad)
        assert code == 4001 and "algorithm 'HS256' is not allowed" in why
        await good.close()


async def test_es256_jwks_file_selects_key_by_kid(tmp_path):
    keys = {kid: ec.generate_private_key(ec.SECP256R1()) for kid in ("k1", "k2")}
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key())), "kid": kid}
            for kid, k in keys.items()
        ]
    }
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    cfg = auth_config(jwt={"jwks_file": "jwks.json", "algorithms": ["ES256"]})
    async with serve(tmp_path, cfg) as server:
        ok = make_token(keys["k2"], "ES256", headers={"kid": "k2"}, aud=None, iss=None)
        good = await open_ws(server, f"?token={ok}")
        await connected(good)
        wrong = make_token(keys["k1"], "ES256", headers={"kid": "k2"}, aud=None, iss=None)
        bad = await open_ws(server, f"?token={wrong}")
        assert (await refused(bad))[0] == 4001
        await good.close()


async def test_api_keys(tmp_path):
    cfg = base_config(security={"auth": {"mode": "api_key", "api_keys": ["k-one", "k-two"]}})
    async with serve(tmp_path, cfg) as server:
        good = await open_ws(server, additional_headers={"X-API-Key": "k-two"})
        ev = await connected(good)
        assert server.runtime.calls[ev["call_id"]].variables["subject"].startswith("key-")
        bad = await open_ws(server, "?token=k-three")
        code, why = await refused(bad)
        assert code == 4001 and why == "invalid API key"
        await good.close()


async def test_sessions_require_auth_and_are_bound_to_subject(tmp_path):
    async with serve(tmp_path, auth_config()) as server:
        async with aiohttp.ClientSession() as http:
            url = f"{server.http}/api/v1/sessions"
            async with http.post(url, json={}) as r:
                assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            headers = {"Authorization": f"Bearer {make_token()}"}
            async with http.post(url, json={}, headers=headers) as r:
                assert r.status == 200
                sid = (await r.json())["session_id"]
        other = await open_ws(server, f"?session_id={sid}&token={make_token(sub='bob')}")
        code, why = await refused(other)
        assert code == 4001 and "another subject" in why
        mine = await open_ws(server, f"?session_id={sid}&token={make_token()}")
        ev = await connected(mine)
        assert ev["session_id"] == sid
        await mine.close()


async def test_fresh_token_mid_call(tmp_path):
    async with serve(tmp_path, auth_config()) as server:
        c = await open_ws(server, f"?token={make_token(exp=time.time() + 2)}")
        await connected(c)
        fresh_exp = time.time() + 600
        await c.ws.send(json.dumps({"type": "auth", "token": make_token(exp=fresh_exp)}))
        _, ok = await c.wait_for(lambda e: e.get("type") == "auth")
        assert ok["status"] == "ok" and abs(ok["expires_at"] - fresh_exp) < 1
        # another subject's token, or a bad one, is reported; the call goes on
        await c.ws.send(json.dumps({"type": "auth", "token": make_token(sub="bob")}))
        _, err = await c.wait_for(lambda e: e.get("code") == "auth_failed")
        assert "another subject" in err["message"]
        await c.ws.send(json.dumps({"type": "ping"}))
        await c.wait_for(lambda e: e.get("type") == "pong")
        await c.close()
        await _no_calls_left(server)


def test_config_refuses_alg_none_and_missing_keys(tmp_path):
    with pytest.raises(ValueError, match="'none' is never accepted"):
        Authenticator(AuthConfig(mode="jwt", jwt=JWTConfig(secret="s", algorithms=["none"])))
    with pytest.raises(ValueError, match="public_key_file or jwks_file"):
        Authenticator(AuthConfig(mode="jwt", jwt=JWTConfig(algorithms=["RS256"])))
    with pytest.raises(ValueError, match="api_keys is empty"):
        Authenticator(AuthConfig(mode="api_key"))
    authn = Authenticator(AuthConfig(mode="api_key", api_keys=["a"]))
    with pytest.raises(AuthError, match="no token"):
        authn.verify("")


def test_access_log_hides_query_tokens():
    record = logging.LogRecord(
        "aiohttp.access", logging.INFO, "", 0,
        '127.0.0.1 "GET /ws/voice?sample_rate=16000&token=eyJ.secret.sig HTTP/1.1" 101', (), None,
    )  # fmt: skip
    RedactCredentials().filter(record)
    assert "eyJ" not in record.getMessage()
    assert "token=[redacted]" in record.getMessage()


async def test_only_the_owner_erases_a_session(tmp_path):
    async with serve(tmp_path, auth_config()) as server, aiohttp.ClientSession() as http:
        alice = {"Authorization": f"Bearer {make_token()}"}
        bob = {"Authorization": f"Bearer {make_token(sub='bob')}"}
        async with http.post(f"{server.http}/api/v1/sessions", json={}, headers=alice) as r:
            url = f"{server.http}/api/v1/sessions/{(await r.json())['session_id']}"
        async with http.delete(url) as r:
            assert r.status == 401
        async with http.delete(url, headers=bob) as r:
            assert r.status == 404
        async with http.delete(url, headers=alice) as r:
            assert r.status == 200
        async with http.delete(url, headers=alice) as r:
            assert r.status == 404


async def test_sockets_waiting_for_a_token_are_capped(tmp_path):
    cfg = auth_config()
    cfg["security"]["limits"] = {"max_calls": 1}
    cfg["security"]["auth"]["first_message_timeout_s"] = 5
    async with serve(tmp_path, cfg) as server:
        waiting = Client(await websockets.connect(f"{server.url}/ws/voice"))
        async with asyncio.timeout(5):  # the server counts the socket as waiting for a token
            while server.runner.app[AUTH].waiting < 1:  # noqa: ASYNC110 - server-side counter
                await asyncio.sleep(0.01)
        second = Client(await websockets.connect(f"{server.url}/ws/voice"))
        code, why = await refused(second)
        assert code == 1013 and "waiting to authenticate" in why
        await waiting.ws.send(json.dumps({"type": "auth", "token": make_token()}))
        await connected(waiting)  # the first one is unaffected
        await waiting.close()
        await _no_calls_left(server)
