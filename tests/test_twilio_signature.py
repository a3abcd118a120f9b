"""X-Twilio-Signature checks against signatures computed here from Twilio's published recipe:
base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 ... in sorted name order))."""

import base64
import hashlib
import hmac

from voicebot_plugins.twilio.signature import url_variants, validate_signature

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "To": "+18005551212",
    "From": "+14158675310",
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "Caller": "+14158675310",
}


def twilio_sign(token: str, url: str, params: dict[str, str]) -> str:
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_valid_signature():
    sig = twilio_sign(TOKEN, URL, PARAMS)
    assert validate_signature(TOKEN, sig, URL, PARAMS)
    assert validate_signature(TOKEN, sig, URL, list(PARAMS.items()))


def test_tampered_body_is_refused():
    sig = twilio_sign(TOKEN, URL, PARAMS)
    assert not validate_signature(TOKEN, sig, URL, {**PARAMS, "Digits": "9999"})
    assert not validate_signature(TOKEN, sig, URL, {**PARAMS, "Extra": "x"})
    assert not validate_signature(TOKEN, sig, URL.replace("foo=1", "foo=2"), PARAMS)


def test_wrong_token_is_refused():
    sig = twilio_sign("another-token", URL, PARAMS)
    assert not validate_signature(TOKEN, sig, URL, PARAMS)


def test_missing_or_empty_signature_is_refused():
    assert not validate_signature(TOKEN, None, URL, PARAMS)
    assert not validate_signature(TOKEN, "", URL, PARAMS)
    assert not validate_signature("", twilio_sign("", URL, PARAMS), URL, PARAMS)


def test_non_ascii_signature_header_does_not_crash():
    assert not validate_signature(TOKEN, "é" * 28, URL, PARAMS)


def test_https_signed_without_port_validates_with_port():
    sig = twilio_sign(TOKEN, "https://mycompany.com/myapp.php?foo=1&bar=2", PARAMS)
    assert validate_signature(TOKEN, sig, "https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS)


def test_https_signed_with_port_validates_without_port():
    sig = twilio_sign(TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS)
    assert validate_signature(TOKEN, sig, "https://mycompany.com/myapp.php?foo=1&bar=2", PARAMS)


def test_explicit_non_default_port_is_kept():
    url = "https://mycompany.com:8443/voice"
    sig = twilio_sign(TOKEN, url, PARAMS)
    assert validate_signature(TOKEN, sig, url, PARAMS)
    assert not validate_signature(TOKEN, sig, "https://mycompany.com/voice", PARAMS)


def test_url_variants():
    assert set(url_variants("https://a.example/x?y=1")) == {
        "https://a.example/x?y=1",
        "https://a.example:443/x?y=1",
    }
    assert set(url_variants("wss://a.example:443/m")) == {
        "wss://a.example:443/m",
        "wss://a.example/m",
    }


def test_repeated_parameter_values_are_sorted():
    pairs = [("B", "2"), ("A", "z"), ("A", "a")]
    data = "https://h/x" + "AaAzB2"
    sig = base64.b64encode(hmac.new(b"t", data.encode(), hashlib.sha1).digest()).decode()
    assert validate_signature("t", sig, "https://h/x", pairs)


def test_json_body_with_body_sha256():
    body = b'{"CallSid":"CA1"}'
    url = "https://h/hook?bodySHA256=" + hashlib.sha256(body).hexdigest()
    sig = twilio_sign(TOKEN, url, {})
    assert validate_signature(TOKEN, sig, url, body=body)
    assert not validate_signature(TOKEN, sig, url, body=body + b" ")
