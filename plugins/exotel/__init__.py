"""Exotel as a carrier plugin, registered exactly as a third-party carrier would be.

An Exotel call reaches voicebot through the *Voicebot* applet of a call flow (App Bazaar). Its
URL is either our `wss://…/exotel/media` directly, or `https://…/exotel/voicebot`, which Exotel
fetches first and which answers `{"url": "wss://…/exotel/media?voicebot_stream_token=…"}` with
a one-time token (Exotel passes URL query parameters back as `start.custom_parameters`).

Exotel signs nothing; it documents two protections, an IP allowlist (arranged with Exotel, done
in a firewall) and HTTP basic auth written into the applet's URL
(`wss://USER:PASSWORD@host/…`, sent as `Authorization: Basic`). voicebot checks the basic auth
on both routes, in constant time, when `telephony.exotel.username`/`password` are set: unlike an
allowlist, it is something the server itself can verify.

There is no call-control API for a live Exotel call: when the bot ends the call it closes the
stream, and the flow goes on to the applet after *Voicebot*. A flow's `transfer` records the
target for the call's `CallSid` and ends the stream; a *Passthru* applet
(`/exotel/transfer-pending`) and a *Connect* applet whose number comes from a URL
(`/exotel/transfer-target`) then carry it out (`control.py`, `webhooks.py`).
"""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import Carrier, Webhook

from .serializer import ExotelSerializer
from .webhooks import transfer_pending, transfer_target, voicebot

EXOTEL = Carrier(
    serializer=ExotelSerializer,
    webhooks=(
        Webhook("/exotel/voicebot", voicebot, methods=("GET", "POST")),
        Webhook("/exotel/transfer-pending", transfer_pending, methods=("GET", "POST")),
        Webhook("/exotel/transfer-target", transfer_target, methods=("GET", "POST")),
    ),
    media_paths=("/exotel/media",),
    stream_token=False,  # a static wss:// applet URL has no webhook: basic auth admits it
    signature_header="Authorization",
    display_name="Exotel",
)


@hookimpl
def register_telephony(register):
    register(EXOTEL)
