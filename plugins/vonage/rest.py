"""Transfer and hang-up through the official `vonage` SDK (`Vonage.voice`), which signs each
request with a JWT from the application's private key.

The SDK is synchronous (`requests`), so each operation runs in a worker thread; the call it acts
on is the caller's leg (the `uuid` of the answer webhook), not the WebSocket leg, so a hang-up
ends the phone call and a transfer replaces the caller's NCCO with a `connect` to the target.
"""

from __future__ import annotations

import asyncio
import logging

from voicebot.telephony.carrier import Start, TelephonyError

from .._carrier_kit import check_target

log = logging.getLogger(__name__)


class VonageControl:
    def __init__(self, application_id: str, private_key: str, api_host: str, caller_id: str):
        from vonage import Auth, HttpClientOptions, Vonage

        options = HttpClientOptions(api_host=api_host, timeout=10, max_retries=0)
        self._vonage = Vonage(Auth(application_id=application_id, private_key=private_key), options)
        self.caller_id = caller_id

    async def _run(self, what: str, start: Start, fn, *args) -> None:
        from vonage_utils.errors import VonageError

        if not start.call_id:
            raise TelephonyError(f"cannot {what}: the stream did not name its call")
        try:
            await asyncio.to_thread(fn, start.call_id, *args)
        except VonageError as exc:
            raise TelephonyError(f"Vonage refused to {what} call {start.call_id}: {exc}") from exc
        except OSError as exc:  # requests' ConnectionError, TLS errors
            raise TelephonyError(f"Vonage API unreachable: {exc}") from exc

    async def transfer(self, start: Start, target: str) -> None:
        from vonage_voice import Connect, PhoneEndpoint, SipEndpoint

        check_target(target, "Vonage")
        if target.lower().startswith("sip"):
            endpoint = SipEndpoint(uri=target)
        else:
            endpoint = PhoneEndpoint(number=target.lstrip("+"))
        if not self.caller_id:
            raise TelephonyError(
                "transferring Vonage calls needs telephony.vonage.transfer_caller_id"
            )
        ncco = [Connect(endpoint=[endpoint], from_=self.caller_id.lstrip("+"))]
        await self._run("transfer", start, self._vonage.voice.transfer_call_ncco, ncco)
        log.info("Vonage call %s transferred to %s", start.call_id, target)

    async def hangup(self, start: Start) -> None:
        await self._run("hang up", start, self._vonage.voice.hangup)

    async def aclose(self) -> None:
        """The SDK has no public close: its `requests` session goes with the client."""
