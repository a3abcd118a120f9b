"""Carrier webhooks behind the phone door, for every registered carrier alike.

A carrier plugin declares its routes (`Carrier.webhooks`); the core mounts each one here behind
the same door (`phone_door.py`), in the same order for every carrier: a closed door answers 403
before the body is read; the body is read (a carrier's own reader may refuse it with 415/400);
then the `security.auth` credential (door `auth`) or the carrier's request signature (door
`signed`) is checked. Only then does the carrier's handler run, with a `CarrierWebhook`: the
verified parameters and the few core services an answer needs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from ..records.audit import audit
from ..telephony.carrier import Carrier, SharedValues, Webhook, WebhookForm
from ..telephony.outbound import OutboundCall, OutboundStore
from .limits import calls_of
from .phone_door import refusal, subject_of
from .public_url import public_base, request_url, ws_base
from .stream_tokens import TokenStore

# the name operators filter on, kept from before the module moved into voicebot.server
log = logging.getLogger("voicebot.transports.webhooks")


class Telephony(Protocol):
    """What the webhooks need of `telephony.Telephony` (typed here, so neither module imports
    the other's)."""

    runtime: Any
    tokens: TokenStore
    status_counts: dict[str, int]
    outbound: OutboundStore

    @property
    def public_url(self) -> str: ...

    def door(self, provider: str) -> str: ...

    def closed_reason(self, provider: str) -> str: ...

    def options(self, provider: str) -> Any: ...


async def read_form(request: web.Request, title: str) -> WebhookForm:
    """A form-encoded webhook's parameters; a GET carries them in the (signed) query string."""
    if request.method == "GET":
        return request.query, [], b""
    if request.content_type.startswith("multipart/"):
        raise refusal(
            415,
            "unsupported_media_type",
            f"{title} webhooks are application/x-www-form-urlencoded; multipart is not accepted",
        )
    body = await request.read()
    try:
        form = await request.post()
    except (ValueError, LookupError) as exc:  # a bogus charset, undecodable bytes
        raise refusal(400, "bad_form", f"the webhook body is not a valid form: {exc}") from None
    return form, [(k, v) for k, v in form.items() if isinstance(v, str)], body  # type: ignore[return-value]


class CarrierWebhook:
    """The `WebhookCall` a carrier's handler receives once its request passed the door."""

    def __init__(
        self,
        telephony: Telephony,
        carrier: Carrier,
        request: web.Request,
        params: Mapping[str, str],
        subject: str | None,
    ) -> None:
        self.telephony = telephony
        self.carrier = carrier
        self.request = request
        self.params = params
        self.subject = subject
        self.minted: list[str] = []  # published (`TokenStore.publish`) before the answer is sent

    def at_capacity(self) -> bool:
        runtime = self.telephony.runtime
        limits = runtime.config.security.limits
        if not runtime.accepting or len(runtime.calls) >= limits.max_calls:
            return True
        return self.subject is not None and (
            calls_of(runtime.calls, self.subject) >= limits.max_calls_per_subject
        )

    async def reserve(self, call_id: str) -> bool:
        """Take the call's fleet slot (`cluster:`) before answering, on this instance: its
        media stream comes back here (`media_url`) and finds the slot held."""
        runtime = self.telephony.runtime
        slot = f"{self.carrier.name}:{call_id}"
        return await runtime.cluster.admit(slot, self.subject, live=False) is None

    def media_url(self) -> str:
        path = (*self.carrier.media_paths, f"/telephony/{self.carrier.name}/media")[0]
        own = self.telephony.runtime.cluster.instance_url or self.telephony.public_url
        return ws_base(public_base(self.request, own)) + path

    def mint_token(self, variables: Mapping[str, str], call_id: str = "") -> str:
        trusted = {**variables, "subject": self.subject} if self.subject is not None else variables
        token = self.telephony.tokens.mint(trusted, call_id=call_id)
        self.minted.append(token)
        return token

    @property
    def shared_values(self) -> SharedValues:
        return self.telephony.runtime.cluster.shared_values()

    def count_status(self, status: str) -> None:
        counts = self.telephony.status_counts
        counts[status] = counts.get(status, 0) + 1

    async def outbound_call(self, call_id: str) -> OutboundCall | None:
        call = await self.telephony.outbound.get(call_id) if call_id else None
        return call if call is not None and call.carrier == self.carrier.name else None

    async def call_progress(
        self, call_id: str, status: str, duration_s: float | None = None
    ) -> None:
        if await self.outbound_call(call_id) is None:
            return
        call, ended = await self.telephony.outbound.progress(call_id, status, duration_s)
        # once, on whichever instance the final callback reached
        if call is not None and ended and call.outcome not in (None, "answered"):
            self.telephony.runtime.hook.call_ended(call=call, reason=call.outcome)


async def _verified(
    telephony: Telephony, carrier: Carrier, webhook: Webhook, request: web.Request
) -> CarrierWebhook:
    name = carrier.name
    mode = telephony.door(name)
    if mode == "closed":
        raise refusal(403, "phone_calls_off", telephony.closed_reason(name))
    if webhook.read is not None:
        params, signed, body = await webhook.read(request)
    else:
        params, signed, body = await read_form(request, carrier.title)
    if mode == "auth":
        return CarrierWebhook(telephony, carrier, request, params, subject_of(request, name))
    url = request_url(request, telephony.public_url)
    options = telephony.options(name)
    if carrier.serializer.authenticate(options, url, request.headers, signed, body) is False:
        header = carrier.signature_header
        why = "bad" if header and header in request.headers else "missing"
        audit("auth_failed", transport=name, remote=request.remote, reason=f"{why} signature")
        log.warning(
            "%s webhook %s from %s refused: %s %s (signed URL tried: %s; set server.public_url "
            "if a proxy rewrites it)",
            carrier.title,
            request.path,
            request.remote,
            why,
            header or "signature",
            url,
        )
        raise refusal(403, "bad_signature", f"invalid {carrier.title} signature")
    return CarrierWebhook(telephony, carrier, request, params, None)


def add_webhooks(app: web.Application, telephony: Telephony, carrier: Carrier) -> None:
    """Mount `carrier`'s webhooks, each behind the phone door."""
    for webhook in carrier.webhooks:

        async def handle(request: web.Request, webhook: Webhook = webhook) -> Any:
            call = await _verified(telephony, carrier, webhook, request)
            answer = await webhook.handler(call)
            await telephony.tokens.publish(call.minted)  # the stream may open anywhere
            return answer

        for method in webhook.methods:
            if method == "GET":
                app.router.add_get(webhook.path, handle)  # HEAD too, as aiohttp's default
            else:
                app.router.add_route(method, webhook.path, handle)
