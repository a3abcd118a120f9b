"""Each node kind, escalation rule, barge-in policy and the snapshot round trip."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voicebot.dialogue import Hangup, IntentEvent, Listen, Note, Say, Transfer
from voicebot.flows import FlowDialogue
from voicebot.providers import IntentClassifier, IntentResult

from .flows_helpers import Bot, write


async def test_say_marks_fixed_prompts_cacheable_and_templated_ones_not(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          name: {type: text, prompt: Your name?}
        nodes:
          hello:
            say: Hello there.
            next: ask
          ask:
            ask: name
            next: greet
          greet:
            say: Nice to meet you, {{ name }}.
            next: bye
          bye:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    hello, prompt = bot.of(Say)
    assert hello.cache_key and hello.cache_key.startswith("say:")
    assert prompt.text == "Your name?" and prompt.cache_key
    await bot.send("Ada")
    greet = bot.of(Say)[0]
    assert greet.text == "Nice to meet you, Ada." and greet.cache_key is None
    assert bot.of(Hangup) == [Hangup("completed")]
    assert [n.data["node"] for n in bot.of(Note) if n.kind == "node"] == ["greet", "bye"]


async def test_barge_in_policy_per_node_and_from_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        defaults:
          barge_in: false
        intents:
          ok: {keywords: [ok]}
        nodes:
          legal:
            say: This call is recorded.
            next: menu
          menu:
            say: Say ok.
            barge_in: true
            listen:
              - intent: ok
                goto: bye
          bye:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    legal, menu = bot.of(Say)
    assert legal.barge_in is False and menu.barge_in is True
    assert bot.listen.barge_in is True


async def test_ask_collects_several_slots_with_confirmation_and_retry(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          size: {type: integer, prompt: How many?, min: 1, max: 12, invalid: "1 to 12, please."}
          when: {type: datetime, prompt: When?}
        nodes:
          details:
            say: Let's book.
            ask: [size, when]
            confirm: "{{ size }} people, {{ when | spoken_datetime }}. Right?"
            next: done
          done:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    assert bot.said == "Let's book. How many?"
    assert bot.listen == Listen(dtmf_max_digits=2, dtmf_terminator="#")
    await bot.send("thirteen")
    assert bot.said == "1 to 12, please."
    await bot.send(dtmf="4")
    assert bot.d.values["size"] == 4 and bot.said == "When?"
    await bot.send("tomorrow at 8 pm")
    assert bot.said == "4 people, Sunday, November 22nd at 8 pm. Right?"
    await bot.send("no")
    assert bot.said == "How many?" and "size" not in bot.d.values
    await bot.send("two")
    await bot.send("sunday at seven")
    await bot.send("yes please")
    assert bot.of(Hangup)
    assert bot.d.values == {"size": 2, "when": "2026-11-22T19:00:00+00:00"}


async def test_ask_skips_filled_slots_unless_reask(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          more: {type: yesno, prompt: More?}
        nodes:
          first:
            ask: more
            next: second
          second:
            ask: more
            next: third
          third:
            ask: more
            reask: true
            next: bye
          bye:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send("yeah")
    assert bot.at == "main.third" and bot.said == "More?"
    await bot.send("nope")
    assert bot.d.values["more"] is False and bot.of(Hangup)


async def test_slot_check_expression(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          pin: {type: digits, length: 4, check: "value != '0000'", prompt: PIN?}
        nodes:
          a:
            ask: pin
            next: b
          b:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    assert bot.listen.dtmf_max_digits == 4
    await bot.send(dtmf="0000")
    assert bot.said.startswith("Sorry, I didn't get that.")
    await bot.send("one two three four")
    assert bot.d.values["pin"] == "1234"


class RecordingClassifier(IntentClassifier):
    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[str]]] = []

    async def classify(self, text, candidates):
        self.seen.append((text, [c.name for c in candidates]))
        names = [c.name for c in candidates if c.name in text]
        return IntentResult(names[0] if names else None, 0.9, {"size": "3"} if names else {})


LISTEN = """
    intents:
      book: {examples: [book a table]}
      cancel: {keywords: [cancel]}
    slots:
      size: {type: integer}
      code: {type: digits, length: 3}
    nodes:
      menu:
        say: Menu.
        listen:
          - intent: book
            dtmf: "1"
            goto: booked
          - intent: cancel
            dtmf: ["2", "22"]
            goto: cancelled
          - slot: code
            goto: coded
          - when: "'agent' in input.text"
            goto: agent
      booked:
        say: Booked {{ size }}.
        next: bye
      cancelled:
        say: Cancelled.
        next: bye
      coded:
        say: Code {{ code }}.
        next: bye
      agent:
        transfer: sip:desk@example.com
        mode: warm
      bye:
        hangup: done
