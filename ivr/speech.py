"""Spoken numbers, money, dates and times, assembled from prompt fragments.

Each function returns fragment prompt ids (``say/3``, ``say/100``, ``say/yuan``, ...) that
exist in :data:`FRAGMENTS` for the language; ``callcenter prompts build`` records every
fragment once per language, and the session plays them in a row.

Mandarin follows the usual reading rules (十五 not 一十五 at the start, 零 for skipped places,
两 for a leading 2 before 百/千/万/亿, 元角分 for money, 年月日 + 星期 for dates).
English reads "one hundred twenty three yuan forty five fen", "Thursday, October first,
two thousand twenty six" and "two thirty p m".
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from ivr.errors import IvrError

SPEECH_LANGUAGES = ("zh", "en")
SAY_KINDS = ("digits", "number", "money", "date", "time")

_ZH_DIGITS = "零一二三四五六七八九"
_EN_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty", 90: "ninety"}
_EN_MONTHS = "January February March April May June July August September October November December".split()
_EN_WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_EN_ORDINAL_SMALL = (
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()
_ZH_WEEKDAYS = "一二三四五六日"


def _zh_fragments() -> dict[str, str]:
    out = {f"say/{d}": _ZH_DIGITS[d] for d in range(10)}
    out |= {
        "say/liang": "两",
        "say/10": "十",
        "say/100": "百",
        "say/1000": "千",
        "say/10000": "万",
        "say/100000000": "亿",
        "say/neg": "负",
        "say/yuan": "元",
        "say/jiao": "角",
        "say/fen": "分",
        "say/zheng": "整",
        "say/dollar": "美元",
        "say/cent": "美分",
        "say/year": "年",
        "say/month": "月",
        "say/day": "日",
        "say/am": "上午",
        "say/pm": "下午",
        "say/hour": "点",
        "say/minute": "分",
    }
    out |= {f"say/wd_{i + 1}": f"星期{_ZH_WEEKDAYS[i]}" for i in range(7)}
    return out


def _en_fragments() -> dict[str, str]:
    out = {f"say/{n}": word for n, word in enumerate(_EN_SMALL)}
    out |= {f"say/{n}": word for n, word in _EN_TENS.items()}
    out |= {
        "say/100": "hundred",
        "say/1000": "thousand",
        "say/1000000": "million",
        "say/1000000000": "billion",
        "say/neg": "minus",
        "say/yuan": "yuan",
        "say/fen": "fen",
        "say/dollar": "dollar",
        "say/dollars": "dollars",
        "say/cent": "cent",
        "say/cents": "cents",
        "say/am": "a m",
        "say/pm": "p m",
        "say/oclock": "o'clock",
        "say/oh": "oh",
    }
    out |= {f"say/month_{i + 1}": name for i, name in enumerate(_EN_MONTHS)}
    out |= {f"say/wd_{i + 1}": name for i, name in enumerate(_EN_WEEKDAYS)}
    out |= {f"say/ord_{d}": _en_ordinal_word(d) for d in range(1, 32)}
    return out


def _en_ordinal_word(day: int) -> str:
    if day <= 20:
        return _EN_ORDINAL_SMALL[day]
    if day == 30:
        return "thirtieth"
    tens, ones = divmod(day, 10)
    return f"{_EN_TENS[tens * 10]} {_EN_ORDINAL_SMALL[ones]}"


FRAGMENTS: dict[str, dict[str, str]] = {"zh": _zh_fragments(), "en": _en_fragments()}
"""Fragment prompt id -> the text recorded for it, per language."""


class SpeechError(IvrError, ValueError):
    """A value cannot be spoken (unsupported language, out of range).

    Also a :class:`ValueError` (a value that cannot be spoken is a bad value), so callers that catch
    ``ValueError`` keep working.
    """


def _check_language(language: str) -> None:
    if language not in FRAGMENTS:
        raise SpeechError(f"no number speech for language {language!r} (have {', '.join(SPEECH_LANGUAGES)})")


# ----------------------------------------------------------------------------------- integers


def _zh_group(value: int, *, leading: bool) -> list[str]:
    """0 < value < 10000; ``leading``: the first group spoken (十五 instead of 一十五, 两 for 2)."""
    out: list[str] = []
    started = False
    zero = False
    for place in (1000, 100, 10, 1):
        digit = value // place % 10
        if digit == 0:
            zero = zero or started
            continue
        if zero:
            out.append("say/0")
            zero = False
        if place == 10 and digit == 1 and leading and not started:
            out.append("say/10")
        else:
            first = leading and not started
            if digit == 2 and first and place in (100, 1000):
                out.append("say/liang")
            else:
                out.append(f"say/{digit}")
            if place > 1:
                out.append(f"say/{place}")
        started = True
    return out


def zh_integer(value: int) -> list[str]:
    if value < 0:
        return ["say/neg", *zh_integer(-value)]
    if value == 0:
        return ["say/0"]
    if value >= 10**16:
        raise SpeechError(f"{value} is too large to say")
    groups = []
    rest = value
    while rest:
        rest, group = divmod(rest, 10000)
        groups.append(group)
    out: list[str] = []
    zero_pending = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero_pending = bool(out)
            continue
        if out and (group < 1000 or zero_pending):
            out.append("say/0")
        spoken = _zh_group(group, leading=not out)
        if not out and group == 2 and index > 0:
            spoken = ["say/liang"]  # 两万, 两亿
        out += spoken
        if index == 1:
            out.append("say/10000")
        elif index == 2:
            out.append("say/100000000")
        elif index == 3:
            out += ["say/10000", "say/100000000"]
        zero_pending = False
    return out


def _en_below_thousand(value: int) -> list[str]:
    out: list[str] = []
    hundreds, rest = divmod(value, 100)
    if hundreds:
        out += [f"say/{hundreds}", "say/100"]
    if rest:
        if rest < 20:
            out.append(f"say/{rest}")
        else:
            tens, ones = divmod(rest, 10)
            out.append(f"say/{tens * 10}")
            if ones:
                out.append(f"say/{ones}")
    return out


def en_integer(value: int) -> list[str]:
    if value < 0:
        return ["say/neg", *en_integer(-value)]
    if value == 0:
        return ["say/0"]
    if value >= 10**12:
        raise SpeechError(f"{value} is too large to say")
    out: list[str] = []
    for scale, word in ((10**9, "say/1000000000"), (10**6, "say/1000000"), (10**3, "say/1000")):
        chunk = value // scale % 1000
        if chunk:
            out += _en_below_thousand(chunk) + [word]
    out += _en_below_thousand(value % 1000)
    return out


def say_number(value: int, language: str) -> list[str]:
    _check_language(language)
    return zh_integer(value) if language == "zh" else en_integer(value)


def say_digits(text: str, language: str) -> list[str]:
    """Digit by digit (order numbers, phone numbers); anything but 0-9 is skipped."""
    _check_language(language)
    return [f"say/{ch}" for ch in str(text) if ch.isdigit() and ch.isascii()]


# -------------------------------------------------------------------------------------- money


def say_money(amount: Decimal | int | str, currency: str, language: str) -> list[str]:
    """CNY in yuan/jiao/fen (zh) or yuan/fen (en); USD in dollars/cents; other codes as CNY."""
    _check_language(language)
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    negative = value < 0
    value = abs(value)
    whole = int(value)
    cents = int((value - whole) * 100)
    out = ["say/neg"] if negative else []
    usd = currency.upper() == "USD"
    if language == "zh":
        if usd:
            if whole or not cents:
                out += zh_integer(whole) + ["say/dollar"]
            if cents:
                out += zh_integer(cents) + ["say/cent"]
            return out
        jiao, fen = divmod(cents, 10)
        if whole or not cents:
            out += zh_integer(whole) + ["say/yuan"]
        if not cents:
            if whole:
                out.append("say/zheng")
            return out
        if jiao:
            out += [f"say/{jiao}", "say/jiao"]
        elif whole:
            out.append("say/0")
        if fen:
            out += [f"say/{fen}", "say/fen"]
        return out
    if usd:
        if whole or not cents:
            out += en_integer(whole) + ["say/dollar" if whole == 1 else "say/dollars"]
        if cents:
            out += en_integer(cents) + ["say/cent" if cents == 1 else "say/cents"]
        return out
    if whole or not cents:
        out += en_integer(whole) + ["say/yuan"]
    if cents:
        out += en_integer(cents) + ["say/fen"]
    return out


# --------------------------------------------------------------------------------- date, time


def say_date(day: dt.date, language: str) -> list[str]:
    _check_language(language)
    if isinstance(day, dt.datetime):
        day = day.date()
    weekday = f"say/wd_{day.isoweekday()}"
    if language == "zh":
        return (
            say_digits(f"{day.year:04d}", "zh")
            + ["say/year"]
            + zh_integer(day.month)
            + ["say/month"]
            + zh_integer(day.day)
            + ["say/day", weekday]
        )
    return [weekday, f"say/month_{day.month}", f"say/ord_{day.day}"] + en_integer(day.year)


def say_time(moment: dt.time | dt.datetime, language: str) -> list[str]:
    """Hours and minutes on a 12-hour clock (上午/下午, a m / p m)."""
    _check_language(language)
    hour, minute = moment.hour, moment.minute
    half = "say/am" if hour < 12 else "say/pm"
    hour12 = hour % 12 or 12
    if language == "zh":
        out = [half] + zh_integer(hour12) + ["say/hour"]
        if hour12 == 2:
            out[1] = "say/liang"  # 两点
        if minute:
            out += zh_integer(minute) + ["say/minute"]
        else:
            out.append("say/zheng")
        return out
    out = en_integer(hour12)
    if minute == 0:
        out.append("say/oclock")
    elif minute < 10:
        out += ["say/oh", f"say/{minute}"]
    else:
        out += en_integer(minute)
    return out + [half]


def fragment_text(fragments: list[str], language: str) -> str:
    """The words a fragment sequence says (spaces between English words, none in Mandarin)."""
    table = FRAGMENTS.get(language, {})
    words = [table.get(item, item) for item in fragments]
    return ("" if language == "zh" else " ").join(words)
