"""Customer import, export and show, end to end through the command line on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callcenter.db import Database
from callcenter.db.models import AuditEntry, Customer, PhoneNumber

GOOD_AND_BAD = """external_id,name,phone,company,email,tier,language,notes
C001,张伟,13912345678,,zw@example.cn,vip,zh,prefers mornings
C002,Emily Carter,+1 415 867 5309;+1 212 736 0101,Acme Corp,emily@acme.example,gold,en,
C003,,13800138000,,,,,
C004,No Number,12,,,,,
C005,Bad Tier,13800138001,,,platinum,,
C001,Duplicate Row,13700137000,,,,,
C006,"Multi
Line",13600136000,,,,,"note, with comma"
C007,Extra,13500135000,,,,,,surplus
C008,Bad Mail,13500135001,,not-an-email,,,
C009,"王芳",021-6234 5678,上海某某有限公司,,standard,zh,
"""


def customer_rows(url: str) -> dict[str, tuple]:
    db = Database(url)
    with db.session() as s:
        rows = s.execute(select(Customer.external_id, Customer.name, Customer.tier, Customer.updated_at)).all()
        phones = s.execute(select(Customer.external_id, PhoneNumber.e164).join(PhoneNumber)).all()
    db.dispose()
    numbers: dict[str, set] = {}
    for ext, e164 in phones:
        numbers.setdefault(ext, set()).add(e164)
    return {ext: (name, tier, updated, frozenset(numbers.get(ext, ()))) for ext, name, tier, updated in rows}


@pytest.fixture
def ready(cli):
    assert cli("db", "upgrade").code == 0
    return cli


def test_import_keeps_good_rows_and_reports_bad_ones_by_line(ready, tmp_path):
    src = tmp_path / "customers.csv"
    src.write_text(GOOD_AND_BAD, encoding="utf-8")
    result = ready("customers", "import", str(src), "--rejects", str(tmp_path / "rejects.csv"))
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    rows = customer_rows(ready.database_url)
    assert set(rows) == {"C001", "C002", "C006", "C009"}
    assert rows["C001"][:2] == ("张伟", "vip")
    assert rows["C002"][3] == {"+14158675309", "+12127360101"}
    assert rows["C006"][0] == "Multi\nLine"
    assert rows["C009"][3] == {"+862162345678"}
    out = result.out
    expected = {
        4: "name is empty",
        5: "phone '12' is not a valid number",
        6: "tier 'platinum'",
        7: "external_id 'C001' already on line 2",
        10: "more field(s) than the header",
        11: "email 'not-an-email'",
    }
    with (tmp_path / "rejects.csv").open(encoding="utf-8") as handle:
        written = {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}
    assert set(written) == set(expected)
    for line, reason in expected.items():
        assert reason in written[line]
        assert str(line) in out
    assert "4" in out and "6" in out  # new and rejected counts in the summary table


def test_reimport_is_idempotent_and_updates_only_changes(ready, tmp_path):
    src = tmp_path / "customers.csv"
    src.write_text(GOOD_AND_BAD, encoding="utf-8")
    ready("customers", "import", str(src))
    before = customer_rows(ready.database_url)
    again = ready("customers", "import", str(src))
    assert again.code == 1  # the same bad rows are still reported
    assert customer_rows(ready.database_url) == before, "a second import of the same file changes nothing"
    assert "│ 0 " in again.out.replace("┃", "│") or " 0 " in again.out

    changed = tmp_path / "changed.csv"
    changed.write_text(
        "external_id,name,phone\nC001,张伟,13912345678;13912340000\nC002,Emily Carter,+1 415 867 5309\n",
        encoding="utf-8",
    )
    assert ready("customers", "import", str(changed)).code == 0
    after = customer_rows(ready.database_url)
    assert after["C001"][1] == "vip", "columns absent from the file are left alone"
    assert after["C001"][3] == {"+8613912345678", "+8613912340000"}
    assert after["C002"][3] == {"+14158675309"}, "the file's numbers become the customer's numbers"
    assert after["C009"] == before["C009"]


def test_dry_run_writes_nothing(ready, tmp_path):
    src = tmp_path / "customers.csv"
    src.write_text(GOOD_AND_BAD, encoding="utf-8")
    result = ready("customers", "import", str(src), "--dry-run")
    assert "dry run" in result.out and "would be" in result.out
    assert customer_rows(ready.database_url) == {}
    db = Database(ready.database_url)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0
    db.dispose()


def test_export_then_import_round_trips_without_change(ready, tmp_path):
    assert ready("demo-data", "--customers", "60", "--seed", "3").code == 0
    exported = tmp_path / "export.csv"
    result = ready("customers", "export", str(exported))
    assert result.code == 0, result.text
    before = customer_rows(ready.database_url)
    with exported.open(encoding="utf-8") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == 60
    again = ready("customers", "import", str(exported))
    assert again.code == 0, again.text
    assert customer_rows(ready.database_url) == before


def test_file_level_errors_are_clear(ready, tmp_path):
    missing = tmp_path / "bad.csv"
    missing.write_text("id,fullname,tel\n1,x,139\n", encoding="utf-8")
    result = ready("customers", "import", str(missing))
    assert result.code == 2 and "missing required column(s) external_id, name, phone" in result.err
    result = ready("customers", "import", str(tmp_path / "absent.csv"))
    assert result.code == 2 and "no such file" in result.err
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert "empty" in ready("customers", "import", str(empty)).err


def _flat(text: str) -> str:
    """Message text with the terminal's line wrapping undone."""
    return " ".join(text.split())


