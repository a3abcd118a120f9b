"""Existing browser clients, as their own documents write them, in a real headless Chromium: one
records with `MediaRecorder` (WebM/Opus, nothing about the format in the URL) from a fake
microphone playing a recorded human voice; one plays the reply through a MediaSource `audio/mpeg`
SourceBuffer. The media is the browser's own: its encoder, its demuxer, its player."""

from __future__ import annotations

import asyncio
import wave

import numpy as np
import pytest

from benchmarks.wer import wer

from .client_audio import speech
from .support import serve
from .test_browser_page import CHROMIUM, browser_page

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

SAID = "go forward ten meters"

# The client of the "Voice Connector" (and, with end_audio, the Manag'IA) documents, verbatim in
# what it sends: MediaRecorder's default mime type, start(100), every non-empty blob as is.
RECORDER = """new Promise((resolve, reject) => {
    window.seen = [];
    const ws = new WebSocket(`ws://${location.host}/ws/voice`);
    ws.onmessage = (e) => { if (typeof e.data === 'string') seen.push(JSON.parse(e.data)); };
    ws.onerror = reject;
    ws.onopen = () => navigator.mediaDevices.getUserMedia({ audio: true }).then(stream => {
        const rec = new MediaRecorder(stream);
        rec.ondataavailable = (e) => {
            if (e.data.size > 0) { ws.send(e.data); resolve(e.data.type); }
        };
        rec.start(100);
    }, reject);
})"""

# MediaSourcePlayer.tsx: a SourceBuffer of `audio/mpeg`, every binary message appended in order.
PLAYER = """new Promise((resolve, reject) => {
    window.played = { appended: 0, errors: [], ended: false };
    const audio = document.createElement('audio');
    document.body.appendChild(audio);
    window.player = audio;
    const ms = new MediaSource();
    audio.src = URL.createObjectURL(ms);
    const queue = [];
    let sb = null;
    const pump = () => {
        if (!sb || sb.updating || !queue.length) return;
        try { sb.appendBuffer(queue.shift()); } catch (e) { played.errors.push(String(e)); }
    };
    ms.addEventListener('sourceopen', () => {
        sb = ms.addSourceBuffer('audio/mpeg');
        sb.addEventListener('updateend', () => { played.appended += 1; pump(); });
        sb.addEventListener('error', () => played.errors.push('sourcebuffer error'));
        const ws = new WebSocket(`ws://${location.host}/ws/voice?output=mp3`);
        ws.binaryType = 'arraybuffer';
        ws.onmessage = (e) => {
            if (typeof e.data !== 'string') { queue.push(e.data); pump();
                if (audio.paused) audio.play().catch(err => played.errors.push(String(err))); }
        };
        resolve(MediaSource.isTypeSupported('audio/mpeg'));
    });
    audio.addEventListener('error', () => played.errors.push('media error ' + audio.error.code));
})"""


TRANSCRIPT = """new Promise(resolve => {
    const look = () => {
        const t = seen.find(e => e.type === 'transcript' && e.final);
        t ? resolve(t.text) : setTimeout(look, 50);
    };
    look();
})"""

PLAYING = """new Promise(resolve => {
    const look = () => player.currentTime > 1.0 || played.errors.length
        ? resolve(player.currentTime) : setTimeout(look, 50);
    look();
})"""


def mic_wav(path) -> None:
    """What the fake microphone plays (it loops the file): speech, then a long silence."""
    pcm = speech("goforward.wav", 16000, pad_ms=1000) + bytes(2 * 16000 * 6)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)


def stack() -> dict:
    return {
        "pipeline": {"vad_hangover_ms": 300},
        "providers": {
            "vad": {"use": "silero"},
            "stt": {"use": "whisper"},
            "tts": {"use": "stub", "ms_per_char": 40},
        },
        "dialogue": {"mode": "echo", "greeting": "Hello there, this is the test line."},
    }


async def test_media_recorder_client_is_heard(tmp_path):
    wav = tmp_path / "mic.wav"
    mic_wav(wav)
    async with serve(tmp_path, stack()) as server, browser_page(server, tmp_path, wav) as dt:
        mime = await dt.eval(RECORDER)
        assert mime.startswith("audio/webm"), mime
        async with asyncio.timeout(40):
            heard = await dt.eval(TRANSCRIPT)
        assert wer(SAID, heard) == 0, heard
        errors = await dt.eval("JSON.stringify(seen.filter(e => e.type === 'error'))")
        assert errors == "[]", errors


async def test_media_source_mp3_player_plays_the_reply(tmp_path):
    wav = tmp_path / "quiet.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(16000 * 2, "<i2").tobytes())
    async with serve(tmp_path, stack()) as server, browser_page(server, tmp_path, wav) as dt:
        assert await dt.eval(PLAYER) is True  # the browser takes audio/mpeg in MediaSource
        # the greeting (~1.4 s) plays: the element's clock runs on the appended audio
        async with asyncio.timeout(30):
            played = await dt.eval(PLAYING)
        state = await dt.eval("JSON.stringify(played)")
        assert played > 1.0, state
        assert '"errors":[]' in state and '"appended":0' not in state, state


async def test_the_page_records_with_media_recorder(tmp_path):
    """The bundled page at `/?record=webm`: its microphone goes out as MediaRecorder's WebM."""
    wav = tmp_path / "mic.wav"
    mic_wav(wav)
    async with (
        serve(tmp_path, stack()) as server,
        browser_page(server, tmp_path, wav, "/?record=webm") as dt,
    ):
        await dt.eval("document.getElementById('start').click()")
        await dt.wait_for_text("log", "you: ", timeout=40)
        text = await dt.log_text()
        line = next(x for x in text.splitlines() if x.startswith("you: "))
        assert wer(SAID, line.removeprefix("you: ")) == 0, text
        assert "error" not in text
