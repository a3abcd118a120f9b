"""A telephony provider added as a plugin: its own wire format and config, the shared handler
and call pipeline, served at `/telephony/{name}/media`."""

from __future__ import annotations

import base64
import json

import websockets

from voicebot.audio import decode, encode

from .support import base_config, serve, tone
from .twilio_e2e_support import assert_nothing_left, record


async def test_a_plugin_provider_carries_a_call(tmp_path):
    cfg = base_config()
    cfg["plugins"] = [*cfg["plugins"], "tests.acme_telephony"]
    cfg["telephony"] = {"acme": {"api_key": "k", "allow_unsigned": True}}
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        assert server.runtime.config.telephony["acme"].api_key == "k"
        async with websockets.connect(f"{server.url}/telephony/acme/media") as ws:
            await ws.send(json.dumps({"type": "hello"}))
            await ws.send(
                json.dumps(
                    {"type": "session.start", "session": "S1", "call": "C1", "vars": {"From": "x"}}
                )
            )
            # the greeting arrives in A-law frames, followed by a label to echo
            audio, label = b"", None
            while label is None:
                msg = json.loads(await ws.recv())
                assert msg["session"] == "S1"
                if msg["type"] == "audio":
                    audio += base64.b64decode(msg["data"])
                elif msg["type"] == "label":
                    label = msg["label"]
            assert len(audio) >= 160 and len(audio) % 160 == 0
            assert max(abs(s) for s in memoryview(decode(audio, "alaw")).cast("h")) > 3000
            await ws.send(json.dumps({"type": "played", "label": label}))
            await rec.wait(lambda: rec.spoken)
            assert rec.spoken[0] == ("Hi.", "Hi.", False)
            # speech in A-law reaches the pipeline
            speech = encode(tone(400, 8000) + bytes(16 * 600), "alaw")
            for i in range(0, len(speech), 160):
                await ws.send(
                    json.dumps(
                        {"type": "audio", "data": base64.b64encode(speech[i : i + 160]).decode()}
                    )
                )
            await rec.wait(lambda: rec.transcripts)
            await ws.send(json.dumps({"type": "session.end"}))
            await rec.wait(lambda: rec.ended)
        (call,) = rec.calls
        assert call.transport == "acme" and call.variables["From"] == "x"
        await assert_nothing_left(server)