def _leftovers(folder: Path) -> list[str]:
    """Temporary files an atomic write would leave behind had it not cleaned up."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_non_utf8_row_is_rejected_by_line_and_rejects_file_is_complete(ready, tmp_path):
    src = tmp_path / "latin1.csv"
    src.write_bytes(
        b"external_id,name,phone\n"
        b"L1,Ana,13912345679\n"
        b"L2,Jos\xe9 Garc\xeda,13912345678\n"
        b"L3,Bo,12\n"
        b"L4,\"two\nlin\xe9s\",13912345670\n"
        b"L5,Cy,13912345671\n"
    )
    rejects = tmp_path / "out" / "rejects.csv"
    rejects.parent.mkdir()
    result = ready("customers", "import", str(src), "--rejects", str(rejects))
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    assert "not UTF-8 (byte 0xe9 at column 7); save the file as UTF-8" in result.out
    assert set(customer_rows(ready.database_url)) == {"L1", "L5"}
    text = rejects.read_bytes().decode("utf-8")  # strict: the rejects file is valid UTF-8
    written = {int(r["line"]): r for r in csv.DictReader(text.splitlines(keepends=True))}
    assert sorted(written) == [3, 4, 5], "every rejected row is there, including those after the bad byte"
    assert written[3]["reason"] == "not UTF-8 (byte 0xe9 at column 7); save the file as UTF-8"
    assert written[3]["name"] == "Jos\\xe9 Garc\\xeda", "the original bytes, shown as \\xNN"
    assert "not a valid number" in written[4]["reason"]
    assert written[5]["reason"].startswith("not UTF-8 (byte 0xe9 at line 6, column 4)")
    assert _leftovers(rejects.parent) == []


def test_import_path_problems_exit_2_and_say_what_to_do(ready, tmp_path):
    absent = ready("customers", "import", str(tmp_path / "absent.csv"))
    assert absent.code == 2 and "absent.csv: no such file; check the name and the folder" in _flat(absent.err)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    directory = ready("customers", "import", str(folder))
    assert directory.code == 2 and "folder.csv: is a directory, give a CSV file" in _flat(directory.err)
    for result in (absent, directory):
        assert "Traceback" not in result.text
    assert customer_rows(ready.database_url) == {}


def test_export_to_a_missing_folder_or_failing_leaves_no_file(ready, tmp_path):
    src = tmp_path / "c.csv"
    src.write_text("external_id,name,phone\nX1,Xia,13912345678\n", encoding="utf-8")
    assert ready("customers", "import", str(src)).code == 0

    missing = ready("customers", "export", str(tmp_path / "nonexistent-dir" / "out.csv"))
    assert missing.code == 2 and "Traceback" not in missing.text
    assert f"folder {tmp_path / 'nonexistent-dir'} does not exist" in _flat(missing.err)
    assert not (tmp_path / "nonexistent-dir").exists()
    directory = ready("customers", "export", str(tmp_path))
    assert directory.code == 2 and "is a directory; give a file name in it" in _flat(directory.err)

    target = tmp_path / "export.csv"
    target.write_text("previous export\n", encoding="utf-8")
    failed = ready("customers", "export", str(target), env={"CALLCENTER_DATABASE__URL": f"sqlite:///{tmp_path / 'blank.db'}"})
    assert failed.code != 0 and "Traceback" not in failed.text
    assert target.read_text(encoding="utf-8") == "previous export\n", "a failed export leaves the target as it was"
    assert _leftovers(tmp_path) == []

    done = ready("customers", "export", str(target))
    assert done.code == 0, done.text
    assert target.read_text(encoding="utf-8").splitlines()[1].startswith("X1,Xia,+8613912345678,")
    assert _leftovers(tmp_path) == []


def test_other_bad_inputs_are_clear_and_write_nothing(ready, tmp_path):
    def run(name: str, content: bytes, *extra: str):
        path = tmp_path / name
        path.write_bytes(content)
        result = ready("customers", "import", str(path), *extra)
        assert "Traceback" not in result.text
        return result

    good = b"external_id,name,phone\nG1,Gao,13912345678\n"
    cases = [
        ("empty.csv", b"", 2, "the file is empty; the first line must name the columns"),
        ("wrong.csv", b"id,fullname,tel\n1,x,139\n", 2, "missing required column(s) external_id, name, phone"),
        ("semi.csv", b"external_id;name;phone\nA;B;1\n", 2, "separated by semicolons; use commas"),
        ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 2, "not UTF-8 text (byte 0x89 at column 1)"),
        ("nul.csv", b"external_id,na\x00me,phone\n", 2, "NUL bytes: the file is binary or UTF-16"),
        ("utf16.csv", "external_id,name,phone\n".encode("utf-16"), 2, "UTF-16 text, not CSV text; save it as CSV (UTF-8)"),
        ("book.xlsx", b"PK\x03\x04\x14\x00\x06\x00", 2, "a ZIP archive (an .xlsx workbook?)"),
    ]
    for name, content, code, message in cases:
        result = run(name, content)
        assert (result.code, name) == (code, name), result.text
        assert message in _flat(result.err), (name, result.err)
    assert customer_rows(ready.database_url) == {}

    header_only = run("header.csv", b"external_id,name,phone\r\n")
    assert header_only.code == 0 and "has a header but no rows: nothing to import" in _flat(header_only.err)

    missing_folder = run("g.csv", good, "--rejects", str(tmp_path / "no-such-dir" / "rejects.csv"))
    assert missing_folder.code == 2
    folder = tmp_path / "no-such-dir"
    assert f"--rejects {folder / 'rejects.csv'}: folder {folder} does not exist" in _flat(missing_folder.err)
    same = run("same.csv", good, "--rejects", str(tmp_path / "." / "same.csv"))
    assert same.code == 2 and "is the file being imported and would overwrite it" in _flat(same.err)
    assert (tmp_path / "same.csv").read_bytes() == good, "the input file is untouched"
    assert customer_rows(ready.database_url) == {}, "a bad --rejects path is found before anything is imported"

    bom = run("bom.csv", b"\xef\xbb\xbf" + good, "--rejects", str(tmp_path / "bom-rejects.csv"))
    assert bom.code == 0, bom.text
    assert set(customer_rows(ready.database_url)) == {"G1"}
    assert (tmp_path / "bom-rejects.csv").read_text(encoding="utf-8").startswith("line,reason,external_id,")
    assert _leftovers(tmp_path) == []


def test_show_by_number_external_id_and_id(ready, tmp_path):
    src = tmp_path / "c.csv"
    src.write_text(
        "external_id,name,phone,tier\nS1,Shared One,13912345678,vip\nS2,Shared Two,+86 139 1234 5678,\n"
        "S3,\"[bold red]Mallory[/] \x1b[2J\",13800138000,\n",
        encoding="utf-8",
    )
    ready("customers", "import", str(src))
    both = ready("customers", "show", "139-1234-5678")
    assert both.code == 0 and "2 customers match" in both.out and "Shared One" in both.out and "Shared Two" in both.out
    one = ready("customers", "show", "S1")
    assert one.code == 0 and "Shared One" in one.out and "VIP" in one.out
    hostile = ready("customers", "show", "13800138000")
    assert "[bold red]Mallory[/]" in hostile.out, "markup in a name is shown as typed"
    assert "\x1b[2J" not in hostile.out, "escape sequences never reach the terminal"
    missing = ready("customers", "show", "+1 999 000 0000")
    assert missing.code == 1 and "no customer" in missing.err


@pytest.mark.slow
def test_interrupted_import_keeps_only_whole_batches_and_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update({"CALLCENTER_DATABASE__URL": url, "COLUMNS": "120"})
    base = [sys.executable, "-m", "callcenter", "--config", str(Path(__file__).parents[2] / "config/callcenter.toml")]
    subprocess.run([*base, "db", "upgrade"], env=env, check=True, capture_output=True, cwd=tmp_path)
    src = tmp_path / "big.csv"
    with src.open("w", encoding="utf-8") as out:
        out.write("external_id,name,phone\n")
        for i in range(40000):
            out.write(f"B{i:06d},Customer {i},+86139{i:08d}\n")
    proc = subprocess.Popen(
        [*base, "customers", "import", str(src), "--batch-size", "500"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    db = Database(url)
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline and count == 0:
        time.sleep(0.05)
        with db.session() as s:
            count = s.scalar(select(func.count()).select_from(Customer))
    assert count > 0, "the import never committed a batch"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    with db.session() as s:
        committed = s.scalar(select(func.count()).select_from(Customer))
        without_number = s.scalar(select(func.count()).where(~Customer.phones.any()))
    if proc.returncode == 130:
        assert "interrupted" in err and "Run the same import again" in err
        assert committed < 40000
    assert committed % 500 == 0, f"{committed} rows: a partial batch was committed"
    assert without_number == 0, "a customer was committed without its numbers"
    resumed = subprocess.run(
        [*base, "customers", "import", str(src), "--batch-size", "500"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 40000
        assert s.scalar(select(func.count()).select_from(PhoneNumber)) == 40000
    db.dispose()
