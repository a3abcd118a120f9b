"""A second carrier, as a third party would write it (the docs/telephony.md example): A-law
audio, its own field names, its own config section, its own answer webhook and hang-up through
its own REST API; one plugin module and no core edit.

The answer webhook (`POST /acme/answer`, a JSON body) says where to stream the call, with the
caller's details and a one-time stream token as stream variables; when the bot ends a call, the
call control asks Acme's API to hang it up (`POST {api_base_url}/calls/{call}/hangup`).
"""

import base64
import json
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from aiohttp import web

from voicebot.hookspecs import hookimpl
from voicebot.telephony.carrier import (
    TOKEN_PARAMETER,
    Carrier,
    Connected,
    Dtmf,
    MalformedMessage,
    Mark,
    Media,
    MediaFormat,
    MediaStreamSerializer,
    Start,
    Stop,
    TelephonyError,
    UnknownEvent,
    Webhook,
)


class AcmeSerializer(MediaStreamSerializer):
    name = "acme"

    @dataclass
    class Options:
        api_key: str = ""
        api_base_url: str = ""  # Acme's REST API, for hang-ups
        allow_unsigned: bool = False  # no signature check: open the phone door explicitly

    def parse(self, message):
        try:
            msg = json.loads(message)
            kind = msg["type"]
            if kind == "audio":
                return Media(base64.b64decode(msg["data"], validate=True))
            if kind == "session.start":
                return Start(
                    stream_id=msg["session"],
                    call_id=msg["call"],
                    custom_parameters=msg.get("vars", {}),
                    media_format=MediaFormat("alaw", 8000),
                )
            if kind == "digit":
                return Dtmf(msg["digit"])
            if kind == "played":
                return Mark(msg["label"])
            if kind == "session.end":
                return Stop()
            if kind == "hello":
                return Connected()
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedMessage(str(exc)) from None
        raise UnknownEvent(kind)

    def render_media(self, audio):
        return json.dumps(
            {
                "type": "audio",
                "session": self._require_stream(),
                "data": base64.b64encode(audio).decode(),
            }
        )

    def render_mark(self, name):
        return json.dumps({"type": "label", "session": self._require_stream(), "label": name})

    def render_clear(self):
        return json.dumps({"type": "flush", "session": self._require_stream()})

    @classmethod
    def call_control(cls, options):
        return AcmeControl(options.api_base_url, options.api_key) if options.api_base_url else None


class AcmeControl:
    """Acme's REST API: it can hang a call up, not transfer it."""

    def __init__(self, base_url, api_key):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.session = None

    async def transfer(self, start, target):
        raise TelephonyError("Acme calls cannot be transferred")

    async def hangup(self, start):
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        url = f"{self.base_url}/calls/{quote(start.call_id, safe='')}/hangup"
        try:
            async with self.session.post(url, headers=self.headers) as resp:
                if resp.status >= 400:
                    raise TelephonyError(f"Acme refused to hang up: HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TelephonyError(f"Acme API unreachable: {exc}") from exc

    async def aclose(self):
        if self.session is not None:
            await self.session.close()


async def read_json(request):
    """Acme posts JSON; what its signature would cover is the body (none is checked here)."""
    body = await request.read()
    try:
        params = json.loads(body)
    except ValueError:
        params = None
    if not isinstance(params, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"type": "error", "code": "bad_json", "message": "a JSON object"}),
            content_type="application/json",
        )
    return {str(k): str(v) for k, v in params.items()}, [], body


async def answer(call):
    if call.at_capacity():
        return web.json_response({"action": "busy"})
    variables = {"From": call.params.get("from", ""), "To": call.params.get("to", "")}
    token = call.mint_token(variables, call_id=call.params.get("call", ""))
    return web.json_response(
        {"action": "stream", "url": call.media_url(), "vars": {TOKEN_PARAMETER: token}}
    )


ACME = Carrier(
    serializer=AcmeSerializer, webhooks=(Webhook("/acme/answer", answer, read=read_json),)
)


@hookimpl
def register_telephony(register):
    register(ACME)
