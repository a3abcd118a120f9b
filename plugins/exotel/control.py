"""Exotel transfers, the way its Voicebot applet allows: through the call flow, not an API.

Exotel has no API to redirect a live Voicebot call. When the bot's WebSocket closes, the flow
goes on to the applet after *Voicebot*. So a transfer records the target under the call's
`CallSid` (in the fleet's shared values: with `cluster.redis_url` the webhook that asks may
reach another instance) and the call then ends its stream as any transfer does; a *Passthru*
applet asks `/exotel/transfer-pending` which branch to take, and a *Connect* applet whose
numbers come from a URL asks `/exotel/transfer-target` whom to dial (`webhooks.py`).

A hang-up needs nothing more: closing the stream moves the flow on (to *Hangup*, through the
Passthru's "no transfer" branch).
"""

from __future__ import annotations

import logging

from voicebot.telephony.carrier import SharedValues, Start, TelephonyError

from .._carrier_kit import check_target

log = logging.getLogger(__name__)

#: How long a recorded target waits for the flow's Connect applet (it comes within seconds).
TRANSFER_TTL_S = 300.0
KEY_PREFIX = "exotel:transfer:"


def transfer_key(call_sid: str) -> str:
    return KEY_PREFIX + call_sid


class ExotelControl:
    def __init__(self) -> None:
        self._values: SharedValues | None = None

    def use_shared_values(self, values: SharedValues) -> None:
        self._values = values

    async def transfer(self, start: Start, target: str) -> None:
        check_target(target, "Exotel")
        if target.lower().startswith("sip"):
            raise TelephonyError(
                f"cannot transfer an Exotel call to {target!r}: its Connect applet dials phone "
                "numbers"
            )
        if not start.call_id:
            raise TelephonyError("cannot transfer: the Exotel stream did not name its CallSid")
        if self._values is None:
            raise TelephonyError("cannot transfer: no shared store for the Connect applet")
        await self._values.put(transfer_key(start.call_id), target, TRANSFER_TTL_S)
        log.info(
            "Exotel call %s: transfer to %s recorded; the stream ends and the flow's Connect "
            "applet fetches the number",
            start.call_id,
            target,
        )

    async def aclose(self) -> None:
        """Nothing to release: the values belong to the instance."""
