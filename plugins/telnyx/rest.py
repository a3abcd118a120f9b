"""Transfer and hang-up of a TeXML call through the official `telnyx` SDK (`AsyncTelnyx`).

A TeXML call is updated at `POST /texml/Accounts/{account_sid}/Calls/{call_sid}`: new TeXML (a
`<Dial>`) transfers it, `Status=completed` ends it. The account is the `user_id` Telnyx puts in
the stream's `start`, the call its `call_control_id` (TeXML's `CallSid`). `api_base_url` points
the SDK elsewhere (tests use a loopback fake).
"""

from __future__ import annotations

import logging

from voicebot.telephony.carrier import Start, TelephonyError

from .._carrier_kit import check_target
from .texml import dial

log = logging.getLogger(__name__)


class TelnyxControl:
    def __init__(self, api_key: str, base_url: str, caller_id: str = "") -> None:
        from telnyx import AsyncTelnyx

        # no SDK retries: a transfer either happens now or the flow takes its failure branch
        self._client = AsyncTelnyx(api_key=api_key, base_url=base_url, max_retries=0, timeout=10)
        self.caller_id = caller_id

    async def _update(self, start: Start, what: str, **fields: str) -> None:
        import telnyx

        if not (start.call_id and start.account_id):
            raise TelephonyError(f"cannot {what}: the stream did not name its call and account")
        try:
            await self._client.texml.accounts.calls.update(
                start.call_id, account_sid=start.account_id, **fields
            )
        except telnyx.APIStatusError as exc:
            raise TelephonyError(
                f"Telnyx refused to {what} call {start.call_id}: HTTP {exc.status_code}"
            ) from exc
        except telnyx.APIError as exc:
            raise TelephonyError(f"Telnyx API unreachable: {exc}") from exc

    async def transfer(self, start: Start, target: str) -> None:
        check_target(target, "Telnyx")
        await self._update(start, "transfer", texml=dial(target, self.caller_id))
        log.info("Telnyx call %s transferred to %s", start.call_id, target)

    async def hangup(self, start: Start) -> None:
        await self._update(start, "hang up", status="completed")

    async def aclose(self) -> None:
        await self._client.close()
