"""Telnyx as a carrier plugin, registered exactly as a third-party carrier would be.

voicebot answers Telnyx calls with TeXML (`<Connect><Stream bidirectionalMode="rtp">`) rather
than Call Control's `streaming_start` command: the answer is then a document returned by the
webhook, as for Twilio, with no REST round trip before the caller hears anything, and the stream
token travels as a `<Parameter>` back in `start.custom_parameters`. Transfers and hang-ups go
through the TeXML REST API (`POST /texml/Accounts/{account}/Calls/{call}`) with the official
`telnyx` SDK. Webhooks are verified with Telnyx's Ed25519 signature (`signature`).
"""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import Carrier, Webhook

from .serializer import TelnyxSerializer
from .webhooks import status, voice

TELNYX = Carrier(
    serializer=TelnyxSerializer,
    webhooks=(
        # POST only: the Ed25519 signature covers the body, never a GET's query string
        Webhook("/telnyx/voice", voice),
        Webhook("/telnyx/status", status),
    ),
    media_paths=("/telnyx/media",),
    stream_token=True,  # Telnyx does not sign the WebSocket upgrade: the token vouches for it
    signature_header="telnyx-signature-ed25519",
    display_name="Telnyx",
)


@hookimpl
def register_telephony(register):
    register(TELNYX)
