"""The page at `/` in a real headless Chromium: its microphone (a fake device playing speech)
streams to `/ws/voice`, the bot's answer plays back, and the transcript shows on the page."""

from __future__ import annotations

import asyncio
import contextlib
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


def silent_wav(path, seconds: float, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * int(rate * seconds)))


class DevTools:
    """Just enough of the Chrome DevTools protocol to load, click and read the page."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.n = 0
        self.events: list[str] = []
        self.params: list[tuple[str, dict]] = []

    def _note(self, msg: dict) -> None:
        self.events.append(msg["method"])
        self.params.append((msg["method"], msg.get("params", {})))

    async def call(self, method: str, **params):
        self.n += 1
        await self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self.n:
                return msg
            if "method" in msg:
                self._note(msg)

    async def wait_event(self, method: str) -> None:
        while method not in self.events:
            msg = json.loads(await self.ws.recv())
            if "method" in msg:
                self._note(msg)

    async def eval(self, expression: str):
        r = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True)
        if "exceptionDetails" in r.get("result", {}) or "error" in r:
            raise AssertionError(f"page script failed: {r}")
        return r["result"]["result"].get("value")

    async def wait_js(self, condition: str, element: str = "log", timeout: float = 30) -> None:
        """Resolve when the JS `condition` holds, re-checked on every change of the element
        (a MutationObserver, not polling)."""
        js = f"""new Promise(resolve => {{
            const el = document.getElementById({json.dumps(element)});
            const done = () => ({condition}) && (resolve(true), true);
            if (!done()) new MutationObserver(done).observe(el, {{childList: true, subtree: true,
                characterData: true, attributes: true}});
        }})"""
        try:
            async with asyncio.timeout(timeout):
                assert await self.eval(js) is True
        except TimeoutError:
            seen = await self.eval(f"document.getElementById({json.dumps(element)}).innerText")
            raise AssertionError(f"{condition} never held; the page shows: {seen!r}") from None

    async def wait_for_text(self, element: str, text: str, timeout: float = 30) -> None:
        """Resolve when the element's text contains `text`."""
        cond = (
            f"document.getElementById({json.dumps(element)}).innerText.includes({json.dumps(text)})"
        )
        await self.wait_js(cond, element, timeout)

    async def log_text(self) -> str:
        return await self.eval("document.getElementById('log').innerText")


@contextlib.asynccontextmanager
async def browser_page(server, tmp_path, wav, path: str = "/"):
    """A headless Chromium showing the page at `path`, its fake microphone playing `wav`."""
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
        "about:blank",
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
            await dt.call("Network.enable")
            await dt.call("Log.enable")
            await dt.call("Page.navigate", url=f"{server.http}{path}")
            async with asyncio.timeout(20):
                await dt.wait_event("Page.loadEventFired")
            yield dt
    finally:
        chrome.kill()
        await chrome.wait()


async def test_talk_to_the_bot_from_the_browser_page(tmp_path):
    wav = tmp_path / "question.wav"
    await speech_wav(wav, "I would like to book a table")
    cfg = base_config(dialogue={"mode": "llm", "greeting": "Hello there."})
    cfg["plugins"] = []
    cfg["providers"]["vad"] = {"use": "webrtc"}
    cfg["providers"]["stt"] = {"use": "stub", "text": "I would like to book a table"}
    async with serve(tmp_path, cfg) as server, browser_page(server, tmp_path, wav) as dt:
        assert await dt.eval("document.getElementById('hint').innerText") != ""
        await dt.eval("document.getElementById('start').click()")
        await dt.wait_for_text("log", "bot: Hello there.")
        # while the fake microphone speaks, the page shows it hears something
        await dt.wait_js("document.getElementById('hearing').classList.contains('on')", "hearing")
        # the fake microphone's speech reaches the server, and the answer comes back
        await dt.wait_for_text("log", "you: I would like to book a table")
        await dt.wait_for_text("log", "bot: You said I would like to book a table")
        await dt.wait_for_text("log", "voice-to-voice")  # a spoken turn has the figure
        text = await dt.log_text()
        assert "error" not in text, text
        await dt.eval("document.getElementById('stop').click()")
        await asyncio.wait_for(server.runtime.no_calls.wait(), 10)
        # nothing the page asked for was missing (the favicon is inline)
        missing = [
            p["response"]["url"]
            for m, p in dt.params
            if m == "Network.responseReceived" and p["response"]["status"] >= 400
        ]
        errors = [
            p["entry"]["text"]
            for m, p in dt.params
            if m == "Log.entryAdded" and p["entry"]["level"] == "error"
        ]
        assert not missing and not errors, (missing, errors)


async def test_typed_and_keyed_turns_and_a_slow_typist(tmp_path):
    """No voice-to-voice figure for typed, keyed or no-input turns; key presses are echoed; and
    a caller typing slowly is not asked whether they are still there."""
    wav = tmp_path / "quiet.wav"
    silent_wav(wav, seconds=2)
    cfg = base_config(dialogue={"mode": "echo", "greeting": "Hi.", "noinput_timeout_ms": 1000})
    cfg["plugins"] = []
    cfg["providers"]["vad"] = {"use": "webrtc"}
    async with serve(tmp_path, cfg) as server, browser_page(server, tmp_path, wav) as dt:
        await dt.eval("document.getElementById('start').click()")
        await dt.wait_js("document.getElementById('state').innerText === 'listening'", "state")
        # type "hello there" a key every 300 ms (3.3 s: three no-input timeouts), then send it
        await dt.eval("""new Promise(resolve => {
            const box = document.getElementById('text'), word = 'hello there';
            const tick = setInterval(() => {
                box.value += word[box.value.length];
                box.dispatchEvent(new Event('input'));
                if (box.value === word) {
                    clearInterval(tick);
                    document.getElementById('typed').requestSubmit();
                    resolve(true);
                }
            }, 300);
        })""")
        assert "Are you still there?" not in await dt.log_text()
        await dt.wait_for_text("log", "bot: You said: hello there.")
        # two no-input prompts later, the typed turn's and the first prompt's metrics are in
        await dt.wait_js(
            "document.getElementById('log').innerText.split('Are you still there?').length > 2"
        )
        await dt.eval("document.querySelector('#keys button').click()")  # the key "1"
        await dt.wait_for_text("log", "you pressed 1")
        await dt.wait_for_text("log", "bot: You said: I pressed 1.")
        await dt.wait_js(
            "document.getElementById('log').innerText.split('Are you still there?').length > 3"
        )
        assert "voice-to-voice" not in await dt.log_text()


async def test_an_interrupted_bot_line_shows_what_was_heard(tmp_path):
    wav = tmp_path / "question.wav"
    await speech_wav(wav, "I would like to book a table")
    greeting = "Welcome to the test line. This is a very long greeting. It goes on and on."
    cfg = base_config(dialogue={"mode": "llm", "greeting": greeting})
    cfg["plugins"] = []
    cfg["providers"]["vad"] = {"use": "webrtc"}
    cfg["providers"]["stt"] = {"use": "stub", "text": "I would like to book a table"}
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 60}  # 4.5 s: the caller cuts in
    async with serve(tmp_path, cfg) as server, browser_page(server, tmp_path, wav) as dt:
        await dt.eval("document.getElementById('start').click()")
        await dt.wait_for_text("log", "(interrupted")
        struck = await dt.eval("document.querySelector('#log .unheard').innerText")
        assert struck and greeting.endswith(struck.strip()), struck
        await dt.wait_for_text("log", "you: I would like to book a table")
