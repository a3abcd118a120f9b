"""Vonage end to end over real sockets: the answer webhook with a valid and a forged signed JWT
(wrong secret, tampered body, stale `iat`); a media stream in Vonage's shapes
(`websocket:connected` with the NCCO headers, binary 16 kHz L16 frames, `websocket:dtmf`,
`notify` → `websocket:notify`, `clear` → `websocket:cleared`) carrying a whole conversation with
a barge-in; transfer and hang-up through the official SDK against a loopback HTTPS Voice API."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import ssl
import time
import uuid

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .carrier_e2e import converse
from .carrier_phone import CarrierPhone, Dialect, Out
from .support import base_config, serve
from .twilio_e2e_support import assert_nothing_left, record

SECRET = "vonage-signature-secret-0123456789"
APP_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
CALL = "63f61863-4a51-4f6b-86e1-46edebcf9356"
ANSWER = {
    "to": "447700900000",
    "from": "447700900001",
    "uuid": CALL,
    "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
    "region_url": "https://api-eu-1.vonage.com",
}
FLOW = "nodes:\n  hello:\n    say: Hi.\n    next: bye\n  bye:\n    hangup: done\n"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


class Vonage(Dialect):
    encoding, rate = "pcm_s16le", 16000
    on_clear = "drop"

    def start(self, phone: CarrierPhone) -> str:
        return json.dumps(
            {
                "event": "websocket:connected",
                "content-type": "audio/l16;rate=16000",
                **phone.parameters,
            }
        )

    def media(self, phone: CarrierPhone, payload: bytes) -> bytes:
        return payload

    def dtmf(self, phone: CarrierPhone, digit: str) -> str:
        return json.dumps({"event": "websocket:dtmf", "digit": digit, "duration": 260})

    def outbound(self, phone: CarrierPhone, raw: str | bytes) -> Out:
        if isinstance(raw, bytes):
            return Out("media", audio=raw)
        msg = json.loads(raw)
        if msg.get("action") == "notify":
            return Out("mark", name=msg["payload"]["name"])
        if msg.get("action") == "clear":
            assert msg == {"action": "clear"}
            return Out("clear")
        return Out("other", raw=msg)

    def echo(self, phone: CarrierPhone, name: str) -> str:
        return json.dumps({"event": "websocket:notify", "payload": {"name": name}})

    def cleared(self, phone: CarrierPhone) -> str:
        return json.dumps({"event": "websocket:cleared"})


def signed(body: bytes, secret: str = SECRET, iat: float | None = None) -> dict[str, str]:
    claims = {
        "iat": int(time.time() if iat is None else iat),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": "abcd1234",
        "application_id": APP_ID,
    }
    token = jwt.encode(claims, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def vonage_config(tmp_path=None, api_host: str = "", flow: bool = False, **vonage) -> dict:
    cfg = base_config()
    if flow:
        (tmp_path / "flows").mkdir(exist_ok=True)
        (tmp_path / "flows" / "main.yaml").write_text(FLOW)
        cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": "flows", "start": "main"})
    options = {"signature_secret": SECRET, "application_id": APP_ID, "private_key": PEM}
    if api_host:
        options["api_host"] = api_host
    cfg["telephony"] = {"vonage": {**options, **vonage}}
    return cfg


async def post(server, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.http}/vonage/answer", data=body, headers=headers) as r:
            return r.status, await r.text()


async def answered_call(server) -> CarrierPhone:
    body = json.dumps(ANSWER).encode()
    status, text = await post(server, body, signed(body))
    assert status == 200, text
    ((connect,),) = [json.loads(text)]
    (endpoint,) = connect["endpoint"]
    assert connect["action"] == "connect" and endpoint["type"] == "websocket"
    assert endpoint["content-type"] == "audio/l16;rate=16000"
    assert endpoint["uri"] == f"{server.url}/vonage/media"
    phone = await CarrierPhone.dial(
        endpoint["uri"], Vonage(), call_id=CALL, parameters=endpoint["headers"]
    )
    await phone.start()
    return phone


async def test_vonage_answer_jwt_is_checked(tmp_path):
    async with serve(tmp_path, vonage_config()) as server:
        body = json.dumps(ANSWER).encode()
        good = signed(body)
        forged = json.dumps({**ANSWER, "from": "19990001111"}).encode()
        status, text = await post(server, forged, good)  # the body no longer matches its hash
        assert status == 403 and json.loads(text)["code"] == "bad_signature"
        wrong = signed(body, secret="not-the-secret-but-just-as-long-0123")
        assert (await post(server, body, wrong))[0] == 403
        assert (await post(server, body, signed(body, iat=time.time() - 600)))[0] == 403
        unsigned = jwt.encode({"iat": int(time.time())}, "", algorithm="none")
        headers = {"Authorization": f"Bearer {unsigned}"}
        assert (await post(server, body, headers))[0] == 403  # alg=none is never accepted
        assert (await post(server, body, {"Content-Type": "application/json"}))[0] == 403
        status, text = await post(server, body, good)
        assert status == 200 and json.loads(text)[0]["action"] == "connect"


async def test_vonage_call_end_to_end(tmp_path):
    async with serve(tmp_path, vonage_config()) as server:
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(lambda: phone.media)
        (call,) = rec.calls
        assert call.transport == "vonage" and call.variables["call_sid"] == CALL
        assert call.variables["From"] == ANSWER["from"]
        await converse(server, phone, rec)
        await phone.stop()  # Vonage has no stop message: the socket closes
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await assert_nothing_left(server)


def tls_for_loopback(tmp_path):
    """A self-signed certificate for 127.0.0.1: the SDK only speaks https."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(KEY, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "api.crt", tmp_path / "api.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_text(PEM)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


