"""Plivo as a carrier plugin, registered exactly as a third-party carrier would be.

The answer URL returns Plivo XML `<Stream bidirectional="true" keepCallAlive="true">`; the
media WebSocket speaks Plivo's audio-stream protocol (`serializer`); webhooks are verified with
`X-Plivo-Signature-V3` (`signature`); transfers and hang-ups use Plivo's Call API (`rest`).
"""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import Carrier, Webhook

from .serializer import PlivoSerializer
from .webhooks import answer, hangup, transfer

PLIVO = Carrier(
    serializer=PlivoSerializer,
    webhooks=(
        Webhook("/plivo/answer", answer, methods=("POST", "GET")),
        Webhook("/plivo/hangup", hangup, methods=("POST", "GET")),
        Webhook("/plivo/transfer", transfer, methods=("POST", "GET")),
    ),
    media_paths=("/plivo/media",),
    stream_token=True,  # the WebSocket upgrade is not signed: the token vouches for the stream
    signature_header="X-Plivo-Signature-V3",
    display_name="Plivo",
)


@hookimpl
def register_telephony(register):
    register(PLIVO)
