"""Every built-in slot type, spoken and keyed, plus plugin-registered types."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from voicebot.flows.model import SlotDecl
from voicebot.flows.slottypes import BUILTIN, violation

from .flows_helpers import NOW, Bot, write


def parse(type_: str, text: str = "", digits: str = "", now: datetime = NOW, **decl):
    return BUILTIN[type_](text, digits, SlotDecl("s", type_, "x", **decl), now)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("twenty two", 22),
        ("a table for four people", 4),
        ("22", 22),
        ("one hundred and five", 105),
        ("a dozen", 12),
        ("two thousand twenty six", 2026),
        ("1,200", 1200),
        ("minus three", -3),
        ("no idea", None),
    ],
)
def test_integer_spoken_and_written(text: str, value) -> None:
    assert parse("integer", text) == value


def test_number_keeps_decimals_and_integer_refuses_them() -> None:
    assert parse("number", "about 2.5 kilos") == 2.5
    assert parse("integer", "2.5") is None
    assert parse("integer", digits="42") == 42
    assert parse("number", digits="4*2") is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", True),
        ("yeah sure", True),
        ("that's right", True),
        ("nope", False),
        ("no thanks", False),
        ("that's not right", False),
        ("maybe", None),
    ],
)
def test_yesno(text: str, value) -> None:
    assert parse("yesno", text) is value


def test_yesno_by_keypress() -> None:
    assert parse("yesno", digits="1") is True
    assert parse("yesno", digits="2") is False
    assert parse("yesno", digits="3") is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("tomorrow at seven pm", "2026-11-22T19:00:00+00:00"),
        ("next friday at 8:30", "2026-11-27T08:30:00+00:00"),
        ("march 5th at half past six", "2027-03-05T18:30:00+00:00"),
        ("the twenty second of december at noon", "2026-12-22T12:00:00+00:00"),
        ("in three days at quarter to eight in the evening", "2026-11-24T19:45:00+00:00"),
        ("2026-12-01T19:00", "2026-12-01T19:00:00+00:00"),
        ("at 9 am", "2026-11-22T09:00:00+00:00"),  # already past today: tomorrow
        ("tomorrow", None),  # a day without a time is not a datetime
    ],
)
def test_datetime(text: str, value) -> None:
    assert parse("datetime", text) == value


def test_datetime_in_the_configured_timezone() -> None:
    berlin = NOW.astimezone(ZoneInfo("Europe/Berlin"))
    assert parse("datetime", "tomorrow at seven pm", now=berlin) == "2026-11-22T19:00:00+01:00"
    tokyo = NOW.astimezone(ZoneInfo("Asia/Tokyo"))  # 19:00 on Saturday in Tokyo
    assert parse("date", "tomorrow", now=tokyo) == "2026-11-22"
    assert parse("datetime", "tomorrow at 7pm", now=tokyo) == "2026-11-22T19:00:00+09:00"


@pytest.mark.parametrize(
    ("type_", "text", "value"),
    [
        ("date", "on saturday", "2026-11-21"),
        ("date", "next saturday", "2026-11-28"),
        ("date", "the day after tomorrow", "2026-11-23"),
        ("date", "5 january 2027", "2027-01-05"),
        ("date", "may 3rd", "2027-05-03"),
        ("date", "I may come", None),
        ("time", "seven thirty", "19:30"),
        ("time", "10 am", "10:00"),
        ("time", "midnight", "00:00"),
        ("time", "at 21:15", "21:15"),
        ("time", "whenever", None),
    ],
)
def test_date_and_time(type_: str, text: str, value) -> None:
    assert parse(type_, text) == value


def test_time_by_keypad() -> None:
    assert parse("time", digits="1930") == "19:30"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("plus four four seven seven double zero one two three four five", "+44770012345"),
        ("five five five, oh one two three", "5550123"),
        ("my number is 415 555 0100", "4155550100"),
        ("one two three", None),
    ],
)
def test_phone(text: str, value) -> None:
    assert parse("phone", text) == value


def test_phone_by_keypad() -> None:
    assert parse("phone", digits="5550123") == "5550123"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("john dot smith at example dot com", "john.smith@example.com"),
        ("it's ada_l@example.org", "ada_l@example.org"),
        ("j underscore doe at mail dot co dot uk", "j_doe@mail.co.uk"),
        ("not an email", None),
    ],
)
def test_email(text: str, value) -> None:
    assert parse("email", text) == value


def test_digits_spoken_keyed_terminated_and_limited() -> None:
    assert parse("digits", "one two three four") == "1234"
    assert parse("digits", digits="1234#", terminator="#") == "1234"
    decl = SlotDecl("pin", "digits", "x", length=4)
    assert violation(decl, "123") == "not 4 long"
    assert violation(SlotDecl("p", "digits", "x", max_length=3), "1234") == "longer than 3"
    assert violation(SlotDecl("p", "digits", "x", pattern=re.compile(r"9\d+")), "123")


def test_enum_values_synonyms_fuzzy_and_keys() -> None:
    values = {"terrace": ["outside", "on the patio"], "inside": ["indoors"], "bar": []}
    assert parse("enum", "we'd like to sit outside", values=values) == "terrace"
    assert parse("enum", "on the patio please", values=values) == "terrace"
    assert parse("enum", "indors", values=values) == "inside"  # a recognition slip
    assert parse("enum", "at the bar", values=values) == "bar"
    assert parse("enum", "kitchen", values=values) is None
    assert parse("enum", digits="2", values=values) == "inside"
    assert parse("enum", digits="9", values=values) is None


def test_text_and_number_limits() -> None:
    assert parse("text", "  Ada Lovelace ") == "Ada Lovelace"
    assert parse("text", "") is None
    assert violation(SlotDecl("n", "integer", "x", min=1, max=12), 13) == "above the maximum 12"
    assert violation(SlotDecl("n", "integer", "x", min=1, max=12), 0) == "below the minimum 1"


async def test_plugin_slot_type_through_a_flow(tmp_path: Path) -> None:
    def iban(text: str):
        compact = text.replace(" ", "").upper()
        return compact if re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", compact) else None

    write(
        tmp_path,
        main="""
        slots:
          account: {type: iban, prompt: Your IBAN?}
        nodes:
          a:
            ask: account
            next: b
          b:
            say: Got {{ account }}.
            hangup:
    """,
    )
    bot = Bot(tmp_path, slot_types={"iban": iban})
    await bot.start()
    await bot.send("banana")
    assert bot.said.startswith("Sorry, I didn't get that.")
    await bot.send("de89 3704 0044 0532 0130 00")
    assert bot.said == "Got DE89370400440532013000."


async def test_unregistered_plugin_type_fails_the_call_politely(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          account: {type: iban, prompt: Your IBAN?}
        nodes:
          a:
            ask: account
            next: b
          b:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send("DE89")
    assert bot.said == "Sorry, something went wrong. Please call again later."
