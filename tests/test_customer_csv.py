"""Row validation and the streaming reader, sequential and in a process pool."""

import io
import random
from decimal import Decimal
from pathlib import Path

import pytest

from callcenter.customer_csv import (
    COLUMNS, AtomicOutput, CsvFormatError, CsvPathError, CustomerRecord, RejectedRow, open_customer_csv, parse_row,
    read_customers, write_rejects,
)


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


def _read(data: bytes) -> list[CustomerRecord | RejectedRow]:
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="surrogateescape", newline="")
    return list(read_customers(text, Path("f.csv"), "CN"))


def test_non_utf8_rows_are_rejected_with_line_and_column_and_written_back_as_utf8():
    rows = _read(
        b"external_id,name,phone\r\n\r\n"
        b"A1,Jos\xe9,13912345678\r\n"
        b"A2,\"two\r\nl\xefnes\",13912345679\r\n"
        b"A3,Ann,13912345670\r\n"
    )
    assert [(r.line, r.reason) for r in rows if isinstance(r, RejectedRow)] == [
        (3, "not UTF-8 (byte 0xe9 at column 7); save the file as UTF-8"),
        (4, "not UTF-8 (byte 0xef at line 5, column 2); save the file as UTF-8"),
    ], "line numbers skip the blank line and point at the record's first line"
    assert [r.line for r in rows if isinstance(r, CustomerRecord)] == [6]
    out = io.StringIO()
    write_rejects(out, [r for r in rows if isinstance(r, RejectedRow)])
    out.getvalue().encode("utf-8")  # no lone surrogates left
    assert "Jos\\xe9" in out.getvalue() and "l\\xefnes" in out.getvalue()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "the file is empty"),
        (b"\r\nexternal_id,name,phone\r\n", "line 1 is blank"),
        (b"external_id,n\xe4me,phone\n", "line 1 is not UTF-8 text (byte 0xe4 at column 14)"),
        (b"\x00\x01\x02,a\n", "NUL bytes"),
        (b"external_id\tname\tphone\n", "separated by tabs; use commas"),
    ],
)
def test_unusable_headers_stop_the_file(data, message):
    with pytest.raises(CsvFormatError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        _read(data)
    assert raised.value.exit_code == 2


def test_open_names_the_problem(tmp_path, monkeypatch):
    with pytest.raises(CsvPathError, match="no such file"):
        open_customer_csv(tmp_path / "absent.csv")
    with pytest.raises(CsvPathError, match="is a directory, give a CSV file"):
        open_customer_csv(tmp_path)
    (tmp_path / "book.csv").write_bytes(b"\xff\xfee\x00")
    with pytest.raises(CsvFormatError, match="UTF-16"):
        open_customer_csv(tmp_path / "book.csv")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(CsvPathError, match="permission denied; make the file readable") as raised:
        open_customer_csv(tmp_path / "book.csv")
    assert raised.value.exit_code == 2


def test_atomic_output_replaces_the_target_only_when_complete(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o640)
    with pytest.raises(RuntimeError):
        with AtomicOutput(target) as out:
            out.handle.write("half")
            raise RuntimeError("failed half way")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"], "the temporary file is removed"
    with AtomicOutput(target) as out:
        out.handle.write("new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640, "the target keeps its permissions"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    with AtomicOutput(link) as out:
        out.handle.write("newer\n")
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "newer\n", "a link is written through"
    with pytest.raises(CsvPathError, match="folder .* does not exist; create it") as raised:
        AtomicOutput(tmp_path / "missing" / "out.csv")
    assert raised.value.exit_code == 2
