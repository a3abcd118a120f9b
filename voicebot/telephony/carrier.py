"""What a carrier plugin hands the core: one typed object per phone carrier.

A carrier is more than a media-stream format: it answers its calls with an HTTP webhook, reports
call status on another, and may redirect or end a live call through its REST API. A plugin
returns all of it as one `Carrier` from `register_telephony`, so a new carrier is one plugin
folder and no core edit. The core mounts the media stream at `/telephony/{name}/media` (plus any
`media_paths`), puts every `Webhook` behind the phone door (closed / `security.auth` / the
carrier's signature), and hands the handler a `WebhookCall` with the verified parameters and the
few core services a webhook needs (capacity, one-time stream tokens, the media URL).

Nothing here does I/O or imports aiohttp: handlers receive and return aiohttp objects, but the
shape of a carrier is plain data (aiohttp is named for type checkers only).

This is the one module a carrier plugin imports (besides `voicebot.hookspecs`): it re-exports the
media-stream vocabulary of `serializer`, so the core may rearrange its modules behind it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .outbound import OutboundCall
from .peers import parse_networks
from .serializer import (
    CallControl,
    Connected,
    Dtmf,
    InboundEvent,
    MalformedMessage,
    MalformedStart,
    Mark,
    Media,
    MediaFormat,
    MediaStreamSerializer,
    NotStarted,
    Outbound,
    Start,
    Stop,
    TelephonyError,
    UnknownEvent,
    UnsupportedFormat,
)
from .stream import FrameTooLarge, StreamProtocol, TcpCarrier
from .values import SharedValues

if TYPE_CHECKING:
    from aiohttp import web

#: The `<Stream>` parameter (Twilio's `customParameters`, or the carrier's equivalent) carrying the
#: one-time stream token from the answering webhook back to the media stream's `Start`.
TOKEN_PARAMETER = "voicebot_stream_token"

#: The minted-token variable naming the flow an outbound call starts in (never read from the
#: wire: only a token the server minted can carry it).
FLOW_VARIABLE = "voicebot_flow"

#: A webhook's parameters, the (name, value) pairs its signature covers, and the raw body.
WebhookForm = tuple[Mapping[str, str], list[tuple[str, str]], bytes]


class WebhookCall(Protocol):
    """What a carrier's webhook handler gets once the request passed the phone door."""

    request: web.Request
    params: Mapping[str, str]
    #: the `security.auth` subject when the door is `auth`, else None
    subject: str | None

    def at_capacity(self) -> bool:
        """The process (or this subject) may not take another call: refuse it the carrier's way."""

    async def reserve(self, call_id: str) -> bool:
        """Take the call's fleet-wide slot (`cluster:`) before answering; False: the fleet is
        full, refuse it like `at_capacity`. Always True on a single instance."""

    def media_url(self) -> str:
        """The public `wss://` URL of this carrier's media stream, for the answer document."""

    def mint_token(self, variables: Mapping[str, str], call_id: str = "") -> str:
        """A one-time stream token that trades, on the media stream's `Start`, for `variables`
        (plus the subject); bound to `call_id` when given. Pass it as the start parameter
        named `TOKEN_PARAMETER`."""

    @property
    def shared_values(self) -> SharedValues:
        """The instance's (or, with `cluster.redis_url`, the fleet's) short-lived values: what a
        call recorded for a later webhook (a call control gets the same store through its
        optional `use_shared_values(values)`)."""

    def count_status(self, status: str) -> None:
        """Count one status callback in `GET /telephony/stats` (use a bounded set of names)."""

    async def outbound_call(self, call_id: str) -> OutboundCall | None:
        """The outbound call placed through `POST /api/v1/calls` with this carrier call id, if
        any: its answer mints the token with the call's `variables` (and `FLOW_VARIABLE`)."""

    async def call_progress(
        self, call_id: str, status: str, duration_s: float | None = None
    ) -> None:
        """One status callback of an outbound call (the carrier's status name, e.g. Twilio's
        `ringing`, `in-progress`, `busy`): kept in its record; a call that ends unanswered goes
        to the `call_ended` hook with its outcome as the reason."""


@dataclass(frozen=True)
class Webhook:
    """One HTTP route a carrier calls: `handler(call)` answers it once the door let it in.

    `read` parses the request into a `WebhookForm` before the door's credential or signature
    check (which needs the signed parameters), raising a `web.HTTPException` with a JSON body
    for a body it cannot read; None reads a form-encoded POST or a GET's query string."""

    path: str
    handler: Callable[[WebhookCall], Awaitable[web.StreamResponse]]
    methods: tuple[str, ...] = ("POST",)
    read: Callable[[web.Request], Awaitable[WebhookForm]] | None = None


@dataclass(frozen=True)
class Carrier:
    """Everything one phone carrier plugs in.

    - `serializer`: the media-stream wire format; its `name` names the carrier in routes and
      config, its `Options` is the `telephony.{name}` schema, and its class methods
      `authenticate()` (request signatures), `call_control()` (transfer and hang-up through the
      carrier's API) and `transfer_problem()` complete it.
    - `webhooks`: the answer and status routes, behind the phone door.
    - `media_paths`: extra paths for the media stream besides `/telephony/{name}/media`.
    - `stream_token`: the media stream must carry a token minted by an answer webhook; without
      it, a stream carrying a token is still checked, and one without is admitted by the door.
    - `signature_header`: the request header carrying the signature, named in refusal logs.
    - `display_name`: how messages name the carrier ("Twilio"); its `name` by default.
    - `subprotocols`: the `Sec-WebSocket-Protocol` values its media stream selects.
    - `auth_failure_status`: the HTTP status of a media upgrade `authenticate()` refuses: 403
      `bad_signature` for a signature, 401 `unauthorized` for a bearer credential (FreeSWITCH).
    """

    serializer: type[MediaStreamSerializer]
    webhooks: tuple[Webhook, ...] = ()
    media_paths: tuple[str, ...] = ()
    stream_token: bool = False
    signature_header: str = ""
    display_name: str = ""
    #: WebSocket subprotocols the media stream accepts (Asterisk's client asks for `media`)
    subprotocols: tuple[str, ...] = ()
    auth_failure_status: int = 403

    @property
    def name(self) -> str:
        return self.serializer.name

    @property
    def title(self) -> str:
        return self.display_name or self.name


__all__ = [
    "FLOW_VARIABLE",
    "TOKEN_PARAMETER",
    "CallControl",
    "Carrier",
    "Connected",
    "Dtmf",
    "FrameTooLarge",
    "InboundEvent",
    "MalformedMessage",
    "MalformedStart",
    "Mark",
    "Media",
    "MediaFormat",
    "MediaStreamSerializer",
    "NotStarted",
    "Outbound",
    "SharedValues",
    "Start",
    "Stop",
    "StreamProtocol",
    "TcpCarrier",
    "TelephonyError",
    "UnknownEvent",
    "UnsupportedFormat",
    "Webhook",
    "WebhookCall",
    "WebhookForm",
    "parse_networks",
]
