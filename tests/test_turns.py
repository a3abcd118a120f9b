"""Turn-taking timing with a fake clock, frame by frame."""

from voicebot.call.turns import Action, State, TurnSettings, TurnTaker

F = 20


def feed(tt: TurnTaker, start: float, pattern: str) -> tuple[float, list[tuple[float, Action]]]:
    """pattern: one char per 20 ms frame, 's' speech, '.' silence."""
    out = []
    t = start
    for ch in pattern:
        t += F
        out += [(t, a) for a in tt.on_frame(t, ch == "s")]
    return t, out


def test_end_of_turn_after_hangover():
    tt = TurnTaker(TurnSettings(hangover_ms=300, min_speech_ms=100))
    _, acts = feed(tt, 0, "s" * 10 + "." * 15)
    kinds = [a for _, a in acts]
    assert kinds == [
        Action.START_UTTERANCE,
        Action.USER_STARTED,
        Action.SPECULATE,
        Action.END_UTTERANCE,
    ]
    end_at = dict((a, t) for t, a in acts)[Action.END_UTTERANCE]
    assert end_at == 200 + 300  # last speech frame at 200 ms, 300 ms hangover
    assert tt.state is State.PROCESSING


def test_short_noise_is_not_a_turn():
    tt = TurnTaker(TurnSettings(hangover_ms=100, min_speech_ms=100))
    _, acts = feed(tt, 0, "ss" + "." * 10)
    assert [a for _, a in acts] == [Action.START_UTTERANCE, Action.CANCEL_UTTERANCE]
    assert tt.state is State.LISTENING


def test_pause_shorter_than_hangover_continues_the_utterance():
    tt = TurnTaker(TurnSettings(hangover_ms=300, min_speech_ms=60))
    _, acts = feed(tt, 0, "sssss" + "." * 10 + "sssss" + "." * 15)
    kinds = [a for _, a in acts]
    assert kinds.count(Action.START_UTTERANCE) == 1 and kinds.count(Action.END_UTTERANCE) == 1


def test_barge_in_needs_min_speech_while_bot_speaks():
    tt = TurnTaker(TurnSettings(barge_in_ms=200, min_speech_ms=60, hangover_ms=200))
    tt.set_bot_speaking(True)
    _, acts = feed(tt, 0, "sssss" + "." * 12)  # a 100 ms cough
    assert Action.BARGE_IN not in [a for _, a in acts]
    _, acts = feed(tt, 1000, "s" * 12)
    barge = [t for t, a in acts if a is Action.BARGE_IN]
    assert barge == [1000 + 200]  # exactly when 200 ms of speech accumulated


def test_no_barge_in_when_disallowed():
    tt = TurnTaker(TurnSettings(barge_in_ms=60))
    tt.set_bot_speaking(True, barge_in_allowed=False)
    _, acts = feed(tt, 0, "s" * 30)
    assert Action.BARGE_IN not in [a for _, a in acts]


def test_max_utterance_forces_end():
    tt = TurnTaker(TurnSettings(max_utterance_ms=1000, min_speech_ms=60))
    _, acts = feed(tt, 0, "s" * 60)
    assert [t for t, a in acts if a is Action.END_UTTERANCE] == [1020]


def test_push_to_talk_end_turn():
    tt = TurnTaker(TurnSettings(hangover_ms=5000))
    feed(tt, 0, "s" * 10)
    assert tt.end_turn() == [Action.END_UTTERANCE]
    assert tt.end_turn() == []


def test_barge_in_waits_for_words_when_asked():
    tt = TurnTaker(TurnSettings(hangover_ms=200, barge_in_ms=100, barge_in_needs_words=True))
    tt.set_bot_speaking(True)
    _, acts = feed(tt, 0, "s" * 10)  # 200 ms of "speech" but no word heard yet
    assert [a for _, a in acts] == [Action.START_UTTERANCE]
    assert tt.heard_words() == [Action.BARGE_IN, Action.USER_STARTED]
    assert tt.state is State.USER_SPEAKING
    assert tt.heard_words() == []  # once is enough


def test_words_before_barge_in_ms_still_wait_for_it():
    tt = TurnTaker(TurnSettings(hangover_ms=200, barge_in_ms=100, barge_in_needs_words=True))
    tt.set_bot_speaking(True)
    t, _ = feed(tt, 0, "ss")
    assert tt.heard_words() == []  # 40 ms is too short even with a word
    _, acts = feed(tt, t, "sss")
    assert [a for _, a in acts] == [Action.BARGE_IN, Action.USER_STARTED]


def test_wordless_noise_over_the_bot_is_dropped():
    tt = TurnTaker(TurnSettings(hangover_ms=100, barge_in_ms=100, barge_in_needs_words=True))
    tt.set_bot_speaking(True)
    _, acts = feed(tt, 0, "s" * 15 + "." * 6)  # a door slam the VAD took for speech
    assert [a for _, a in acts] == [Action.START_UTTERANCE, Action.CANCEL_UTTERANCE]
    assert tt.state is State.SPEAKING
    assert tt.heard_words() == []  # too late: that utterance is over


