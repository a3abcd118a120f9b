"""The one Twilio REST operation voicebot needs: redirect a live call (transfer to a human).

Updating a call's TwiML makes Twilio leave the `<Connect><Stream>` (our media WebSocket gets a
`stop`) and execute the new document, here a `<Dial>`. The base URL is configurable so tests and
regional edges (`https://api.dublin.ie1.twilio.com`) work the same way.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any
from urllib.parse import quote

import aiohttp

from voicebot.telephony.carrier import Start, TelephonyError

from .twiml import dial

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")
_TARGET = re.compile(r"^(\+?[0-9*#]{2,20}|sips?:[^\s<>&\"']{3,200}|client:[A-Za-z0-9_.@-]{1,100})$")


class TwilioRestError(TelephonyError):
    def __init__(self, message: str, status: int = 0, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class TwilioRestClient:
    """Shared by every call of the process; owns one connection pool."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = "https://api.twilio.com",
        caller_id: str = "",
        timeout_s: float = 10.0,
        machine_detection: str = "",
    ) -> None:
        self.machine_detection = machine_detection
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self.caller_id = caller_id
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {credentials}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def update_call(self, call_sid: str, twiml_doc: str) -> dict:
        path = f"Calls/{quote(call_sid, safe='')}.json"
        return await self._post(path, {"Twiml": twiml_doc}, f"to update call {call_sid}")

    async def _post(self, path: str, data: Any, what: str) -> dict:
        url = f"{self.base_url}/2010-04-01/Accounts/{quote(self.account_sid, safe='')}/{path}"
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(url, data=data, headers=self._headers) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TwilioRestError(f"Twilio REST API unreachable at {self.base_url}: {exc}") from exc
        if status >= 400:
            info = body if isinstance(body, dict) else {}
            raise TwilioRestError(
                f"Twilio refused {what}: HTTP {status} "
                f"{info.get('message', '')} (code {info.get('code')})",
                status=status,
                code=info.get("code"),
            )
        return body if isinstance(body, dict) else {}

    async def transfer(self, start: Start, target: str) -> None:
        if not _TARGET.match(target):
            raise TwilioRestError(
                f"cannot transfer to {target!r}: use an E.164 number (+15551234567), a sip: URI "
                "or a client: identity"
            )
        if not start.call_id:
            raise TwilioRestError("cannot transfer: the stream did not say which call it carries")
        await self.update_call(start.call_id, dial(target, self.caller_id))
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
        data = [
            ("To", to),
            ("From", from_),
            ("Url", f"{base}/twilio/voice"),
            ("Method", "POST"),
            ("StatusCallback", f"{base}/twilio/status"),
            ("StatusCallbackMethod", "POST"),
            *(
                ("StatusCallbackEvent", e)
                for e in ("initiated", "ringing", "answered", "completed")
            ),
        ]
        if self.machine_detection:
            data.append(("MachineDetection", self.machine_detection))
        body = await self._post("Calls.json", data, f"to call {to}")
        sid = body.get("sid")
        if not isinstance(sid, str) or not sid:
            raise TwilioRestError("Twilio answered the new call without a sid")
        log.info("call %s placed to %s", sid, to)
        return sid

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
