"""Existing clients' audio, sent exactly as they send it, is heard right: a recorded human utterance
over real sockets, recognised by Whisper, with nothing about the format in the URL unless that
client says it (MediaRecorder WebM chunks, a second recording, base64 WAV at 44.1/48 kHz, Ogg,
MP3, 24 kHz PCM in 80 ms frames, 16 kHz PCM in 4096-byte chunks, POST /api/transcribe)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import websockets

from benchmarks.wer import wer

from .client_audio import mp3_file, ogg_opus, speech, wav_file, webm_recording
from .support import Client, Server, serve

on_module_loop = pytest.mark.asyncio(loop_scope="module")

GO = ("goforward.wav", "go forward ten meters")
SEVEN = ("cards-003.wav", "seven of clubs")  # short: a 48 kHz WAV of it fits one message


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory) -> AsyncIterator[Server]:
    config = {
        "pipeline": {"vad_hangover_ms": 300},
        "providers": {
            "vad": {"use": "silero"},
            "stt": {"use": "whisper"},
            "tts": {"use": "stub", "ms_per_char": 5},
        },
        "dialogue": {"mode": "echo", "greeting": "Hi."},
    }
    async with serve(tmp_path_factory.mktemp("clients"), config) as srv:
        yield srv


async def connect(server: Server, query: str = "", rate: int = 16000) -> Client:
    ws = await websockets.connect(f"{server.url}/ws/voice{query}", max_size=None)
    c = Client(ws, rate)
    await c.wait_for(lambda e: e.get("type") == "response" and e["final"])  # the greeting
    return c


async def paced(ws, pieces: list[bytes], every_s: float) -> None:
    """Send as a recorder produces: one piece per `every_s` of audio, in real time."""
    start = time.monotonic()
    for i, piece in enumerate(pieces):
        await ws.send(piece)
        delay = start + (i + 1) * every_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def final_transcript(c: Client, after: float = 0.0) -> str:
    _, ev = await c.wait_for(
        lambda e: e.get("type") == "transcript" and e["final"], timeout=20, after=after
    )
    return ev["text"]


@on_module_loop
async def test_media_recorder_webm_without_encoding_in_the_url(server: Server):
    c = await connect(server)
    try:
        await paced(c.ws, webm_recording(speech(GO[0], 48000)), 0.1)
        assert wer(GO[1], await final_transcript(c)) == 0
    finally:
        await c.close()


@on_module_loop
async def test_a_second_recording_mid_call_is_heard(server: Server):
    """Stop and start of a MediaRecorder: the second stream begins with its own EBML header."""
    c = await connect(server)
    try:
        await paced(c.ws, webm_recording(speech(SEVEN[0], 48000)), 0.1)
        t1, _ = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"], 20)
        await c.ws.send(json.dumps({"type": "control", "command": "end_audio"}))
        await c.wait_for(lambda e: e.get("status") == "listening", 20, after=t1)
        t2 = time.monotonic()
        await paced(c.ws, webm_recording(speech(GO[0], 48000)), 0.1)
        assert wer(GO[1], await final_transcript(c, after=t2)) == 0
        assert not [e for _, e in c.events if e.get("type") == "error"], c.types()
    finally:
        await c.close()


@on_module_loop
@pytest.mark.parametrize("rate", [44100, 48000])
async def test_base64_wav_in_a_json_audio_message(server: Server, rate: int):
    c = await connect(server)
    try:
        data = wav_file(speech(SEVEN[0], rate, pad_ms=100), rate)
        await c.ws.send(json.dumps({"type": "audio", "content": base64.b64encode(data).decode()}))
        assert wer(SEVEN[1], await final_transcript(c)) == 0
    finally:
        await c.close()


@on_module_loop
@pytest.mark.parametrize("kind", ["ogg", "mp3"])
async def test_ogg_opus_and_mp3_whole_and_streamed(server: Server, kind: str):
    c = await connect(server)
    try:
        if kind == "ogg":
            data = ogg_opus(speech(SEVEN[0], 48000, pad_ms=100))[0]
        else:
            data = mp3_file(speech(SEVEN[0], 24000, pad_ms=100), 24000)
        await c.ws.send(json.dumps({"type": "audio", "content": base64.b64encode(data).decode()}))
        t = time.monotonic()
        assert wer(SEVEN[1], await final_transcript(c)) == 0
        await c.wait_for(lambda e: e.get("status") == "listening", 20, after=t)
        t = time.monotonic()
        if kind == "ogg":  # Firefox's MediaRecorder: Ogg pages, a chunk per 100 ms
            pieces = ogg_opus(speech(GO[0], 48000), every=5)
        else:
            mp3 = mp3_file(speech(GO[0], 24000), 24000)
            pieces = [mp3[i : i + 1200] for i in range(0, len(mp3), 1200)]  # ~200 ms each
        await paced(c.ws, pieces, 0.1)
        assert wer(GO[1], await final_transcript(c, after=t)) == 0
    finally:
        await c.close()


@on_module_loop
async def test_24khz_pcm_in_80ms_frames(server: Server):
    c = await connect(server, "?sample_rate=24000", rate=24000)
    try:
        await c.stream(speech(GO[0], 24000), frame_ms=80)
        assert wer(GO[1], await final_transcript(c)) == 0
    finally:
        await c.close()


@on_module_loop
async def test_16khz_pcm_in_4096_byte_chunks(server: Server):
    c = await connect(server, "?sample_rate=16000")
    try:
        pcm = speech(GO[0], 16000)
        await paced(c.ws, [pcm[i : i + 4096] for i in range(0, len(pcm), 4096)], 4096 / 32000)
        assert wer(GO[1], await final_transcript(c)) == 0
    finally:
        await c.close()


@on_module_loop
async def test_transcribe_a_48khz_wav(server: Server):
    data = wav_file(speech(SEVEN[0], 48000, pad_ms=100), 48000)
    async with aiohttp.ClientSession() as http:
        url = f"{server.http}/api/transcribe"
        async with http.post(url, data=data, headers={"Content-Type": "audio/wav"}) as r:
            raw = await r.json()
        async with http.post(url, json={"audio": base64.b64encode(data).decode()}) as r:
            js = await r.json()
    assert wer(SEVEN[1], raw["text"]) == 0, raw
    assert wer(SEVEN[1], js["text"]) == 0, js


@on_module_loop
@pytest.mark.parametrize(
    ("data", "detected"),
    [(b"OggS\x00\x02" + bytes(20) + b"\x01\x08notopus!", "Ogg"), (b"fLaC" + bytes(60), "FLAC")],
    ids=["ogg of nothing", "flac"],
)
async def test_undecodable_audio_is_named_not_guessed(server: Server, data: bytes, detected: str):
    c = await connect(server)
    try:
        await c.ws.send(json.dumps({"type": "audio", "content": base64.b64encode(data).decode()}))
        _, err = await c.wait_for(lambda e: e.get("type") == "error")
        assert err["code"] == "unsupported_audio" and err["detected"].startswith(detected), err
        await c.ws.send(data)  # as a binary stream: told, and the call goes on
        await c.wait_for(lambda e: sum(x.get("type") == "error" for _, x in c.events) == 2)
        await c.ws.send(json.dumps({"type": "ping"}))
        await c.wait_for(lambda e: e.get("type") == "pong")
        errors = [e for _, e in c.events if e.get("type") == "error"]
        assert [e["code"] for e in errors] == ["unsupported_audio"] * 2, errors
    finally:
        await c.close()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.http}/api/transcribe", data=data) as r:
            assert r.status == 415
            assert (await r.json())["code"] == "unsupported_audio"
