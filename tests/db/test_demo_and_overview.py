"""Demo data is realistic, deterministic and idempotent; the overview and screen pop render from it."""

import datetime as dt

from sqlalchemy import func, select

from callcenter.config import load
from callcenter.db.customer_profile import load_profile
from callcenter.db.agents import sync_agents
from callcenter.db.demo import demo_callers, generate
from callcenter.db.models import Callback, Case, Customer, Disposition, Interaction, OrderItem, PhoneNumber
from tests.conftest import SAMPLE_CONFIG

NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)


def snapshot(db):
    with db.session() as s:
        return s.execute(
            select(Customer.external_id, Customer.name, Customer.tier, Customer.blacklisted).order_by(Customer.external_id)
        ).all()


def test_demo_data_has_what_agents_must_see(migrated_db):
    settings = load(SAMPLE_CONFIG, environ={}).settings
    sync_agents(migrated_db, settings.agents)
    result = generate(migrated_db, 400, seed=5, now=NOW, agent_ids=["1001", "1002"], queues=list(settings.queues),
                      dispositions=list(settings.dispositions))
    assert result.customers == 400 and result.skipped == 0
    with migrated_db.session() as s:
        count = lambda q: s.scalar(q)  # noqa: E731
        assert count(select(func.count()).where(Customer.tier == "vip")) > 5
        assert count(select(func.count()).where(Customer.blacklisted)) >= 1
        assert count(select(func.count()).where(Customer.language == "zh")) > 200
        assert count(select(func.count()).where(Customer.language == "en")) > 50
        assert count(select(func.count()).where(OrderItem.warranty_end < NOW.date())) > 0, "some warranties expired"
        assert count(select(func.count()).where(OrderItem.warranty_end >= NOW.date())) > 0, "some still running"
        assert count(select(func.count()).where(Case.status == "open")) > 0
        assert count(select(func.count()).where(Case.status == "closed")) > 0
        assert count(select(func.count()).select_from(Disposition)) > 0
        assert count(select(func.count()).select_from(Callback)) > 0
        assert count(select(func.count()).where(Interaction.outcome == "abandoned")) > 0
        numbers = s.scalars(select(PhoneNumber.e164)).all()
        assert all(n.startswith("+86") or n.startswith("+1") for n in numbers)
        vip = s.scalar(select(Customer.id).where(Customer.tier == "vip").limit(1))
    with migrated_db.session() as s:
        profile = load_profile(s, vip)
    assert profile.tier == "vip" and profile.numbers


def test_same_seed_same_data_and_rerun_adds_nothing(migrated_db):
    generate(migrated_db, 50, seed=9, now=NOW)
    first = snapshot(migrated_db)
    again = generate(migrated_db, 50, seed=9, now=NOW)
    assert again.customers == 0 and again.skipped == 50
    assert snapshot(migrated_db) == first
    more = generate(migrated_db, 60, seed=9, now=NOW)
    assert more.customers == 10
    assert snapshot(migrated_db)[:50] == first


def test_sync_agents_adds_updates_and_deactivates(migrated_db):
    settings = load(SAMPLE_CONFIG, environ={}).settings
    assert sync_agents(migrated_db, settings.agents) == (6, 0)
    assert sync_agents(migrated_db, settings.agents) == (0, 0)
    fewer = dict(settings.agents)
    fewer.pop("1005")
    assert sync_agents(migrated_db, fewer) == (0, 1)


def test_cli_demo_data_and_overview(cli):
    assert cli("db", "upgrade").code == 0
    made = cli("demo-data", "--customers", "120", "--seed", "1")
    assert made.code == 0 and "120 customers added" in made.out, made.text
    view = cli("overview")
    assert view.code == 0, view.text
    for heading in ("Queues", "Agents", "Dispositions", "customers", "Customer 360", "Asia/Shanghai"):
        assert heading in view.out
    assert "General enquiries" in view.out and "Li Wei" in view.out


def test_cli_hash_pin(sqlite_cli):
    from callcenter.security import verify_pin

    result = sqlite_cli("agents", "hash-pin", "--pin", "4821")
    assert result.code == 0
    assert verify_pin("4821", result.out.strip())
    bad = sqlite_cli("agents", "hash-pin", "--pin", "12ab")
    assert bad.code == 1 and "4 to 12 digits" in bad.err


def test_every_command_has_help(sqlite_cli):
    for command in (["--help"], ["config", "check", "--help"], ["db", "upgrade", "--help"],
                    ["customers", "import", "--help"], ["customers", "export", "--help"],
                    ["customers", "show", "--help"], ["demo-data", "--help"], ["overview", "--help"]):
        result = sqlite_cli(*command)
        assert result.code == 0 and "Usage" in result.out, command


def test_every_seed_has_a_vip_and_a_blacklisted_customer_with_a_number(migrated_db):
    generate(migrated_db, 2, seed=11, now=NOW)
    with migrated_db.session() as s:
        first, second = s.scalars(select(Customer).order_by(Customer.external_id)).all()
        assert first.tier == "vip" and not first.blacklisted and first.phones and len(first.orders) >= 2
        assert second.blacklisted and second.blacklist_reason and second.phones


def test_demo_callers_are_customers_with_history_and_numbers_nobody_has(migrated_db):
    settings = load(SAMPLE_CONFIG, environ={}).settings
    sync_agents(migrated_db, settings.agents)
    generate(migrated_db, 150, seed=4, now=NOW, agent_ids=["1001"], queues=list(settings.queues),
             dispositions=list(settings.dispositions))
    callers = demo_callers(migrated_db, seed=4, known=20, unknown=6)
    assert callers == demo_callers(migrated_db, seed=4, known=20, unknown=6), "same data and seed, same callers"
    assert len(callers.history) == 20 and len(callers.unknown) == 6
    with migrated_db.session() as s:
        def owners(number):
            return s.scalars(select(PhoneNumber.customer_id).where(PhoneNumber.e164 == number)).all()

        for caller in callers.history:
            (owner,) = owners(caller.number)  # one customer: the pop is their 360, not a choice
            customer = s.get(Customer, owner)
            assert customer.name == caller.name and customer.orders and not customer.blacklisted
            assert any(c.status != "closed" for c in customer.cases) or s.scalar(
                select(func.count()).where(Interaction.customer_id == owner))
        assert s.get(Customer, owners(callers.vip.number)[0]).tier == "vip"
        assert s.get(Customer, owners(callers.blacklisted.number)[0]).blacklisted
        assert all(not owners(c.number) and c.name is None and c.number.startswith("+861") for c in callers.unknown)
