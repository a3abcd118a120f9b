"""Twilio as a carrier plugin, registered exactly as a third-party carrier would be.

Everything Twilio-specific lives in this package: the media-stream wire format (`serializer`),
the voice and status webhooks (`webhooks`), TwiML (`twiml`), transfers and outbound calls
through the official SDK (`rest`, `sdk`) and `X-Twilio-Signature` (`signature`). The core only
sees the `Carrier` below.
"""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import Carrier, Webhook

from .serializer import TwilioSerializer
from .webhooks import status, voice

TWILIO = Carrier(
    serializer=TwilioSerializer,
    webhooks=(
        Webhook("/twilio/voice", voice, methods=("POST", "GET")),
        Webhook("/twilio/status", status, methods=("POST", "GET")),
    ),
    media_paths=("/twilio/media",),
    stream_token=True,  # only the voice webhook, behind the phone door, opens a stream
    signature_header="X-Twilio-Signature",
    display_name="Twilio",
)


@hookimpl
def register_telephony(register):
    register(TWILIO)
