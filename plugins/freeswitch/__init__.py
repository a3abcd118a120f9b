"""FreeSWITCH's `mod_audio_stream` as a carrier plugin: the dialplan runs `uuid_audio_stream
<uuid> start ws://…/freeswitch/stream mono 8k <metadata>`, so there is no webhook; the core
serves the stream at `telephony.freeswitch.path` and `/telephony/freeswitch/media`."""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import Carrier

from .serializer import FreeswitchSerializer

FREESWITCH = Carrier(
    serializer=FreeswitchSerializer,
    signature_header="Authorization",
    display_name="FreeSWITCH mod_audio_stream",
    auth_failure_status=401,  # a bearer token (STREAM_EXTRA_HEADERS), not a signature
)


@hookimpl
def register_telephony(register):
    register(FREESWITCH)
