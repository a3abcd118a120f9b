"""How slots get their values across a conversation: a day kept while the time is asked, the
details of the opening sentence, and values as callers (and STT engines) write them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from voicebot.dialogue import DialogueContext, Note
from voicebot.flows import FlowDialogue, check_flows
from voicebot.flows.model import SlotDecl
from voicebot.flows.slottypes import BUILTIN

from .flows_helpers import NOW, Bot, write

FLOWS = Path(__file__).resolve().parent.parent / "flows"
THURSDAY = datetime(2026, 11, 19, 10, 0, tzinfo=ZoneInfo("UTC"))


def parse(type_: str, text: str, **decl):
    return BUILTIN[type_](text, "", SlotDecl("s", type_, "x", **decl), NOW)


async def booking(now: datetime = NOW) -> Bot:
    bot = Bot(FLOWS, now=now)
    await bot.start()
    await bot.send("book a table")
    assert bot.said.endswith("For how many people?")
    await bot.send("two")
    assert bot.said == "For what day and time?"
    return bot


# ----------------------------------------------------------------- a day said without a time


async def test_a_day_without_a_time_is_kept_and_the_time_asked() -> None:
    bot = await booking(THURSDAY)
    await bot.send("saturday")
    assert bot.said == "What time on Saturday, November 21st? We're open from noon to ten pm."
    assert "when" not in bot.d.values
    await bot.send("1pm")
    assert bot.d.values["when"] == "2026-11-21T13:00:00+00:00"  # not today, the 19th
    assert bot.said == "And what name should I put the booking under?"


async def test_a_corrected_time_keeps_the_day() -> None:
    bot = await booking()
    await bot.send("next saturday at 11am")
    assert bot.said == "We're open from noon to ten pm. What time would suit you?"
    await bot.send("at 1pm")
    assert bot.d.values["when"] == "2026-11-28T13:00:00+00:00"  # not today, the 21st


async def test_a_new_day_replaces_the_kept_one_and_a_filled_slot_forgets_it() -> None:
    bot = await booking()
    await bot.send("tuesday")
    await bot.send("no, wednesday at 7")
    assert bot.d.values["when"] == "2026-11-25T19:00:00+00:00"
    assert bot.d.partial == {}


async def test_the_follow_up_question_has_a_default_and_survives_a_restore(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        main="""
        slots:
          at: {type: datetime, prompt: When?}
        nodes:
          a:
            ask: at
            next: b
          b:
            say: "{{ at }}"
            hangup:
        """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send("monday")
    assert bot.said == "What time on Monday, November 23rd?"
    await bot.send("nothing useful")
    assert bot.said == "Sorry, I didn't get that. What time on Monday, November 23rd?"
    snapshot = bot.d.snapshot()
    assert snapshot["partial"] == {"at": {"date": "2026-11-23"}}
    ctx = DialogueContext(call_id="resumed", variables={})
    d = FlowDialogue.restore(bot.flows, ctx, snapshot, clock=lambda tz: NOW.astimezone(tz))
    assert [o.text for o in [x async for x in d.start()] if hasattr(o, "text")] == [
        "What time on Monday, November 23rd?"
    ]
    bot.d = d
    await bot.send("half past seven")
    assert bot.said == "2026-11-23T19:30:00+00:00"


def test_check_knows_the_follow_up_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          at: {type: datetime, prompt: When?, follow_up: "What time on {{ value }}?"}
          n: {type: integer, prompt: How many?, follow_up: And?}
          d: {type: datetime, prompt: When?, follow_up: "{{ vlaue }}"}
        nodes:
          a:
            ask: [at, n, d]
            next: b
          b:
            hangup:
        """,
    )
    found = check_flows(tmp_path)
    assert len(found) == 2, found
    assert "slot 'n': `follow_up` applies to datetime slots" in found[0]
    assert "'vlaue'" in found[1] and "'value'" in found[1]


async def test_saying_no_at_the_confirmation_forgets_the_kept_day() -> None:
    bot = await booking()
    await bot.send("next saturday at 11am")  # closed: the day is kept
    await bot.send("at 1pm")
    await bot.send("Ada")
    await bot.send("no")
    assert bot.said == "For how many people?" and bot.d.partial == {}


# -------------------------------------------------------------- the opening sentence's details


async def test_the_opening_sentence_fills_the_booking() -> None:
    bot = Bot(FLOWS)
    await bot.start()
    await bot.send("I want to book a table for two on Friday at 8pm")
    assert bot.d.values == {"party_size": 2, "when": "2026-11-27T20:00:00+00:00"}
    assert bot.said == "Great, let's book a table. And what name should I put the booking under?"
    notes = [n.data["slots"] for n in bot.of(Note) if n.kind == "slots"]
    assert notes[-1] == bot.d.values