def test_words_do_not_matter_when_the_bot_is_silent():
    tt = TurnTaker(TurnSettings(min_speech_ms=100, barge_in_needs_words=True))
    _, acts = feed(tt, 0, "s" * 5)
    assert [a for _, a in acts] == [Action.START_UTTERANCE, Action.USER_STARTED]


def test_who_may_cut_the_bot_off():
    """The barge-in rules a call applies to speech, keys and the client's `interrupt`."""
    tt = TurnTaker(TurnSettings())
    assert not tt.may_interrupt(replying=False)  # nothing to interrupt
    assert tt.may_interrupt(replying=True)  # still preparing its answer
    assert not tt.key_interrupts()  # a key while it only prepares is just input
    tt.set_bot_speaking(True, barge_in_allowed=True)
    assert tt.may_interrupt(replying=False) and tt.key_interrupts()
    tt.next_piece(barge_in_allowed=False)  # a disclaimer follows, still speaking
    assert tt.bot_speaking and tt.state is State.SPEAKING
    assert not tt.may_interrupt(replying=True) and not tt.key_interrupts()
    tt.next_piece(barge_in_allowed=True)
    assert tt.may_interrupt(replying=True)


def test_an_unanswered_turn_is_kept_for_the_next_one():
    tt = TurnTaker(TurnSettings(min_speech_ms=60, hangover_ms=100))
    feed(tt, 0, "s" * 10 + "." * 10)
    assert tt.state is State.PROCESSING
    assert tt.answer_was_pending(replying=False)  # transcript not in yet
    tt.set_bot_speaking(True)
    assert not tt.answer_was_pending(replying=True)  # the bot is answering it out loud
    tt.set_bot_speaking(False)
    tt.reply_done()
    assert tt.state is State.LISTENING
    assert tt.answer_was_pending(replying=True)  # the reply runs but nothing was said yet
    assert not tt.answer_was_pending(replying=False)


def test_short_speech_over_the_bot_is_held_then_decided_on_its_words():
    """An "mm-hm" (300 ms) over the bot does not cut it off: when it ends, the call transcribes
    it and decides (HELD_UTTERANCE); the bot is still speaking throughout."""
    tt = TurnTaker(TurnSettings(hangover_ms=200, barge_in_ms=200, backchannel_ms=600))
    tt.set_bot_speaking(True)
    _, acts = feed(tt, 0, "s" * 15 + "." * 10)
    assert [a for _, a in acts] == [Action.START_UTTERANCE, Action.HELD_UTTERANCE]
    assert [t for t, a in acts if a is Action.HELD_UTTERANCE] == [300 + 200]
    assert tt.state is State.SPEAKING and tt.bot_speaking


def test_speech_longer_than_a_backchannel_interrupts_at_backchannel_ms():
    tt = TurnTaker(TurnSettings(hangover_ms=200, barge_in_ms=200, backchannel_ms=600))
    tt.set_bot_speaking(True)
    _, acts = feed(tt, 0, "s" * 40)
    assert [(t, a) for t, a in acts if a is Action.BARGE_IN] == [(600, Action.BARGE_IN)]
    assert tt.state is State.USER_SPEAKING


def test_backchannel_window_off_interrupts_at_barge_in_ms():
    tt = TurnTaker(TurnSettings(hangover_ms=200, barge_in_ms=200, backchannel_ms=0))
    tt.set_bot_speaking(True)
    _, acts = feed(tt, 0, "s" * 15 + "." * 10)
    assert [(t, a) for t, a in acts if a is Action.BARGE_IN] == [(200, Action.BARGE_IN)]
    assert Action.HELD_UTTERANCE not in [a for _, a in acts]


def test_held_speech_becomes_a_normal_turn_when_the_bot_falls_silent():
    tt = TurnTaker(TurnSettings(hangover_ms=200, min_speech_ms=60, backchannel_ms=600))
    tt.set_bot_speaking(True)
    t, acts = feed(tt, 0, "s" * 12)
    assert Action.BARGE_IN not in [a for _, a in acts]
    tt.set_bot_speaking(False)  # its sentence ended while the caller spoke
    _, acts = feed(tt, t, "ss" + "." * 10)
    assert [a for _, a in acts] == [Action.USER_STARTED, Action.SPECULATE, Action.END_UTTERANCE]


def test_a_click_over_the_bot_is_still_just_noise():
    tt = TurnTaker(TurnSettings(hangover_ms=200, barge_in_ms=200, backchannel_ms=600))
    tt.set_bot_speaking(True)
    _, acts = feed(tt, 0, "sss" + "." * 10)  # 60 ms: shorter than barge_in_ms
    assert [a for _, a in acts] == [Action.START_UTTERANCE, Action.CANCEL_UTTERANCE]


def test_what_counts_as_a_backchannel():
    from voicebot.call.backchannel import Backchannels
    from voicebot.config.model import BACKCHANNELS

    bc = Backchannels(BACKCHANNELS)
    for text in ("Mm-hm.", "mm hm", "Yeah.", "OK", "Okay, okay.", "Uh-huh, right.", "I see."):
        assert bc.only_backchannel(text), text
    for text in ("", "No.", "yeah but no", "Okay, I want the red one", "yes yes yes yes yes"):
        assert not bc.only_backchannel(text), text
    assert Backchannels(["sounds good"]).only_backchannel("Sounds good!")
