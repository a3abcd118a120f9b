"""Twilio Media Streams, registered exactly as a third-party telephony provider would be."""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.twilio import TwilioSerializer


@hookimpl
def register_transports(register):
    register("twilio", TwilioSerializer)
