"""Row validation and the streaming reader, sequential and in a process pool."""

import io
import random
from decimal import Decimal
from pathlib import Path

import pytest

from callcenter.customer_csv import COLUMNS, CsvFormatError, CustomerRecord, RejectedRow, parse_row, read_customers


def parse(**row):
    return parse_row(row, 2, tuple(row), "CN")


def test_valid_row_normalises_numbers_and_values():
    record = parse(external_id=" A1 ", name="张伟", phone="139 1234 5678; +86 13912345678;021-62345678",
                   tier="VIP", blacklisted="yes", credit_limit="12,000.5", email="a@b.cn")
    assert isinstance(record, CustomerRecord)
    assert record.external_id == "A1"
    assert [p.e164 for p in record.phones] == ["+8613912345678", "+862162345678"], "same number twice is kept once"
    assert record.values["tier"] == "vip" and record.values["blacklisted"] is True
    assert record.values["credit_limit"] == Decimal("12000.50")


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"external_id": "", "name": "x", "phone": "13912345678"}, "external_id is empty"),
        ({"external_id": "a", "name": " ", "phone": "13912345678"}, "name is empty"),
        ({"external_id": "a", "name": "x", "phone": ""}, "phone is empty"),
        ({"external_id": "a", "name": "x", "phone": "13912345678;999"}, "phone '999'"),
        ({"external_id": "a", "name": "x", "phone": "13912345678", "tier": "diamond"}, "tier 'diamond'"),
        ({"external_id": "a", "name": "x", "phone": "13912345678", "blacklisted": "maybe"}, "not yes/no"),
        ({"external_id": "a", "name": "x", "phone": "13912345678", "balance": "lots"}, "not a number"),
        ({"external_id": "a", "name": "x", "phone": "13912345678", "balance": "NaN"}, "out of range"),
        ({"external_id": "a", "name": "x" * 300, "phone": "13912345678"}, "longer than 200"),
        ({"external_id": "a", "name": "x", "phone": ";".join(["13912345678"] * 11)}, "more than 10"),
    ],
)
def test_bad_rows_say_why(row, reason):
    result = parse(**row)
    assert isinstance(result, RejectedRow) and reason in result.reason and result.line == 2


def test_sql_and_markup_in_fields_are_plain_data():
    record = parse(external_id="x'; DROP TABLE customers;--", name="[red]Robert'); --", phone="13912345678")
    assert isinstance(record, CustomerRecord) and record.values["name"] == "[red]Robert'); --"


def test_header_problems_stop_the_file():
    with pytest.raises(CsvFormatError, match="missing required column"):
        list(read_customers(io.StringIO("name,phone\nx,1\n"), Path("f.csv"), "CN"))
    with pytest.raises(CsvFormatError, match="more than once"):
        list(read_customers(io.StringIO("external_id,name,phone,name\n"), Path("f.csv"), "CN"))


def test_pool_gives_the_same_results_in_the_same_order(tmp_path):
    rng = random.Random(1)
    lines = [",".join(COLUMNS[:3])]
    for i in range(5000):
        ext = f"E{rng.randint(0, 4000)}"  # plenty of duplicates
        phone = rng.choice(["13912345678", "+1 415 867 5309", "12", "021-62345678"])
        name = rng.choice(["A", "", '"multi\nline"'])
        lines.append(f"{ext},{name},{phone}")
    text = "\n".join(lines) + "\n"
    sequential = list(read_customers(io.StringIO(text), Path("f.csv"), "CN", workers=1))
    pooled = list(read_customers(io.StringIO(text), Path("f.csv"), "CN", workers=2, chunk=97))
    assert pooled == sequential
    assert [r.line for r in pooled] == sorted(r.line for r in pooled)
    assert any("already on line" in r.reason for r in pooled if isinstance(r, RejectedRow))
    assert sum(isinstance(r, CustomerRecord) for r in pooled) > 1000
