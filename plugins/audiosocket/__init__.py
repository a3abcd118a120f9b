"""Asterisk AudioSocket as a telephony plugin: a TCP door, registered like any carrier.

`AudioSocket(uuid,host:port)` in a dialplan (or `Dial(AudioSocket/host:port/uuid)`) connects the
call to `telephony.audiosocket.host:port`; the core's TCP door runs it through the same call
pipeline as every phone call. Only the wire format lives here (`protocol`).
"""

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import TcpCarrier

from .protocol import AudioSocketProtocol

AUDIOSOCKET = TcpCarrier(protocol=AudioSocketProtocol, display_name="Asterisk AudioSocket")


@hookimpl
def register_telephony(register):
    register(AUDIOSOCKET)