@pytest.mark.parametrize(
    ("opening", "values", "asks"),
    [
        # the 8 of "8pm" is a time, not a party of eight
        ("I'd like to book a table at 8pm", {"when": "2026-11-21T20:00:00+00:00"}, "people"),
        (
            "book a table for eight at 8 p.m.",
            {"party_size": 8, "when": "2026-11-21T20:00:00+00:00"},
            "name",
        ),
        # "two" is a party size, not a time
        ("can I book a table for two", {"party_size": 2}, "day and time"),
        ("book a table for twenty two people tomorrow", {}, "people"),  # too many: asked
        (
            "I'd like a reservation on the 5th of december at half past seven for 3",
            {"party_size": 3, "when": "2026-12-05T19:30:00+00:00"},
            "name",
        ),
    ],
)
async def test_the_opening_sentence_fills_only_what_was_said(
    opening: str, values: dict, asks: str
) -> None:
    bot = Bot(FLOWS)
    await bot.start()
    await bot.send(opening)
    assert bot.d.values == values
    assert asks in bot.said


async def test_a_day_in_the_opening_sentence_is_kept_for_the_time_question() -> None:
    bot = Bot(FLOWS)
    await bot.start()
    await bot.send("book a table on monday for two people")
    assert bot.d.values == {"party_size": 2}
    assert bot.said.endswith("What time on Monday, November 23rd? We're open from noon to ten pm.")
    await bot.send("seven thirty")
    assert bot.d.values["when"] == "2026-11-23T19:30:00+00:00"


ORDER = """
intents:
  order:
    keywords: [order]
slots:
  pizzas: {type: integer, prompt: How many?}
  cheese: {type: yesno, prompt: Extra cheese?}
  size: {type: enum, values: {large: [big], small: []}, prompt: Which size?}
  at: {type: time, prompt: When?}
  note: {type: text, prompt: Anything else?}
nodes:
  menu:
    say: Hello.
    listen:
      - {intent: order, goto: take}
  take:
    ask: [pizzas, cheese, size, at, note]
    next: done
  done:
    say: ok
    hangup:
"""


async def test_the_opening_sentence_fills_number_yesno_enum_and_time_slots(
    tmp_path: Path,
) -> None:
    bot = Bot(write(tmp_path, main=ORDER))
    await bot.start()
    await bot.send("I'd like to order three big pizzas at 7, and yes, extra cheese.")
    assert bot.d.values == {"pizzas": 3, "cheese": True, "size": "large", "at": "19:00"}
    assert bot.said == "Anything else?"  # free text is never taken from the opening sentence


async def test_words_a_slot_read_are_not_offered_to_the_next_even_when_refused(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        main="""
        intents:
          book: {keywords: [book]}
        slots:
          adults: {type: integer, max: 10, prompt: How many adults?}
          children: {type: integer, prompt: How many children?}
        nodes:
          menu:
            listen:
              - {intent: book, goto: take}
          take:
            ask: [adults, children]
            next: done
          done:
            hangup:
        """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send("book for twenty adults and 2 children")
    assert bot.d.values == {"children": 2}
    assert bot.said == "How many adults?"


async def test_a_long_text_is_not_offered(tmp_path: Path) -> None:
    bot = Bot(write(tmp_path, main=ORDER))
    await bot.start()
    await bot.send("I'd like to order three pizzas " + "and so on " * 20)
    assert bot.d.values == {}
    assert bot.said == "How many?"


async def test_only_words_that_chose_an_intent_are_offered(tmp_path: Path) -> None:
    bot = Bot(write(tmp_path, main=ORDER))
    await bot.start()
    await bot.send("order")
    assert bot.said == "How many?"
    await bot.send("two")  # an answer fills its own slot, not the ones after it
    assert bot.d.values == {"pizzas": 2}
    assert bot.said == "Extra cheese?"


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


@pytest.mark.parametrize(
    "text",
    ["10 of clubs", "ten of clubs", "Ten of clubs.", "the 10 of clubs", "10 clubs", "ten clubs"],
)
@pytest.mark.parametrize(
    "values", [["ten of clubs", "2 of hearts"], ["10 of clubs", "two of hearts"]]
)
def test_enum_values_match_digits_and_words_alike(text: str, values: list[str]) -> None:
    assert parse("enum", text, values={v: [] for v in values}) == values[0]
    assert parse("enum", "two of hearts", values={v: [] for v in values}) == values[1]
    assert parse("enum", "2 hearts", values={v: [] for v in values}) == values[1]


def test_enum_a_value_said_whole_wins_before_the_loose_match() -> None:
    values = {"queen of hearts": [], "queen hearts club": []}
    assert parse("enum", "the queen of hearts", values=values) == "queen of hearts"
    assert parse("enum", "ten of spades", values={"ten of clubs": []}) is None
