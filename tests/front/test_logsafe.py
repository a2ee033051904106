"""callcenter.logsafe: network text made into one bounded, printable log line."""

from __future__ import annotations

from callcenter.logsafe import LOG_LIMIT, log_safe


def test_terminal_escapes_and_line_breaks_are_shown_not_obeyed():
    assert log_safe(b"a\x1b[2J\x1b]0;owned\x07b") == "a\\x1b[2J\\x1b]0;owned\\x07b"
    assert log_safe("one\r\ntwo\tthree\x00") == "one\\x0d\\x0atwo\\x09three\\x00"
    assert log_safe("\x9b31m \u2028 \u202e \ufeff") == "\\x9b31m \\u2028 \\u202e \\ufeff"  # C1, separators, bidi


def test_bytes_that_are_not_utf8_become_hex_and_text_stays_text():
    assert log_safe(b"\xff\xfe ok \xe6\x9d\x8e") == "\\xff\\xfe ok 李"
    assert log_safe("张三 <sip:13912345678@example.com>") == "张三 <sip:13912345678@example.com>"


def test_a_backslash_is_doubled_so_an_escape_always_means_one_in_the_input():
    assert log_safe("\\x1b") == "\\\\x1b"
    assert log_safe(b"\x1b") != log_safe("\\x1b")


def test_lines_are_bounded_whatever_the_input():
    assert len(log_safe("x" * 100_000)) == LOG_LIMIT + 1 and log_safe("x" * 1000).endswith("…")
    assert len(log_safe(b"\x1b" * 10_000)) <= LOG_LIMIT + 1  # escapes count as what they print
    assert log_safe("short", limit=3) == "sho…"
    assert log_safe(None) == "None" and log_safe(ValueError("bad\nline")) == "bad\\x0aline"
