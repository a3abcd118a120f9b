"""Plivo call control with the real `plivo` SDK against the loopback Call API (HTTPS behind a
CONNECT proxy, `plivo_api_fake.py`): every failure the SDK can meet becomes a `TelephonyError`
with a clear message, the event loop keeps running while the SDK blocks a thread, and the
requests in flight are bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from voicebot.telephony.carrier import Start, TelephonyError
from voicebot_plugins.plivo import rest
from voicebot_plugins.plivo.rest import PlivoControl

from .plivo_api_fake import plivo_api

AUTH_ID, TOKEN = "MAXXXXXXXXXXXXXXXXXX", "plivo-test-token"
CALL = "12345678-1234-1234-1234-123456789abc"
TRANSFER_URL = "https://bot.example.com/plivo/transfer"


def control(api, token: str = TOKEN, timeout_s: float = 10.0, **options) -> PlivoControl:
    settings = {**api.options, **options}
    return PlivoControl(
        AUTH_ID, token, TRANSFER_URL, "+14150000000", timeout_s=timeout_s, **settings
    )


def start(call: str = CALL) -> Start:
    return Start(stream_id="stream-1", call_id=call)


async def test_transfer_and_hang_up_reach_plivo_through_the_proxy(tmp_path):
    async with plivo_api(tmp_path, AUTH_ID, TOKEN) as api:
        api.live_calls.add(CALL)
        plivo = control(api)
        try:
            await plivo.transfer(start(), "+15551234567")
            await plivo.hangup(start())
            await plivo.hangup(start())  # gone now: Plivo's 404 means "already ended"
        finally:
            await plivo.aclose()
        assert set(api.tunnels) == {"CONNECT api.plivo.com:443"}
        assert [(m, p) for m, p, _, _ in api.seen] == [
            ("POST", f"/v1/Account/{AUTH_ID}/Call/{CALL}/"),
            ("DELETE", f"/v1/Account/{AUTH_ID}/Call/{CALL}/"),
            ("DELETE", f"/v1/Account/{AUTH_ID}/Call/{CALL}/"),
        ]
        body = api.seen[0][2]
        assert (body["legs"], body["aleg_method"]) == ("aleg", "POST")
        assert body["aleg_url"] == f"{TRANSFER_URL}?to=%2B15551234567&from=%2B14150000000"


async def test_plivo_errors_become_telephony_errors(tmp_path):
    async with plivo_api(tmp_path, AUTH_ID, TOKEN) as api:
        api.live_calls.add(CALL)
        api.behaviour["broken"] = 500
        api.behaviour["forbidden"] = 403
        bad_token = control(api, token="wrong-token")
        plivo = control(api)
        try:
            with pytest.raises(TelephonyError, match=r"refused the credentials.*auth_token"):
                await bad_token.transfer(start(), "+15551234567")
            with pytest.raises(TelephonyError, match="Plivo has no live call gone"):
                await plivo.transfer(start("gone"), "+15551234567")
            with pytest.raises(TelephonyError, match="refused to transfer call forbidden"):
                await plivo.transfer(start("forbidden"), "+15551234567")
            api.seen.clear()
            with pytest.raises(TelephonyError, match="refused to hang up call broken"):
                await plivo.hangup(start("broken"))
            assert len(api.seen) == 3  # the SDK's own two retries of a 5xx
            with pytest.raises(TelephonyError, match="did not say which call"):
                await plivo.hangup(start(""))
        finally:
            await bad_token.aclose()
            await plivo.aclose()


async def test_an_unreachable_or_untrusted_api_is_a_telephony_error(tmp_path):
    async with plivo_api(tmp_path, AUTH_ID, TOKEN) as api:
        api.live_calls.add(CALL)
        untrusted = control(api, ca_bundle="")  # certifi's CAs: the fake's cert is refused
        no_proxy = control(api, proxy="http://127.0.0.1:9")  # the discard port: nothing there
        no_bundle = control(api, ca_bundle=str(tmp_path / "missing.pem"))
        try:
            with pytest.raises(TelephonyError, match=r"unreachable.*missing\.pem"):
                await no_bundle.hangup(start())
            with pytest.raises(TelephonyError, match=r"Call API unreachable.*SSL"):
                await untrusted.hangup(start())
            with pytest.raises(TelephonyError, match="Call API unreachable"):
                await no_proxy.hangup(start())
        finally:
            await untrusted.aclose()
            await no_proxy.aclose()
            await no_bundle.aclose()
        assert api.seen == []


async def test_a_hanging_api_times_out_without_stalling_the_loop(tmp_path):
    async with plivo_api(tmp_path, AUTH_ID, TOKEN) as api:
        api.behaviour[CALL] = "hang"
        plivo = control(api, timeout_s=1.0)
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.ensure_future(ticker())
        t0 = time.monotonic()
        try:
            with pytest.raises(TelephonyError, match=r"unreachable.*timed out|did not answer"):
                await plivo.hangup(start())
        finally:
            tick.cancel()
            await plivo.aclose()
        assert time.monotonic() - t0 < 3.0  # the SDK's read timeout (1 s), well before ours
        # a loop the SDK blocked would have stood still for the whole second
        assert gaps and max(gaps) < 0.5


async def test_requests_in_flight_are_bounded(tmp_path):
    async with plivo_api(tmp_path, AUTH_ID, TOKEN) as api:
        api.live_calls.add(CALL)
        api.behaviour[CALL] = "hang"
        plivo = control(api)
        try:
            waiting = [
                asyncio.ensure_future(plivo.hangup(start())) for _ in range(rest.MAX_IN_FLIGHT)
            ]
            await asyncio.sleep(0)  # each has started: its request is in flight, or queued
            with pytest.raises(TelephonyError, match="already in flight"):
                await plivo.hangup(start())
            api.release.set()  # Plivo answers at last: every queued request completes
            await asyncio.wait_for(asyncio.gather(*waiting), 30)
        finally:
            await plivo.aclose()
