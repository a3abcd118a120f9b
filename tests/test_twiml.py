"""TwiML documents, checked by parsing them as XML."""

import xml.etree.ElementTree as ET

from voicebot_plugins.twilio import twiml


def test_connect_stream_with_parameters():
    doc = twiml.connect_stream(
        "wss://bot.example.com/twilio/media",
        {"From": "+15550001111", "To": "+15550002222", "CallSid": "CA1", "Empty": ""},
    )
    root = ET.fromstring(doc)
    assert root.tag == "Response"
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://bot.example.com/twilio/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"From": "+15550001111", "To": "+15550002222", "CallSid": "CA1"}


def test_hostile_values_are_escaped():
    evil = '"/><Hangup/><Parameter name="x" value="<&>'
    root = ET.fromstring(twiml.connect_stream("wss://h/m?a=1&b=2", {"From": evil}))
    assert root.find(".//Hangup") is None
    stream = root.find("./Connect/Stream")
    assert stream.get("url") == "wss://h/m?a=1&b=2"
    (param,) = stream.findall("Parameter")
    assert param.get("value") == evil


def test_reject():
    root = ET.fromstring(twiml.reject("busy"))
    assert root.find("Reject").get("reason") == "busy"


def test_dial_number_and_sip():
    dial = ET.fromstring(twiml.dial("+15551234567", caller_id="+15550000000")).find("Dial")
    assert dial.text == "+15551234567"
    assert dial.get("callerId") == "+15550000000"
    dial = ET.fromstring(twiml.dial("sip:agent@pbx.example.com?x=1&y=2")).find("Dial")
    assert dial.get("callerId") is None
    assert dial.find("Sip").text == "sip:agent@pbx.example.com?x=1&y=2"
