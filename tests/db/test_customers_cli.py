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
    assert result.code == 1 and "no such file" in result.err
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert "empty" in ready("customers", "import", str(empty)).err


def test_non_utf8_row_is_rejected_not_fatal(ready, tmp_path):
    src = tmp_path / "latin1.csv"
    src.write_bytes(b"external_id,name,phone\nL1,Jos\xe9,13912345678\nL2,Ana,13912345679\n")
    result = ready("customers", "import", str(src))
    assert result.code == 1
    assert "not valid UTF-8" in result.out
    assert set(customer_rows(ready.database_url)) == {"L2"}


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
