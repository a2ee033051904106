from hypothesis import given, strategies as st

from screenpop.numbers import display, normalize


def test_common_ways_of_writing_a_chinese_mobile_agree():
    forms = ["+86 139 1234 5678", "13912345678", "0086 139-1234-5678", "(139) 1234 5678", "sip:13912345678@10.0.0.1"]
    assert {normalize(f, "CN").e164 for f in forms} == {"+8613912345678"}
    assert normalize("13912345678", "CN").kind == "mobile"


def test_fixed_line_and_foreign_numbers():
    assert normalize("021-6234 5678", "CN").e164 == "+862162345678"
    assert normalize("+1 415 867 5309", "CN").e164 == "+14158675309"
    assert normalize("(415) 867-5309", "US").e164 == "+14158675309"


def test_unreadable_caller_ids_give_none():
    for raw in ["", None, "anonymous", "Restricted", "+", "12", "\x1b[31m139", "'; DROP TABLE customers;--", "9" * 70]:
        assert normalize(raw, "CN") is None


def test_strict_rejects_invalid_but_lenient_keeps_possible():
    assert normalize("+86 100 0000 0000", "CN") is None
    assert normalize("+8613912345678", "CN", strict=False) is not None


def test_display_is_national_at_home():
    assert display("+8613912345678", "CN") == "139 1234 5678"
    assert display("+14158675309", "CN").startswith("+1")


@given(st.text(max_size=80))
def test_normalize_never_raises(raw):
    result = normalize(raw, "CN", strict=False)
    assert result is None or result.e164.startswith("+")
