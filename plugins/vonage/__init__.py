"""Vonage as a carrier plugin, registered exactly as a third-party carrier would be.

The answer webhook returns an NCCO that connects the call to our WebSocket (`connect` →
`websocket`, `audio/l16;rate=16000`), passing the call's UUID and the one-time stream token as
`headers`, which Vonage sends back in its first message (`websocket:connected`). Audio flows as
binary 16 kHz L16 frames; marks are `notify` commands and clears `clear` (`serializer`).
Webhooks carry a JWT signed with the account's signature secret (`signature`); transfers and
hang-ups use the official `vonage` SDK (`rest`).
"""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import Carrier, Webhook

from .serializer import VonageSerializer
from .webhooks import answer, event, read_json

VONAGE = Carrier(
    serializer=VonageSerializer,
    webhooks=(
        Webhook("/vonage/answer", answer, methods=("POST",), read=read_json),
        Webhook("/vonage/event", event, methods=("POST",), read=read_json),
    ),
    media_paths=("/vonage/media",),
    stream_token=True,  # the WebSocket upgrade is not signed: the token vouches for the stream
    signature_header="Authorization",
    display_name="Vonage",
)


@hookimpl
def register_telephony(register):
    register(VONAGE)
