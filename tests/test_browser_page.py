"""The page at `/` in a real headless Chromium: its microphone (a fake device playing speech)
streams to `/ws/voice`, the bot's answer plays back, and the transcript shows on the page."""

from __future__ import annotations

import asyncio
import json
import shutil
import wave

import pytest
import websockets

from voicebot.providers import AudioFormat
from voicebot_plugins.tts_espeak import EspeakTTS

from .support import base_config, serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


async def speech_wav(path, text: str) -> None:
    tts = EspeakTTS(EspeakTTS.Options())
    await tts.start()
    chunks = [c async for c in tts.synthesize(text, AudioFormat())]
    rate = chunks[0].sample_rate
    pcm = bytes(2 * rate) + b"".join(c.data for c in chunks) + bytes(2 * rate * 4)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


class DevTools:
    """Just enough of the Chrome DevTools protocol to load, click and read the page."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.n = 0
        self.events: list[str] = []

    async def call(self, method: str, **params):
        self.n += 1
        await self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self.n:
                return msg
            if "method" in msg:
                self.events.append(msg["method"])

    async def wait_event(self, method: str) -> None:
        while method not in self.events:
            msg = json.loads(await self.ws.recv())
            if "method" in msg:
                self.events.append(msg["method"])

    async def eval(self, expression: str):
        r = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True)
        if "exceptionDetails" in r.get("result", {}) or "error" in r:
            raise AssertionError(f"page script failed: {r}")
        return r["result"]["result"].get("value")

    async def wait_for_text(self, element: str, text: str, timeout: float = 30) -> None:
        """Resolve when the element's text contains `text` (a MutationObserver, not polling)."""
        js = f"""new Promise(resolve => {{
            const el = document.getElementById({json.dumps(element)});
            const done = () => el.innerText.includes({json.dumps(text)}) && (resolve(true), true);
            if (!done()) new MutationObserver(done).observe(el, {{childList: true, subtree: true}});
        }})"""
        try:
            async with asyncio.timeout(timeout):
                assert await self.eval(js) is True
        except TimeoutError:
            seen = await self.eval(f"document.getElementById({json.dumps(element)}).innerText")
            raise AssertionError(f"{text!r} never appeared; the page shows: {seen!r}") from None


async def test_talk_to_the_bot_from_the_browser_page(tmp_path):
    wav = tmp_path / "question.wav"
    await speech_wav(wav, "I would like to book a table")
    cfg = base_config(dialogue={"mode": "llm", "greeting": "Hello there."})
    cfg["plugins"] = []
    cfg["providers"]["vad"] = {"use": "webrtc"}
    cfg["providers"]["stt"] = {"use": "stub", "text": "I would like to book a table"}
    async with serve(tmp_path, cfg) as server:
        chrome = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required",
            "--remote-debugging-port=0",
            f"{server.http}/",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(30):
                line = b""
                while b"DevTools listening on" not in line:
                    line = await chrome.stderr.readline()
                    assert line, "chromium exited before opening DevTools"
            browser_url = line.decode().split("listening on ")[1].strip()
            port = browser_url.split(":")[2].split("/")[0]
            async with websockets.connect(browser_url, max_size=None) as bws:
                targets = (await DevTools(bws).call("Target.getTargets"))["result"]
            page = next(t for t in targets["targetInfos"] if t["type"] == "page")
            page_url = f"ws://127.0.0.1:{port}/devtools/page/{page['targetId']}"
            async with websockets.connect(page_url, max_size=None) as ws:
                dt = DevTools(ws)
                await dt.call("Page.enable")
                await dt.call("Page.navigate", url=f"{server.http}/")
                async with asyncio.timeout(20):
                    await dt.wait_event("Page.loadEventFired")
                await dt.eval("document.getElementById('start').click()")
                await dt.wait_for_text("log", "bot: Hello there.")
                # the fake microphone's speech reaches the server, and the answer comes back
                await dt.wait_for_text("log", "you: I would like to book a table")
                await dt.wait_for_text("log", "bot: You said I would like to book a table")
                await dt.wait_for_text("log", "voice-to-voice")
                text = await dt.eval("document.getElementById('log').innerText")
                assert "error" not in text, text
                await dt.eval("document.getElementById('stop').click()")
                await asyncio.wait_for(server.runtime.no_calls.wait(), 10)
        finally:
            chrome.kill()
            await chrome.wait()
