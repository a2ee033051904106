"""Numbers, money, dates and times spoken from fragments, in Mandarin and English."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.speech import (
    FRAGMENTS,
    SpeechError,
    fragment_text,
    say_date,
    say_digits,
    say_money,
    say_number,
    say_time,
)

_ZH_DIGIT = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_ZH_SMALL_UNIT = {"十": 10, "百": 100, "千": 1000}
_ZH_BIG_UNIT = {"万": 10**4, "亿": 10**8}


def read_zh(text: str) -> int:
    """An independent reader of Mandarin numerals, to check what say_number wrote."""
    total, section, digit = 0, 0, None
    for char in text:
        if char in _ZH_DIGIT:
            digit = _ZH_DIGIT[char]
        elif char in _ZH_SMALL_UNIT:
            section += (1 if digit is None else digit) * _ZH_SMALL_UNIT[char]
            digit = None
        elif char in _ZH_BIG_UNIT:
            section += digit or 0
            digit = None
            if char == "亿":
                total = (total + section) * 10**8
            else:
                total += section * 10**4
            section = 0
        else:
            raise AssertionError(f"unexpected {char!r} in {text!r}")
    return total + section + (digit or 0)


_EN_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_EN_WORDS |= {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_EN_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}


def read_en(text: str) -> int:
    total, chunk = 0, 0
    for word in text.split():
        if word in _EN_WORDS:
            chunk += _EN_WORDS[word]
        elif word == "hundred":
            chunk *= 100
        elif word in _EN_SCALES:
            total += chunk * _EN_SCALES[word]
            chunk = 0
        else:
            raise AssertionError(f"unexpected {word!r} in {text!r}")
    return total + chunk


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_mandarin_numbers_read_back_to_the_same_value(value):
    fragments = say_number(value, "zh")
    assert all(f in FRAGMENTS["zh"] for f in fragments)
    assert read_zh(fragment_text(fragments, "zh")) == value


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_english_numbers_read_back_to_the_same_value(value):
    fragments = say_number(value, "en")
    assert all(f in FRAGMENTS["en"] for f in fragments)
    assert read_en(fragment_text(fragments, "en")) == value


@pytest.mark.parametrize(
    ("value", "zh", "en"),
    [
        (0, "零", "zero"),
        (15, "十五", "fifteen"),
        (110, "一百一十", "one hundred ten"),
        (123, "一百二十三", "one hundred twenty three"),
        (200, "两百", "two hundred"),
        (1005, "一千零五", "one thousand five"),
        (10050, "一万零五十", "ten thousand fifty"),
        (20000, "两万", "twenty thousand"),
        (100010, "十万零一十", "one hundred thousand ten"),
        (100000005, "一亿零五", "one hundred million five"),
    ],
)
def test_number_readings(value, zh, en):
    assert fragment_text(say_number(value, "zh"), "zh") == zh
    assert fragment_text(say_number(value, "en"), "en") == en


@pytest.mark.parametrize(
    ("amount", "currency", "zh", "en"),
    [
        ("123.45", "CNY", "一百二十三元四角五分", "one hundred twenty three yuan forty five fen"),
        ("123.00", "CNY", "一百二十三元整", "one hundred twenty three yuan"),
        ("123.05", "CNY", "一百二十三元零五分", "one hundred twenty three yuan five fen"),
        ("0.40", "CNY", "四角", "forty fen"),
        ("0", "CNY", "零元", "zero yuan"),
        ("-12.5", "CNY", "负十二元五角", "minus twelve yuan fifty fen"),
        ("1.01", "USD", "一美元一美分", "one dollar one cent"),
        ("20.10", "USD", "二十美元十美分", "twenty dollars ten cents"),
    ],
)
def test_money(amount, currency, zh, en):
    assert fragment_text(say_money(Decimal(amount), currency, "zh"), "zh") == zh
    assert fragment_text(say_money(Decimal(amount), currency, "en"), "en") == en


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False), st.sampled_from(["zh", "en"]))
def test_money_uses_only_known_fragments(amount, language):
    assert all(f in FRAGMENTS[language] for f in say_money(amount, "CNY", language))


def test_dates_and_times():
    day = dt.date(2026, 10, 1)
    assert fragment_text(say_date(day, "zh"), "zh") == "二零二六年十月一日星期四"
    assert fragment_text(say_date(day, "en"), "en") == "Thursday October first two thousand twenty six"
    assert fragment_text(say_date(dt.date(2027, 2, 23), "en"), "en") == "Tuesday February twenty third two thousand twenty seven"
    assert fragment_text(say_time(dt.time(14, 30), "zh"), "zh") == "下午两点三十分"
    assert fragment_text(say_time(dt.time(9, 0), "zh"), "zh") == "上午九点整"
    assert fragment_text(say_time(dt.time(14, 30), "en"), "en") == "two thirty p m"
    assert fragment_text(say_time(dt.time(9, 5), "en"), "en") == "nine oh five a m"
    assert fragment_text(say_time(dt.time(12, 0), "en"), "en") == "twelve o'clock p m"


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2999, 12, 31)), st.times(), st.sampled_from(["zh", "en"]))
def test_every_date_and_time_uses_known_fragments(day, moment, language):
    for fragments in (say_date(day, language), say_time(moment, language)):
        assert fragments and all(f in FRAGMENTS[language] for f in fragments)


def test_digits_skip_anything_else_and_unknown_languages_fail():
    assert say_digits("SO-0012", "en") == ["say/0", "say/0", "say/1", "say/2"]
    with pytest.raises(SpeechError):
        say_number(5, "fr")
