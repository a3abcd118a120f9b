"""The unfinished-phrase wait on a fake clock: the turn-taker (frames) and the turn's pieces
(final transcripts) wired as a call wires them, millisecond by millisecond."""

from __future__ import annotations

from voicebot.call.endpointing import EndOfTurn, TurnPieces
from voicebot.call.turns import Action, TurnSettings, TurnTaker
from voicebot.config.model import UNFINISHED_OPENERS, UNFINISHED_WORDS

F = 20
STT_MS = 100  # from the end of an utterance to its final transcript
HANGOVER_MS = 300


class FakeCall:
    """Frames go to the turn-taker; each ended utterance's transcript (the next of `texts`)
    reaches the turn's pieces `STT_MS` later; speech starting again tells them the caller
    resumed; their deadline fires on time. `answers` is every turn answered, with its time."""

    def __init__(self, texts: list[str], wait_ms: int, unsure_wait_ms: int = 0) -> None:
        self.turns = TurnTaker(TurnSettings(hangover_ms=HANGOVER_MS, min_speech_ms=60))
        eot = EndOfTurn(UNFINISHED_WORDS, UNFINISHED_OPENERS)
        self.pieces = TurnPieces(eot, wait_ms, unsure_wait_ms)
        self.texts = list(texts)
        self.now = 0.0
        self.due: list[tuple[float, str]] = []  # transcripts on their way
        self.answers: list[tuple[float, str]] = []
        self.utterance_ends: list[float] = []

    def run(self, pattern: str) -> None:
        """One char per 20 ms frame: 's' speech, '.' silence."""
        for ch in pattern:
            self._until(self.now + F)
            for action in self.turns.on_frame(self.now, ch == "s"):
                if action is Action.START_UTTERANCE:
                    self.pieces.resumed()
                elif action is Action.END_UTTERANCE:
                    self.utterance_ends.append(self.now)
                    self.due.append((self.now + STT_MS, self.texts.pop(0)))

    def _until(self, t: float) -> None:
        """Everything due up to `t`, each at its own time."""
        while True:
            events = [(at, "transcript") for at, _ in self.due[:1]]
            if self.pieces.deadline_ms is not None:
                events.append((self.pieces.deadline_ms, "deadline"))
            at, kind = min(events, default=(t + 1, ""))
            if at > t:
                break
            self.now = at
            if kind == "transcript":
                turn = self.pieces.transcribed(at, self.due.pop(0)[1])
            else:
                turn = self.pieces.expire(at)
            if turn is not None:
                self.answers.append((at, turn))
                self.turns.reply_done()
        self.now = t


def speech(ms: int) -> str:
    return "s" * (ms // F)


def pause(ms: int) -> str:
    return "." * (ms // F)


def test_a_pause_after_an_unfinished_phrase_is_waited_out_and_joined():
    call = FakeCall(["I'd like to book a table for", "four people on Friday."], wait_ms=1500)
    call.run(speech(1000) + pause(700))  # 700 ms: longer than the hangover, the VAD ends it
    first_end = call.utterance_ends[0]
    assert call.pieces.deadline_ms == first_end + STT_MS + 1500  # waiting up to 1.5 s
    assert call.answers == []
    call.run(speech(1000) + pause(2000))
    second_end = call.utterance_ends[1]
    # one turn, both pieces, answered once, as soon as the complete sentence was transcribed
    assert call.answers == [
        (second_end + STT_MS, "I'd like to book a table for four people on Friday.")
    ]


def test_a_complete_sentence_after_a_short_pause_is_answered_at_once():
    for text in ("What time is it?", "Book a table for 4."):
        call = FakeCall([text], wait_ms=1500)
        call.run(speech(800) + pause(1000))
        (end,) = call.utterance_ends
        assert end == 800 + HANGOVER_MS
        assert call.answers == [(end + STT_MS, text)], text  # no added wait
        assert call.pieces.deadline_ms is None


def test_the_wait_expiring_with_nothing_more_answers_with_what_there_is():
    call = FakeCall(["My account number is"], wait_ms=1500)
    call.run(speech(800) + pause(1000))
    assert call.answers == []
    call.run(pause(1500))
    (end,) = call.utterance_ends
    assert call.answers == [(end + STT_MS + 1500, "My account number is")]


def test_the_caller_going_on_after_the_wait_is_a_new_turn():
    call = FakeCall(["I'd like to book a table for", "four people."], wait_ms=500)
    call.run(speech(800) + pause(1200) + speech(600) + pause(600))
    first, second = call.utterance_ends
    assert call.answers == [
        (first + STT_MS + 500, "I'd like to book a table for"),
        (second + STT_MS, "four people."),
    ]


def test_the_wait_is_configurable():
    call = FakeCall(["Can you tell me about the um"], wait_ms=800)
    call.run(speech(800) + pause(1500))
    (end,) = call.utterance_ends
    assert call.answers == [(end + STT_MS + 800, "Can you tell me about the um")]


def test_a_sentence_that_may_go_on_gets_the_shorter_wait():
    call = FakeCall(["Eight of spades, four of clubs."], wait_ms=1500, unsure_wait_ms=700)
    call.run(speech(1500) + pause(1500))
    (end,) = call.utterance_ends
    assert call.answers == [(end + STT_MS + 700, "Eight of spades, four of clubs.")]
    call = FakeCall(
        ["Unless it rains all day", "we go to the beach."], wait_ms=1500, unsure_wait_ms=700
    )
    call.run(speech(1500) + pause(600) + speech(600) + pause(600))
    second_end = call.utterance_ends[1]
    # joined, and answered at once: the piece that followed the clause is its main clause
    assert call.answers == [(second_end + STT_MS, "Unless it rains all day we go to the beach.")]


def test_the_wait_can_be_turned_off():
    call = FakeCall(
        ["I'd like to book a table for", "four people on Friday."], wait_ms=0, unsure_wait_ms=700
    )
    call.run(speech(1000) + pause(700) + speech(1000) + pause(700))
    first, second = call.utterance_ends
    assert call.answers == [  # each piece its own turn, at once: the behaviour before
        (first + STT_MS, "I'd like to book a table for"),
        (second + STT_MS, "four people on Friday."),
    ]


def test_a_piece_said_while_the_caller_talks_on_is_kept_without_a_decision():
    pieces = TurnPieces(EndOfTurn(UNFINISHED_WORDS), wait_ms=1500)
    pieces.keep("What time")  # its transcript came while the caller was talking again
    assert pieces.deadline_ms is None and pieces.text == "What time"
    assert pieces.transcribed(5000, "is it?") == "What time is it?"
    assert pieces.text == ""