"""


async def test_listen_passes_its_intents_as_candidates_and_emits_intent(tmp_path: Path) -> None:
    write(tmp_path, main=LISTEN)
    classifier = RecordingClassifier()
    bot = Bot(tmp_path, intent=classifier)
    await bot.start()
    assert bot.listen.dtmf_max_digits == 2
    await bot.send("I want to book")
    assert classifier.seen == [("I want to book", ["book", "cancel"])]
    assert bot.of(IntentEvent) == [IntentEvent("book", 0.9, {"size": "3"})]
    assert bot.said == "Booked 3." and bot.d.values["size"] == 3


@pytest.mark.parametrize(
    ("said", "dtmf", "expect"),
    [
        (None, "22", "Cancelled."),
        ("please cancel it", None, "Cancelled."),
        ("one two three", None, "Code 123."),
        (None, "1", "Booked"),
    ],
)
async def test_listen_branches(tmp_path: Path, said, dtmf, expect) -> None:
    write(tmp_path, main=LISTEN.replace("Booked {{ size }}.", "Booked."))
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send(said, dtmf=dtmf)
    assert bot.said.startswith(expect)


async def test_listen_expression_branch_and_warm_transfer(tmp_path: Path) -> None:
    write(tmp_path, main=LISTEN.replace("Booked {{ size }}.", "Booked."))
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send("get me an agent")
    assert bot.of(Transfer) == [Transfer("sip:desk@example.com", "warm")]
    assert await bot.send("hello?") == []  # the call is over


ESCALATE = """
    defaults:
      noinput:
        - Hello?
        - say: "Still there? {{ help }}"
          reprompt: false
        - say: Bye.
          goto: bye
      nomatch:
        - Pardon?
        - say: Last try.
    intents:
      yes: {keywords: ["yes"]}
    nodes:
      q:
        say: Say yes.
        help: Just say yes.
        listen:
          - intent: "yes"
            goto: own
      own:
        say: Own.
        nomatch:
          - say: Own handler.
            goto: bye
        listen:
          - intent: "yes"
            goto: bye
      bye:
        hangup:
"""


async def test_noinput_escalates_per_count_then_goes(tmp_path: Path) -> None:
    write(tmp_path, main=ESCALATE)
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send(None)
    assert bot.said == "Hello? Say yes."
    await bot.send(None)
    assert bot.said == "Still there? Just say yes."
    await bot.send(None)
    assert bot.said == "Bye." and bot.of(Hangup)


async def test_nomatch_last_entry_repeats_and_counts_reset_on_success(tmp_path: Path) -> None:
    write(tmp_path, main=ESCALATE)
    bot = Bot(tmp_path)
    await bot.start()
    for expected in ("Pardon? Say yes.", "Last try. Say yes.", "Last try. Say yes."):
        await bot.send("blue")
        assert bot.said == expected
    assert bot.d.counters["nomatch"] == 3
    await bot.send("yes")
    assert bot.at == "main.own" and bot.d.counters == {"noinput": 0, "nomatch": 0}
    await bot.send("blue")  # the node's own list overrides the flow defaults
    assert bot.said == "Own handler." and bot.of(Hangup)


async def test_builtin_escalation_without_any_configured(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        intents:
          go: {keywords: [go]}
        nodes:
          q:
            say: Say go.
            listen:
              - intent: go
                goto: bye
          bye:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send(None)
    assert bot.said == "Sorry, I didn't hear anything. Say go."
    await bot.send("stop")
    assert bot.said == "Sorry, I didn't get that. Say go."


async def test_set_if_switch_goto(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        nodes:
          init:
            set: {count: 2, label: "{{ 'n' ~ 2 }}", total: "{{ 40 + 2 }}"}
            next: check
          check:
            if: total > 41 and label == 'n2'
            then: route
            else: bad
          route:
            switch: count
            cases: {"1": bad, "2": jump}
            default: bad
          jump:
            goto: other.start
          bad:
            hangup: bad
    """,
        other="""
        nodes:
          start:
            say: In other, {{ total }}.
            hangup: fine
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    assert bot.d.values == {"count": 2, "label": "n2", "total": 42}
    assert bot.said == "In other, 42." and bot.of(Hangup) == [Hangup("fine")]


async def test_switch_without_matching_case_fails_politely(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        nodes:
          route:
            switch: "'z'"
            cases: {a: bye}
          bye:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    assert bot.said == "Sorry, something went wrong. Please call again later."
    assert bot.of(Hangup) == [Hangup("error")]
    error = next(n for n in bot.of(Note) if n.kind == "error")
    assert "matches no case" in error.data["message"]


async def test_call_and_return_and_return_at_top_hangs_up(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        nodes:
          a:
            call: sub
            next: b
          b:
            say: Back in main.
            next: c
          c:
            call: sub.second
            next: d
          d:
            return:
    """,
        sub="""
        nodes:
          first:
            say: In sub.
            return:
          second:
            say: Second.
            return:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    assert bot.said == "In sub. Back in main. Second."
    assert bot.of(Hangup) == [Hangup("completed")] and bot.d.stack == []


async def test_actions_sync_async_result_and_failure_to_on_error(tmp_path: Path) -> None:
    calls = []

    def create(size, name):
        calls.append((size, name))
        return {"ref": "AB12"}

    async def fail(**kwargs):
        await asyncio.sleep(0)
        raise RuntimeError("database down")

    write(
        tmp_path,
        main="""
        defaults:
          on_error: sorry
        nodes:
          start:
            set: {size: 3}
            next: create
          create:
            action: bookings.create
            args: {size: "{{ size }}", name: "Ann {{ size }}"}
            result: booking
            next: tell
          tell:
            say: Reference {{ booking.ref }}.
            next: broken
          broken:
            action: bookings.fail
            next: bye
          sorry:
            say: The system is down.
            next: bye
          bye:
            hangup:
    """,
    )
    bot = Bot(tmp_path, actions={"bookings.create": create, "bookings.fail": fail})
    await bot.start()
    assert calls == [(3, "Ann 3")]
    assert bot.said == "Reference AB12. The system is down."
    error = next(n for n in bot.of(Note) if n.kind == "error")
    assert error.data["message"] == "action 'bookings.fail' failed: RuntimeError: database down"


async def test_missing_action_and_undefined_slot_apologise(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          name: {type: text}
        nodes:
          a:
            say: Hello {{ name }}.
            next: b
          b:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    assert bot.of(Hangup) == [Hangup("error")]
    error = next(n for n in bot.of(Note) if n.kind == "error")
    assert "'name' is undefined" in error.data["message"]


async def test_runaway_loop_is_stopped(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        nodes:
          a:
            set: {n: 1}
            next: b
          b:
            if: n > 0
            then: a
            else: c
          c:
            hangup:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    assert bot.of(Hangup) == [Hangup("error")]


async def test_snapshot_restore_and_interrupted(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          size: {type: integer, prompt: How many?}
          name: {type: text, prompt: Name?}
        nodes:
          a:
            call: sub
            next: bye
          bye:
            hangup:
    """,
        sub="""
        nodes:
          ask:
            say: Welcome to the booking line, this is long.
            next: details
          details:
            ask: [size, name]
            next: done
          done:
            return:
    """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    bot.d.interrupted("Welcome to the booking line, this is long.", "Welcome to the")
    await bot.send("five")
    snap = bot.d.snapshot()
    assert snap["flow"] == "sub" and snap["node"] == "details" and snap["slots"] == {"size": 5}
    assert snap["stack"] == [["main", "bye"]]
    assert snap["history"][0]["text"].startswith("Welcome to the How many?")
    assert snap["history"][0]["interrupted"] is True
    assert snap["history"][1] == {"role": "user", "text": "five", "node": "sub.details"}

    restored = FlowDialogue.restore(bot.flows, bot.ctx, snap)
    outs = [x async for x in restored.start()]
    assert [x.text for x in outs if isinstance(x, Say)] == ["Name?"]
    from voicebot.dialogue import UserInput

    outs = [x async for x in restored.handle(UserInput("speech", "Ada"))]
    assert Hangup("completed") in outs
    assert restored.values == {"size": 5, "name": "Ada"}