@pytest.fixture
async def fake_vonage(tmp_path, monkeypatch):
    """Vonage's Voice API on https://127.0.0.1 (trusted through REQUESTS_CA_BUNDLE, which the
    SDK's `requests` session honours): records call modifications and their JWT."""
    seen: list[tuple[str, dict, dict]] = []

    async def modify(request: web.Request) -> web.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, KEY.public_key(), algorithms=["RS256"])
        seen.append((request.path, await request.json(), claims))
        if request.match_info["uuid"] == "gone":
            return web.json_response({"title": "Not Found"}, status=404)
        return web.Response(status=204)

    context, cert_file = tls_for_loopback(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    app = web.Application()
    app.router.add_put("/v1/calls/{uuid}", modify)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}", seen
    await runner.cleanup()


async def test_vonage_transfer_through_the_sdk(tmp_path, fake_vonage):
    api_host, seen = fake_vonage
    cfg = vonage_config(api_host=api_host, transfer_caller_id="447700900000")
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(lambda: phone.media)
        assert await rec.calls[0].io.transfer("+447700900123") is True
        ((path, body, claims),) = seen
        assert path == f"/v1/calls/{CALL}" and claims["application_id"] == APP_ID
        assert body["action"] == "transfer" and body["destination"]["type"] == "ncco"
        (connect,) = body["destination"]["ncco"]
        assert connect["action"] == "connect" and connect["from"] == "447700900000"
        assert connect["endpoint"] == [{"type": "phone", "number": "447700900123"}]
        await phone.stop()
        await rec.wait(lambda: rec.ended)
        await assert_nothing_left(server)


async def test_vonage_bot_hang_up_goes_through_the_sdk(tmp_path, fake_vonage):
    api_host, seen = fake_vonage
    async with serve(tmp_path, vonage_config(tmp_path, api_host=api_host, flow=True)) as server:
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(phone.idle)  # "Hi." heard; the flow hangs up
        assert await phone.wait_closed() == 1000
        assert [(p, b) for p, b, _ in seen] == [(f"/v1/calls/{CALL}", {"action": "hangup"})]
        await rec.wait(lambda: rec.ended)
        await assert_nothing_left(server)
