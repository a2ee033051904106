"""SIP passwords for registering phones: only the digest hash is stored, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from callcenter.db import Database
from callcenter.db.agents import sip_credentials, sip_credentials_version
from callcenter.db.models import SipCredential

AOR = ("--set", "agents.1001.phone=sip:1001@center")


def test_set_sip_password_stores_only_the_ha1(cli, tmp_path):
    assert cli(*AOR, "db", "upgrade").code == 0
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery\n")
    done = cli(*AOR, "agents", "set-sip-password", "1001", "--password-file", str(secret))
    assert done.code == 0, done.text
    assert "user 1001" in done.out and "realm center" in done.out
    db = Database(cli.database_url)
    try:
        with db.session() as s:
            [row] = s.scalars(select(SipCredential)).all()
        assert row.username == "1001" and row.realm == "center"
        assert row.ha1 == hashlib.md5(b"1001:center:correct horse battery").hexdigest()
        assert "correct horse" not in repr(row.__dict__)
        assert sip_credentials(db, {"1001": "1001"}, "center") == ({"1001": row.ha1}, [])
        # a realm changed in the configuration makes the stored hash useless: reported, not used
        assert sip_credentials(db, {"1001": "1001"}, "pbx.example") == ({}, ["1001"])
        before = sip_credentials_version(db)
        secret.write_text("another long secret")
        assert cli(*AOR, "agents", "set-sip-password", "1001", "--password-file", str(secret)).code == 0
        assert sip_credentials_version(db) != before
    finally:
        db.dispose()


def test_set_sip_password_refusals(cli, tmp_path):
    assert cli(*AOR, "db", "upgrade").code == 0
    short = tmp_path / "short"
    short.write_text("abc")
    refused = cli(*AOR, "agents", "set-sip-password", "1001", "--password-file", str(short))
    assert refused.code != 0 and "8 to 128" in refused.text
    fixed = cli("agents", "set-sip-password", "1001", "--password-file", str(short))
    assert fixed.code != 0 and "fixed address" in " ".join(fixed.text.split())
    unknown = cli(*AOR, "agents", "set-sip-password", "nobody", "--password-file", str(short))
    assert unknown.code != 0 and "no agent 'nobody'" in unknown.text
