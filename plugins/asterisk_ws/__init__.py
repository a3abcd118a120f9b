"""Asterisk's `chan_websocket` as a carrier plugin: Asterisk dials voicebot's media WebSocket
(`Dial(WebSocket/<connection>/c(ulaw))`, the connection defined in websocket_client.conf), so
there is no webhook; the core serves the stream at `/telephony/asterisk/media`."""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import Carrier

from .serializer import AsteriskWebSocketSerializer

ASTERISK = Carrier(
    serializer=AsteriskWebSocketSerializer,
    signature_header="Authorization",
    display_name="Asterisk chan_websocket",
    subprotocols=("media",),  # websocket_client.conf `protocols = media`
)


@hookimpl
def register_telephony(register):
    register(ASTERISK)
