"""The keyword intent classifier: keywords, examples, misrecognitions, candidates only."""

from __future__ import annotations

from voicebot.plugins import make_plugin_manager
from voicebot.providers import IntentSpec
from voicebot_plugins.intent_keyword import KeywordIntent

BOOK = IntentSpec("book", ("I'd like to book a table",), ("book", "reservation"))
CANCEL = IntentSpec("cancel", ("I need to cancel my booking",), ("cancel",))
AGENT = IntentSpec("agent", (), ("talk to a person", "operator"))


async def test_keyword_example_and_fuzzy_matches() -> None:
    k = KeywordIntent()
    result = await k.classify("can I make a reservation", [BOOK, CANCEL])
    assert (result.name, result.confidence) == ("book", 1.0)
    assert (await k.classify("I'd like to book a table for two", [BOOK, CANCEL])).name == "book"
    assert (await k.classify("I want to talk to a person", [BOOK, AGENT])).name == "agent"
    assert (await k.classify("operater please", [BOOK, AGENT])).name == "agent"  # STT slip


async def test_below_threshold_is_none_and_only_candidates_count() -> None:
    k = KeywordIntent()
    result = await k.classify("what's the weather like", [BOOK, CANCEL])
    assert result.name is None and result.confidence < 0.7
    assert (await k.classify("cancel it", [BOOK])).name is None
    assert (await k.classify("", [BOOK])).name is None


async def test_a_shared_small_word_is_not_a_match() -> None:
    k = KeywordIntent()
    idea = IntentSpec("unsure", ("I have no idea", "I don't know"))
    assert (await k.classify("no", [idea])).name is None
    assert (await k.classify("I have no idea at all", [idea])).name == "unsure"
    agent = IntentSpec("agent", ("representative please", "a human please"))
    assert (await k.classify("yes please", [agent])).name is None
    assert (await k.classify("a representative please", [agent])).name == "agent"


async def test_threshold_option() -> None:
    strict = KeywordIntent(KeywordIntent.Options(threshold=1.0))
    assert (await strict.classify("I'd like to book a table soon", [BOOK])).name == "book"
    assert (await strict.classify("id like to buk a table", [CANCEL, BOOK])).name is None


def test_registered_through_the_entry_point() -> None:
    registry = make_plugin_manager().registry
    assert registry.provider("intent", "keyword") is KeywordIntent
