"""Twilio Media Streams, registered exactly as a third-party carrier would be."""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import Carrier, Webhook
from voicebot.telephony.twilio import TwilioSerializer
from voicebot.transports.twilio_webhooks import status, voice

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
