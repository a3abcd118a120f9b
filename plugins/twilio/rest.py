"""The one Twilio REST operation voicebot needs: redirect a live call (transfer to a human).

Updating a call's TwiML makes Twilio leave the `<Connect><Stream>` (our media WebSocket gets a
`stop`) and execute the new document, here a `<Dial>`. The base URL is configurable so tests and
regional edges (`https://api.dublin.ie1.twilio.com`) work the same way.
"""

from __future__ import annotations

import base64
import logging
import re
from urllib.parse import quote

import aiohttp

from voicebot.telephony.carrier import Start, TelephonyError

from .twiml import dial

log = logging.getLogger(__name__)

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
    ) -> None:
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self.caller_id = caller_id
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {credentials}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def update_call(self, call_sid: str, twiml_doc: str) -> dict:
        url = (
            f"{self.base_url}/2010-04-01/Accounts/{quote(self.account_sid, safe='')}"
            f"/Calls/{quote(call_sid, safe='')}.json"
        )
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                url, data={"Twiml": twiml_doc}, headers=self._headers
            ) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TwilioRestError(f"Twilio REST API unreachable at {self.base_url}: {exc}") from exc
        if status >= 400:
            info = body if isinstance(body, dict) else {}
            raise TwilioRestError(
                f"Twilio refused to update call {call_sid}: HTTP {status} "
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

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
