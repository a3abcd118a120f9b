"""Slot values as callers say them and STT engines write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.flows.model import SlotDecl
from voicebot.flows.slottypes import BUILTIN

from .flows_helpers import NOW, Bot

FLOWS = Path(__file__).resolve().parent.parent / "flows"


def parse(type_: str, text: str, **decl):
    return BUILTIN[type_](text, "", SlotDecl("s", type_, "x", **decl), NOW)


async def booking() -> Bot:
    bot = Bot(FLOWS)
    await bot.start()
    await bot.send("book a table")
    assert bot.said.endswith("For how many people?")
    await bot.send("two")
    assert bot.said == "For what day and time?"
    return bot


# ------------------------------------------------------------- values as transcripts write them


@pytest.mark.parametrize(
    ("text", "value"),
    [("Ada..", "Ada"), (" Ada. ", "Ada"), ("Ada Lovelace!", "Ada Lovelace"), ("Ada?", "Ada")],
)
def test_free_text_loses_the_transcripts_trailing_punctuation(text: str, value: str) -> None:
    assert parse("text", text) == value


def test_free_text_of_punctuation_only_is_no_answer() -> None:
    assert parse("text", " ... ") is None


async def test_a_name_is_read_back_without_the_transcripts_full_stop() -> None:
    bot = await booking()
    await bot.send("tomorrow at 7pm")
    await bot.send("Ada..")
    assert bot.d.values["name"] == "Ada"
    assert "under the name Ada. Is that right?" in bot.said


@pytest.mark.parametrize("text", ["tomorrow at 8 p.m.", "Tomorrow at 8 P.M.", "tomorrow at 8 p.m"])
def test_pm_as_stt_engines_write_it(text: str) -> None:
    assert parse("datetime", text) == "2026-11-22T20:00:00+00:00"


@pytest.mark.parametrize("type_", ["number", "integer"])
@pytest.mark.parametrize(
    "text", ["10 of clubs", "ten of clubs", "Ten of clubs.", "the 10 of clubs"]
)
def test_numbers_as_digits_or_words(type_: str, text: str) -> None:
    assert parse(type_, text) == 10


@pytest.mark.parametrize("text", ["10 of clubs", "ten of clubs", "Ten of clubs."])
@pytest.mark.parametrize(
    "values", [["ten of clubs", "2 of hearts"], ["10 of clubs", "two of hearts"]]
)
def test_enum_values_match_digits_and_words_alike(text: str, values: list[str]) -> None:
    assert parse("enum", text, values={v: [] for v in values}) == values[0]
    assert parse("enum", "two of hearts", values={v: [] for v in values}) == values[1]
