from callcenter.security import hash_pin, is_pin_hash, redact_url, verify_pin


def test_pin_hash_round_trip_and_salted():
    first, second = hash_pin("1234"), hash_pin("1234")
    assert first != second, "each hash has its own salt"
    assert is_pin_hash(first)
    assert verify_pin("1234", first) and verify_pin("1234", second)
    assert not verify_pin("1235", first)
    assert not verify_pin("1234", "1234"), "a plain PIN is never accepted as a hash"


def test_redact_url_hides_password_only():
    assert redact_url("postgresql+psycopg://cc:s3cr3t@db:5432/x") == "postgresql+psycopg://cc:***@db:5432/x"
    assert redact_url("sqlite:///var/callcenter.db") == "sqlite:///var/callcenter.db"
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
