"""Fuzzing the `/ws/voice` message parsers (hypothesis) and a live server (seeded mutations):
no input crashes a parser with anything but its own error, the server keeps serving and leaks no
call tasks."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import string

import websockets
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.config import AuthConfig, JWTConfig
from voicebot.protocol.commands import (
    Command,
    ProtocolError,
    parse_message,
    parse_query_format,
)
from voicebot.server.auth import Authenticator, AuthError, token_from_message

from .support import Client, base_config, serve, tone
from .test_limits import still_served
from .test_voice_ws import _no_calls_left

KEYS = [
    "type",
    "command",
    "action",
    "text",
    "content",
    "audio",
    "digit",
    "sample_rate",
    "encoding",
    "token",
]
TYPES = [
    "text",
    "audio",
    "dtmf",
    "config",
    "control",
    "auth",
    "ping",
    "end_turn",
    "end_audio",
    "interrupt",
    "pause",
    "resume",
    "reset",
    "stop",
    "hangup",
    "end_call",
    "bogus",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
messages = st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=8),
    st.sampled_from(TYPES) | json_values,
    max_size=5,
)


def _check(raw: str) -> Command | None:
    """A typed command, or the parser's own error with a code: never another exception."""
    try:
        cmd = parse_message(raw, max_text_chars=100)
    except ProtocolError as exc:
        assert exc.code and str(exc)
        return None
    assert isinstance(cmd, Command)
    return cmd


@settings(max_examples=400, deadline=None)
@given(messages)
def test_parse_message_structured(msg):
    _check(json.dumps(msg))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_parse_message_arbitrary_text(raw):
    _check(raw)
    token_from_message(raw)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 100_000))
def test_parse_message_deep_nesting(depth):
    _check("[" * depth + "]" * depth)
    _check('{"type":' * min(depth, 5000) + "1" + "}" * min(depth, 5000))


# raw JSON text with what `json.dumps` never writes: integers past Python's 4,300-digit limit,
# huge exponents, NaN/Infinity literals and lone surrogate escapes
json_numbers = (
    st.integers(1, 6000).map(lambda n: "9" * n)
    | st.builds(lambda m, e: f"{m}e{e}", st.integers(-9, 9), st.integers(-99999, 99999))
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "-0", "1E400", "0.0000001e-400"])
)
json_strings = st.text(max_size=20).map(json.dumps) | st.sampled_from(
    ['"\\ud800"', '"\\udfff x"', '"a\\u0000b"', '"\\ud83d\\ude00"']
)


@st.composite
def raw_messages(draw) -> str:
    kind = draw(st.sampled_from(TYPES) | st.text(max_size=8))
    fields = draw(
        st.lists(
            st.tuples(st.sampled_from(KEYS), json_numbers | json_strings | st.just("null")),
            max_size=4,
        )
    )
    body = ",".join(f"{json.dumps(k)}:{v}" for k, v in fields)
    return "{" + f'"type":{json.dumps(kind)}' + ("," + body if body else "") + "}"


@settings(max_examples=400, deadline=None)
@given(raw_messages())
def test_parse_message_raw_json_text(raw):
    cmd = _check(raw)
    if cmd is not None:
        cmd.text.encode()  # every later stage encodes it: STT, TTS, logs, storage


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["sample_rate", "encoding", "x"]), st.text(max_size=12)))
def test_parse_query_format(query):
    try:
        rate, encoding = parse_query_format(query)
    except ProtocolError:
        return
    assert 8000 <= rate <= 48000 and encoding in ("pcm_s16le", "mulaw")


AUTHN = Authenticator(AuthConfig(mode="jwt", jwt=JWTConfig(secret="s" * 32)))
TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.sig"


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=300)
    | st.builds(
        lambda i, c: TOKEN[:i] + c + TOKEN[i + 1 :], st.integers(0, len(TOKEN)), st.characters()
    )
)
def test_token_verification_only_raises_auth_error(token):
    try:
        AUTHN.verify(token)
    except AuthError:
        pass


# ------------------------------------------------------------------------------ live server

VALID = [
    {"type": "text", "text": "hello"},
    {"type": "config", "sample_rate": 8000, "encoding": "mulaw"},
    {"type": "config", "sample_rate": 16000, "encoding": "pcm_s16le"},
    {"type": "audio", "content": base64.b64encode(tone(100)).decode()},
    {"type": "dtmf", "digit": "5"},
    {"type": "control", "command": "end_audio"},
    {"type": "ping"},
    {"type": "pause"},
    {"type": "resume"},
    {"type": "reset"},
    {"type": "interrupt"},
    {"type": "auth", "token": "x"},
    {"command": "end_audio"},
    {"action": "stop"},
]
WEIRD = [None, True, -1, 0, 2**70, 1.5, "", "x" * 500, [], {}, [1, [2, [3]]], "\u0000", "💥"]


def mutate(rng: random.Random) -> str | bytes:
    roll = rng.random()
    if roll < 0.25:  # binary: audio of odd sizes, random bytes, empty frames
        return rng.choice(
            [b"", rng.randbytes(rng.randrange(1, 4000)), tone(20)[: rng.randrange(641)]]
        )
    if roll < 0.35:  # broken text
        raw = json.dumps(rng.choice(VALID))
        return rng.choice(
            [
                raw[: rng.randrange(len(raw))],
                "[" * 50000,
                rng.randbytes(50).hex(),
                "".join(rng.choices(string.printable, k=rng.randrange(200))),
            ]
        )
    msg = dict(rng.choice(VALID))
    for _ in range(rng.randrange(3)):
        op = rng.random()
        key = rng.choice([*KEYS, "extra"])
        if op < 0.5:
            msg[key] = rng.choice(WEIRD + TYPES)
        elif msg:
            msg.pop(rng.choice(list(msg)))
    return json.dumps(msg)


async def test_live_server_survives_random_and_mutated_messages(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    rng = random.Random(20261121)
    async with serve(tmp_path, base_config()) as server:
        bystander = Client(await websockets.connect(f"{server.url}/ws/voice"))
        await bystander.wait_for(lambda e: e.get("status") == "connected")

        async def fuzz_one(seed: int) -> None:
            local = random.Random(seed)
            # a client that never reads must not let unread events stall its own close handshake
            async with websockets.connect(
                f"{server.url}/ws/voice", max_size=None, max_queue=None
            ) as ws:
                for _ in range(local.randrange(5, 40)):
                    try:
                        await ws.send(mutate(local))
                    except websockets.ConnectionClosed:
                        return  # the server may close on us (e.g. end_call): that is allowed

        for round_ in range(10):
            seeds = [rng.randrange(2**32) for _ in range(6)]
            await asyncio.gather(*(fuzz_one(s) for s in seeds))
            await still_served(bystander, f"round{round_}")
        await bystander.close()
        await _no_calls_left(server)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
