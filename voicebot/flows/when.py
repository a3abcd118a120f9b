"""Dates and times as callers say them, resolved against "now" in the bot's timezone.

"tomorrow at seven pm" needs a reference day and a timezone to mean anything; both come from the
flow library configuration (`flows.timezone`), so a bot in Berlin and one in New York agree with
their callers about what "tomorrow" is. Hours without am/pm follow the habit of bookings and
appointments: 1–7 mean the afternoon or evening, 8–11 the morning.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from .spoken import ORDINALS, TENS, UNITS, number_at, tokens

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
]  # fmt: skip
_MONTH_ABBR = {m[:3]: n for n, m in enumerate(MONTHS, 1)} | {"sept": 9}
_PM_WORDS = {"pm", "evening", "tonight", "afternoon", "night"}
_AM_WORDS = {"am", "morning"}
_FILLER = {
    *WEEKDAYS, "today", "tomorrow", "tonight", "next", "this", "on", "day", "after", "the",
    "evening", "morning", "afternoon", "night", "in", "please", "um", "uh", "say", "let's",
}  # fmt: skip
_CLOCK = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)")
_AM_PM = re.compile(r"\b([ap])\.\s?m\b\.?")


def _am_pm(low: str) -> str:
    """'p.m.' as STT engines write it, as the 'pm' the rules read ('8 p.m.' is 8 pm, not 8 am)."""
    return _AM_PM.sub(r"\1m", low)


def _month(word: str) -> int | None:
    if word in MONTHS:
        return MONTHS.index(word) + 1
    return _MONTH_ABBR.get(word)


def _day_number(toks: list[str], n: int) -> tuple[int, int]:
    """A day of the month at toks[n] ("22nd", "twenty second", "5"); (day, used) or (0, 0)."""
    if n >= len(toks):
        return 0, 0
    value, used = number_at(toks, n, ordinals=True)
    if used and isinstance(value, int) and 1 <= value <= 31:
        return value, used
    return 0, 0


def parse_date(text: str, now: datetime) -> date | None:
    low = text.lower()
    iso = re.search(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)", low)
    if iso:
        try:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
        except ValueError:
            return None
    toks = tokens(_am_pm(low))
    today = now.date()
    joined = " ".join(toks)
    if "day after tomorrow" in joined:
        return today + timedelta(days=2)
    if "tomorrow" in toks:
        return today + timedelta(days=1)
    if "today" in toks or "tonight" in toks:
        return today
    rel = re.search(r"\bin (\w+(?: \w+)?) (day|days|week|weeks)\b", joined)
    if rel:
        rtoks = rel[1].split()
        value, used = number_at(rtoks, 0)
        if rel[1] in ("a", "one"):
            value, used = 1, 1
        if used:
            days = int(value) * (7 if rel[2].startswith("week") else 1)
            return today + timedelta(days=days)
    for n, word in enumerate(toks):
        if word in WEEKDAYS:
            ahead = (WEEKDAYS.index(word) - today.weekday()) % 7
            if n > 0 and toks[n - 1] == "next" and ahead == 0:
                ahead = 7
            return today + timedelta(days=ahead)
        month = _month(word)
        if (month is not None and word != "may") or (word == "may" and _near_day(toks, n)):
            day, _ = _day_number(toks, n + 1)  # "march 5th"
            if not day and n >= 2 and toks[n - 1] == "of":  # "the 5th of march"
                day = _day_before(toks, n - 1)
            if not day and n >= 1:  # "5 march"
                day = _day_before(toks, n)
            if day:
                year = _year(toks, n)
                return _future_date(year, month, day, today)  # type: ignore[arg-type]
    for n, word in enumerate(toks):  # "the 22nd"
        if word == "the" and n + 1 < len(toks):
            day, used = _day_number(toks, n + 1)
            if day and (toks[n + 1] in ORDINALS or re.search(r"\d(st|nd|rd|th)$", toks[n + 1])):
                month, year = today.month, today.year
                if day < today.day:
                    month, year = (1, year + 1) if month == 12 else (month + 1, year)
                try:
                    return date(year, month, day)
                except ValueError:
                    return None
    return None


def _near_day(toks: list[str], n: int) -> bool:
    return bool(_day_number(toks, n + 1)[0] or (n >= 1 and _day_before(toks, n)))


def _day_before(toks: list[str], n: int) -> int:
    for start in (n - 2, n - 1):
        if start >= 0:
            day, used = _day_number(toks, start)
            if day and start + used == n:
                return day
    return 0


def _year(toks: list[str], n: int) -> int | None:
    for word in toks[n + 1 : n + 4]:
        if re.fullmatch(r"\d{4}", word):
            return int(word)
    return None


def _future_date(year: int | None, month: int, day: int, today: date) -> date | None:
    try:
        if year is not None:
            return date(year, month, day)
        candidate = date(today.year, month, day)
        if candidate < today:
            candidate = date(today.year + 1, month, day)
        return candidate
    except ValueError:
        return None


def parse_time(text: str) -> time | None:
    low = _am_pm(text.lower()).replace("o'clock", "oclock")
    words = set(tokens(low))
    if "noon" in words or "midday" in words:
        return time(12, 0)
    if "midnight" in words:
        return time(0, 0)
    hour = minute = None
    clock = _CLOCK.search(low)
    compact = re.search(r"\b(\d{1,2})\s*(am|pm)\b", low)
    toks = tokens(low)
    if clock:
        hour, minute = int(clock[1]), int(clock[2])
    elif compact:
        hour, minute = int(compact[1]), 0
    else:
        hour, minute = _spoken_clock(toks)
    if hour is None or minute is None or hour > 23 or minute > 59:
        return None
    if hour <= 12:
        if words & _PM_WORDS or re.search(r"\d\s*pm\b", low):
            hour = hour % 12 + 12
        elif words & _AM_WORDS or re.search(r"\d\s*am\b", low):
            hour = hour % 12
        elif 1 <= hour <= 7:
            hour += 12
    return time(hour, minute)


def _hour_word(toks: list[str], n: int) -> tuple[int | None, int]:
    if n >= len(toks):
        return None, 0
    value, used = number_at(toks, n)
    if used == 1 and isinstance(value, int) and 0 <= value <= 23:
        return value, used
    if used == 2 and toks[n] in TENS and isinstance(value, int) and value <= 23:
        return value, used
    return None, 0


def _spoken_clock(toks: list[str]) -> tuple[int | None, int | None]:
    """Clock times said in words: half past seven, quarter to eight, seven thirty pm, at seven."""
    for n, word in enumerate(toks):
        if word in ("half", "quarter") and n + 2 < len(toks) and toks[n + 1] in ("past", "to"):
            hour, used = _hour_word(toks, n + 2)
            if hour is not None:
                minutes = 30 if word == "half" else 15
                if toks[n + 1] == "to":
                    return (hour - 1) % 24, 60 - minutes
                return hour, minutes
        anchored = word == "at" or (n + 1 < len(toks) and toks[n + 1] in ("oclock", "am", "pm"))
        start = n + 1 if word == "at" else n
        if anchored and (word == "at" or word in UNITS or word in TENS):
            hour, used = _hour_word(toks, start)
            if hour is None:
                continue
            minute = 0
            after = start + used
            if after < len(toks):
                mins, mused = number_at(toks, after)
                if toks[after] == "oh" and after + 1 < len(toks):
                    mins, mused = number_at(toks, after + 1)
                    mused += 1
                if mused and isinstance(mins, int) and 0 <= mins <= 59:
                    minute = mins
            return hour, minute
    toks = [t for t in toks if t not in _FILLER]
    if len(toks) <= 3 and toks:  # a bare answer to "what time?": "seven", "seven thirty"
        hour, used = _hour_word(toks, 0)
        if hour is not None:
            rest = toks[used:]
            if rest and rest[0] not in ("am", "pm", "oclock"):
                mins, mused = number_at(rest, 0)
                if mused and isinstance(mins, int) and 0 <= mins <= 59:
                    return hour, mins
                return None, None
            return hour, 0
    return None, None


def datetime_parts(text: str, now: datetime) -> tuple[date | None, time | None]:
    """The day and the time said in `text`, each None when not said ("saturday" has no time)."""
    t = parse_time(text if _CLOCK.search(text) else _without_date_words(text))
    return parse_date(text, now), t


def next_occurrence(t: time, now: datetime) -> datetime:
    """A time said without a day: today if it is still ahead, else tomorrow."""
    candidate = datetime.combine(now.date(), t, tzinfo=now.tzinfo)
    return candidate if candidate > now else candidate + timedelta(days=1)


def parse_datetime(text: str, now: datetime) -> datetime | None:
    """Both a day and a time; a time alone means its next occurrence from now."""
    d, t = datetime_parts(text, now)
    if t is None:
        return None
    if d is None:
        return next_occurrence(t, now)
    return datetime.combine(d, t, tzinfo=now.tzinfo)


def _without_date_words(text: str) -> str:
    """Remove day numbers and months so "march 5th at 7" does not read 5 as the hour."""
    toks = tokens(_am_pm(text.lower()).replace("o'clock", " oclock "))
    out: list[str] = []
    n = 0
    while n < len(toks):
        word = toks[n]
        if _month(word) is not None and word != "may":
            n += 1
            day, used = _day_number(toks, n)
            n += used
            if out and out[-1] == "of":
                out.pop()
            while out and (_day_number(out, len(out) - 1)[0] or out[-1] == "the"):
                out.pop()
            continue
        if word == "the" and n + 1 < len(toks):
            day, used = _day_number(toks, n + 1)
            if day:
                n += 1 + used
                continue
        if re.fullmatch(r"\d{1,2}(st|nd|rd|th)", word) or (word in ORDINALS):
            n += 1
            continue
        if word == "in" and n + 2 < len(toks) and toks[n + 2] in ("day", "days", "week", "weeks"):
            n += 3
            continue
        out.append(word)
        n += 1
    return " ".join(out)