async def test_a_walk_cut_short_by_barge_in_resumes_at_the_next_question(tmp_path: Path) -> None:
    runs = []

    async def slow_lookup():
        runs.append("lookup")
        return "ok"

    write(
        tmp_path,
        main="""
        slots:
          size: {type: integer, prompt: How many?}
        nodes:
          hello:
            say: Hello, one moment.
            next: lookup
          lookup:
            action: slow.lookup
            next: ask
          ask:
            ask: size
            next: bye
          bye:
            say: "{{ size }} it is."
            hangup:
    """,
    )
    bot = Bot(tmp_path, actions={"slow.lookup": slow_lookup})
    walk = bot.d.start()
    async for out in walk:  # the call cancels the reply while the action node is starting
        if isinstance(out, Note) and out.data.get("node") == "lookup":
            break
    await walk.aclose()
    await bot.send("three")
    assert runs == ["lookup"]
    assert bot.said == "3 it is." and bot.of(Hangup)


async def test_anywhere_branches_work_at_every_question(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        anywhere:
          - intent: operator
            dtmf: "0"
            goto: agent
        intents:
          operator: {keywords: [operator]}
          yes: {keywords: ["yes"]}
        slots:
          name: {type: text, prompt: Your name?}
        nodes:
          ask:
            ask: name
            next: menu
          menu:
            say: Say yes.
            listen:
              - intent: "yes"
                goto: bye
          agent:
            transfer: "+1555"
          bye:
            hangup:
        """,
    )
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send("operator please")  # a text slot would take anything: anywhere comes first
    assert bot.of(Transfer) == [Transfer("+1555")]
    assert bot.of(IntentEvent)[0].intent == "operator"

    bot = Bot(tmp_path)
    await bot.start()
    await bot.send("Ada")
    assert bot.d.node == "menu" and bot.listen.dtmf_max_digits == 1
    await bot.send(dtmf="0")
    assert bot.of(Transfer)


async def test_slow_action_times_out(tmp_path: Path) -> None:
    never = asyncio.Event()

    async def hang():
        await never.wait()

    write(
        tmp_path,
        main="""
        nodes:
          a:
            action: slow.hang
            timeout_ms: 50
            next: b
          b:
            hangup:
        """,
    )
    bot = Bot(tmp_path, actions={"slow.hang": hang})
    await bot.start()
    assert bot.of(Hangup) == [Hangup("error")]
    error = next(n for n in bot.of(Note) if n.kind == "error")
    assert error.data["message"] == "action 'slow.hang' timed out after 50 ms"


async def test_noinput_and_nomatch_are_counted_separately(tmp_path: Path) -> None:
    write(tmp_path, main=ESCALATE)
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send("blue")
    await bot.send("green")
    assert bot.said == "Last try. Say yes."
    await bot.send(None)  # the first silence, after two misunderstandings
    assert bot.said == "Hello? Say yes."
    assert bot.d.counters == {"noinput": 1, "nomatch": 2}
