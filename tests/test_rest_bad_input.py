"""Malformed REST requests get a 4xx with a JSON reason, never a 500 or a traceback in the log."""

from __future__ import annotations

import gzip
import logging

import aiohttp
import pytest

from .support import base_config, serve

EBML_HEADER = b"\x1a\x45\xdf\xa3\x80"  # an empty EBML header: enough to be WebM


def no_tracebacks(caplog) -> None:
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not noisy, [r.getMessage() for r in noisy]


async def answer(http, method, url, **kw) -> tuple[int, dict]:
    async with http.request(method, url, **kw) as r:
        assert r.content_type == "application/json", (r.status, await r.text())
        return r.status, await r.json()


@pytest.mark.parametrize("audio", [5, ["AAAA"], {"a": 1}, None, True])
async def test_transcribe_non_string_audio(tmp_path, caplog, audio):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        url = f"{server.http}/api/transcribe"
        status, err = await answer(http, "POST", url, json={"audio": audio})
        assert status == 400 and err["code"] == "invalid_audio"
    no_tracebacks(caplog)


@pytest.mark.parametrize(
    "block",
    [b"\xa3\x81\x81", b"\xa3\x82\x81\x00", b"\xa3\x83\x81\x00\x00", b"\xa3\x80"],
    ids=["1 byte", "2 bytes", "3 bytes", "empty"],
)
async def test_transcribe_short_webm_block(tmp_path, caplog, block):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        url = f"{server.http}/api/transcribe?encoding=webm&sample_rate=48000"
        status, err = await answer(http, "POST", url, data=EBML_HEADER + block)
        assert status == 400 and err["code"] == "invalid_audio"
    no_tracebacks(caplog)


async def test_chat_deeply_nested_json(tmp_path, caplog):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        for path in ("/api/chat", "/api/v1/sessions", "/api/transcribe"):
            body = b"[" * 5000 + b"]" * 5000
            headers = {"Content-Type": "application/json"}
            status, err = await answer(
                http, "POST", f"{server.http}{path}", data=body, headers=headers
            )
            assert status == 400 and err["code"] == "invalid_json", path
    no_tracebacks(caplog)


async def test_bogus_charset(tmp_path, caplog):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        url = f"{server.http}/api/chat"
        for charset, status_code in (("bogus", 415), ("rot13", 415), ("utf-16", 400)):
            headers = {"Content-Type": f"application/json; charset={charset}"}
            body = b'{"text": "hi\xff"}'
            status, err = await answer(http, "POST", url, data=body, headers=headers)
            assert status == status_code, (charset, err)
            assert err["code"] in ("unsupported_charset", "invalid_body", "invalid_json")
    no_tracebacks(caplog)


async def test_garbage_gzip_body(tmp_path, caplog):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        for path in ("/api/chat", "/api/transcribe", "/api/v1/sessions"):
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            status, err = await answer(
                http, "POST", f"{server.http}{path}", data=b"not gzip at all", headers=headers
            )
            assert status == 400 and err["code"] == "invalid_body", path
        # a real gzip body still works
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        data = gzip.compress(b'{"text": "hello"}')
        status, body = await answer(
            http, "POST", f"{server.http}/api/chat", data=data, headers=headers
        )
        assert status == 200 and body["text"]
    no_tracebacks(caplog)


async def test_aiohttp_errors_on_api_routes_are_json(tmp_path, caplog):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        status, err = await answer(http, "GET", f"{server.http}/api/nosuch")
        assert status == 404 and err["code"] == "not_found"
        status, err = await answer(http, "GET", f"{server.http}/api/chat")
        assert status == 405 and err["code"] == "method_not_allowed"
        big = b"\x00" * (11 * 1024 * 1024)
        status, err = await answer(http, "POST", f"{server.http}/api/transcribe", data=big)
        assert status == 413 and err["code"] == "body_too_large"
    no_tracebacks(caplog)
