"""Twilio's REST API through the official `twilio` SDK: transfer a live call, place an outbound one.

Updating a call's TwiML makes Twilio leave the `<Connect><Stream>` (our media WebSocket gets a
`stop`) and execute the new document, here a `<Dial>`. Creating a call asks Twilio to dial out
and fetch our voice webhook once the callee answers. Hang-up needs no REST call: when the bot
closes the media stream, Twilio runs the TwiML after `<Connect>`, and there is none, so the call
ends.

Only the SDK's async path is used (`AsyncTwilioHttpClient`, `*_async` methods): no request blocks
the event loop. `telephony.twilio.api_base_url` (default Twilio's) is honoured through the SDK's
own extension point, a custom `http_client`: it serves regional edges
(`https://api.dublin.ie1.twilio.com`) and the loopback fakes the tests run.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
from types import ModuleType
from typing import Any

import aiohttp

from voicebot.telephony.carrier import Start, TelephonyError

from .twiml import dial

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")
_TARGET = re.compile(r"^(\+?[0-9*#]{2,20}|sips?:[^\s<>&\"']{3,200}|client:[A-Za-z0-9_.@-]{1,100})$")
_STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


class TwilioRestError(TelephonyError):
    def __init__(self, message: str, status: int = 0, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class TwilioControl:
    """Shared by every call of the process; owns one SDK client and its connection pool, made
    on first use so that it belongs to the running loop."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = TWILIO_API,
        caller_id: str = "",
        timeout_s: float = 10.0,
        machine_detection: str = "",
    ) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.base_url = base_url.rstrip("/")
        self.caller_id = caller_id
        self.timeout_s = timeout_s
        self.machine_detection = machine_detection
        self._sdk: ModuleType | None = None
        self._http: Any = None
        self._client: Any = None

    async def _api(self) -> Any:
        """The SDK client; the SDK's modules load in a thread (about half a second of imports
        that would stall every live call's audio if they ran on the loop)."""
        if self._sdk is None:
            self._sdk = await asyncio.to_thread(importlib.import_module, f"{__package__}.sdk")
        if self._client is None:
            self._http = self._sdk.BaseUrlHttpClient(self.base_url, self.timeout_s)
            self._client = self._sdk.Client(
                self.account_sid, self._auth_token, http_client=self._http
            )
        return self._client

    async def _call(self, what: str, request: Any) -> Any:
        """Run one SDK request; every way it can fail becomes a `TwilioRestError` saying why."""
        assert self._sdk is not None
        try:
            return await request
        except self._sdk.TwilioException as exc:
            status = getattr(exc, "status", 0) or 0
            code = getattr(exc, "code", None)
            said = getattr(exc, "msg", "") or getattr(exc, "detail", "") or ""
            said = said or getattr(exc, "title", "") or type(exc).__name__
            raise TwilioRestError(
                f"Twilio refused {what}: HTTP {status} {said} (code {code})",
                status=status,
                code=code,
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TwilioRestError(
                f"Twilio REST API unreachable at {self.base_url}: {exc or type(exc).__name__}"
            ) from None
        except ValueError as exc:  # a body that is not JSON: not Twilio's API answering
            raise TwilioRestError(
                f"Twilio REST API at {self.base_url} answered {what} with no JSON: {exc}"
            ) from None

    async def transfer(self, start: Start, target: str) -> None:
        if not _TARGET.match(target):
            raise TwilioRestError(
                f"cannot transfer to {target!r}: use an E.164 number (+15551234567), a sip: URI "
                "or a client: identity"
            )
        if not start.call_id:
            raise TwilioRestError("cannot transfer: the stream did not say which call it carries")
        twiml = dial(target, self.caller_id)
        update = (await self._api()).calls(start.call_id).update_async(twiml=twiml)
        await self._call(f"to update call {start.call_id}", update)
        log.info("call %s transferred to %s", start.call_id, target)

    async def place_call(self, to: str, from_: str, public_url: str) -> str:
        """Dial `to` from `from_` (a number of the account); the answered call fetches our voice
        webhook, and its progress (initiated, ringing, answered, completed with busy/no-answer/
        failed) is posted to our status webhook. Returns the new call's CallSid."""
        for number in (to, from_):
            if not _NUMBER.match(number):
                raise TwilioRestError(
                    f"cannot place a call with {number!r}: use E.164 (+15551234567)"
                )
        base = public_url.rstrip("/")
        if not base.startswith("https://") and not base.startswith("http://"):
            raise TwilioRestError("placing calls needs server.public_url (Twilio calls it back)")
        extra = {"machine_detection": self.machine_detection} if self.machine_detection else {}
        create = (await self._api()).calls.create_async(
            to=to,
            from_=from_,
            url=f"{base}/twilio/voice",
            method="POST",
            status_callback=f"{base}/twilio/status",
            status_callback_method="POST",
            status_callback_event=_STATUS_EVENTS,
            **extra,
        )
        call = await self._call(f"to call {to}", create)
        sid = getattr(call, "sid", None)
        if not isinstance(sid, str) or not sid:
            raise TwilioRestError("Twilio answered the new call without a sid")
        log.info("call %s placed to %s", sid, to)
        return sid

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = self._client = None
