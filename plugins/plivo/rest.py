"""Transfer and hang-up through Plivo's Call API, over plain HTTP with its documented shapes.

Not the official `plivo` SDK: it is synchronous (`requests`), and it resets its base URL to
`https://api.plivo.com` on every voice request, so it can only be pointed elsewhere (a regional
endpoint, a test's loopback fake) by patching it. The SDK still builds the signatures we check.

- hang up: `DELETE /v1/Account/{auth_id}/Call/{call_uuid}/` (204);
- transfer: `POST /v1/Account/{auth_id}/Call/{call_uuid}/` with `legs=aleg`, `aleg_url` (our
  `/plivo/transfer?to=…`, which answers `<Dial>`) and `aleg_method=POST` (202).
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode

from voicebot.telephony.carrier import Start, TelephonyError

from .._carrier_kit import HttpControl, check_target

log = logging.getLogger(__name__)


class PlivoControl(HttpControl):
    def __init__(
        self, auth_id: str, auth_token: str, base_url: str, transfer_url: str, caller_id: str = ""
    ) -> None:
        super().__init__("Plivo", base_url, auth_id, auth_token)
        self.auth_id = auth_id
        self.transfer_url = transfer_url
        self.caller_id = caller_id

    def _path(self, start: Start) -> str:
        if not start.call_id:
            raise TelephonyError("the Plivo stream did not say which call it carries")
        return f"/v1/Account/{quote(self.auth_id, safe='')}/Call/{quote(start.call_id, safe='')}/"

    async def transfer(self, start: Start, target: str) -> None:
        check_target(target, "Plivo")
        if not self.transfer_url:
            raise TelephonyError("telephony.plivo.transfer_url is empty")
        query = {"to": target, **({"from": self.caller_id} if self.caller_id else {})}
        form = {
            "legs": "aleg",
            "aleg_url": f"{self.transfer_url}?{urlencode(query)}",
            "aleg_method": "POST",
        }
        status, body = await self.request("POST", self._path(start), json=form)
        if status >= 400:
            raise TelephonyError(
                f"Plivo refused to transfer call {start.call_id}: HTTP {status} "
                f"{body.get('error', body.get('message', '')) if isinstance(body, dict) else ''}"
            )
        log.info("Plivo call %s transferred to %s", start.call_id, target)

    async def hangup(self, start: Start) -> None:
        status, _ = await self.request("DELETE", self._path(start))
        if status >= 400 and status != 404:  # 404: the call has already ended
            raise TelephonyError(f"Plivo refused to hang up call {start.call_id}: HTTP {status}")
