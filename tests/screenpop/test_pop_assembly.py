"""Screen-pop assembly and the agent desktop's look-ups on a real SQLite database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from callcenter.db import Database, upgrade
from callcenter.db.customer_profile import load_profile
from callcenter.db.directory import (
    CustomerInputError,
    SqlCustomerDirectory,
    agent_callbacks,
    callback_for_agent,
    create_customer,
    load_screen_pop,
    recent_contacts,
    search_customers,
)
from callcenter.db.volume import generate_synthetic, synthetic_number
from callcenter.db.agents import sync_agents
from callcenter.db.interactions import SqlInteractionStore
from callcenter.db.models import AuditEntry, Customer, Interaction, PhoneNumber
from screenpop.pop import CallContext

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
NUMBER = "+8613912345678"


class _Agent:
    def __init__(self, name, role="agent"):
        self.name, self.phone, self.role, self.skills, self.queues = name, "sip:x@127.0.0.1", role, {}, []


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'pop.db'}")
    upgrade(database)
    sync_agents(database, {"1001": _Agent("Li Wei"), "1002": _Agent("Wang Fang")})
    yield database
    database.dispose()


def customer(db, name, *numbers, tier="standard") -> int:
    with db.session() as s:
        row = Customer(name=name, tier=tier, credit_limit=Decimal(0), balance=Decimal(0))
        row.phones.extend(PhoneNumber(e164=n, kind="mobile") for n in numbers)
        s.add(row)
        s.flush()
        return row.id


def contact(store, call_id, *, ani=NUMBER, customer_id=None, at=NOW, agent="1001", code=None, notes=None):
    store.open(call_id=call_id, direction="inbound", ani=ani, dnis="4000", display_name="x", customer_id=customer_id,
               arrived_at=at)
    store.update(call_id, agent_id=agent, outcome="answered", ended_at=at)
    if code:
        store.save_disposition(call_id=call_id, code=code, notes=notes, agent_id=agent)


def test_one_customer_pop_leaves_the_current_call_out_and_counts_repeats(db):
    store = SqlInteractionStore(db)
    me = customer(db, "Li Lei", NUMBER, "+8613800000001", tier="vip")
    contact(store, "old", customer_id=me, at=NOW - dt.timedelta(days=3), code="repair", notes="booked")
    contact(store, "recent-same-number", customer_id=me, at=NOW - dt.timedelta(hours=2))
    contact(store, "recent-other-number", ani="+8613800000001", customer_id=me, at=NOW - dt.timedelta(hours=5))
    contact(store, "recent-unlinked", customer_id=None, at=NOW - dt.timedelta(hours=1))
    contact(store, "too-old", customer_id=me, at=NOW - dt.timedelta(hours=30))
    contact(store, "now", customer_id=me, at=NOW)
    with db.session() as s:
        pop = load_screen_pop(s, number=NUMBER, call=CallContext("now"), now=NOW)
    assert pop.kind == "customer" and pop.profile.customer_id == me and pop.candidates == ()
    assert pop.recent_calls == 3, "same number (2, one not linked yet) + the customer's other number, not this call"
    assert NOW not in [c.at for c in pop.profile.contacts] and len(pop.profile.contacts) == 4
    assert [c.disposition for c in pop.profile.contacts if c.disposition] == ["repair"]
    with db.session() as s:
        by_id = load_screen_pop(s, number=None, customer_id=me, call=CallContext("now"), now=NOW)
        unknown_id = load_screen_pop(s, number=NUMBER, customer_id=999, call=CallContext("now"), now=NOW)
        whole = load_profile(s, me)
    assert by_id.profile == pop.profile and by_id.recent_calls == 2, "without the number: the customer's contacts only"
    assert unknown_id.kind == "customer" and unknown_id.profile.customer_id == me, "falls back to the number"
    assert len(whole.contacts) == 5 and whole.contacts[0].at == NOW, "load_profile itself lists every contact"


def test_shared_and_unknown_numbers(db):
    store = SqlInteractionStore(db)
    a = customer(db, "Wang Jun", "+8613700000001")
    b = customer(db, "Wang Jun Jr", "+8613700000001")
    contact(store, "earlier", ani="+442071838750", at=NOW - dt.timedelta(days=2), code="wrong_number")
    store.add_callback(number="+442071838750", customer_id=None, queue="general", due_from=NOW, due_until=None,
                       source="ivr")
    with db.session() as s:
        shared = load_screen_pop(s, number="+8613700000001", now=NOW)
        new = load_screen_pop(s, number="+442071838750", call=CallContext("c9"), now=NOW)
        nobody = load_screen_pop(s, number=None, now=NOW)
    assert shared.kind == "choose" and [c.customer_id for c in shared.candidates] == [a, b] and shared.profile is None
    assert new.kind == "new" and new.profile is None and new.recent_calls == 0
    assert [h.disposition for h in new.number_history] == ["wrong_number"]
    assert [c.status for c in new.number_callbacks] == ["pending"]
    assert nobody.kind == "new" and nobody.number is None


def test_search_by_number_id_external_id_and_name(db):
    a = customer(db, "Wang Jun", "+8613700000001")
    b = customer(db, "wang li", "+8613700000002")
    c = customer(db, "Smith", "+12125550123")
    with db.session() as s:
        s.get(Customer, c).external_id = "CRM-77"
    with db.session() as s:
        def ids(query, **kw):
            return [m.customer_id for m in search_customers(s, query, region="CN", **kw)]

        assert ids("137 0000 0001") == [a] and ids("+86 137-0000-0002") == [b]
        assert ids(str(c)) == [c] and ids("CRM-77") == [c]
        assert set(ids("wang")) == {a, b} and ids("Wang J") == [a]
        assert ids("wang", limit=1) and len(ids("wang", limit=1)) == 1
        assert ids("") == [] and ids("zzz") == []
        assert search_customers(s, "Smith", region="CN")[0].numbers == ("+12125550123",)


def test_quick_create_checks_input_and_links_the_call(db):
    store = SqlInteractionStore(db)
    contact(store, "c1", ani="+442071838750")
    with db.session() as s:
        for fields, message in [({"name": " ", "number": "+442071838750"}, "name is required"),
                                ({"name": "Ann", "number": "12"}, "not a phone number"),
                                ({"name": "Ann\x1b[2J", "number": "+442071838750"}, "control characters"),
                                ({"name": "x" * 201, "number": "+442071838750"}, "at most 200")]:
            with pytest.raises(CustomerInputError, match=message):
                create_customer(s, region="CN", **fields)
    with db.session() as s:
        new_id = create_customer(s, name="Ann Smith", number="020 7183 8750", region="GB", language="en",
                                 call_id="c1", actor="1001")
    assert store.get("c1")["customer_id"] == new_id
    with db.session() as s:
        assert s.scalar(select(PhoneNumber.e164).where(PhoneNumber.customer_id == new_id)) == "+442071838750"
        audit = s.scalars(select(AuditEntry)).one()
        assert (audit.actor, audit.action, audit.target) == ("1001", "customer.create", str(new_id))
        assert load_screen_pop(s, number="+442071838750", call=CallContext("c2"), now=NOW).kind == "customer"


def test_recent_contacts_and_callbacks_of_an_agent(db):
    store = SqlInteractionStore(db)
    me = customer(db, "Li Lei", NUMBER)
    contact(store, "a", customer_id=me, at=NOW - dt.timedelta(hours=3), code="sale", notes="warranty")
    contact(store, "b", at=NOW - dt.timedelta(hours=1), code="resolved")
    contact(store, "c", at=NOW - dt.timedelta(minutes=1), agent="1002")
    for owner, due in [("1001", NOW + dt.timedelta(hours=1)), (None, NOW - dt.timedelta(hours=1)),
                       ("1002", NOW - dt.timedelta(hours=2))]:
        store.add_callback(number=NUMBER, customer_id=me, queue=None, due_from=due, due_until=None, source="agent",
                           owner_agent_id=owner)
    with db.session() as s:
        recent = recent_contacts(s, "1001")
        callbacks = agent_callbacks(s, "1001")
        assert callback_for_agent(s, 3, "1001") is None and callback_for_agent(s, 1, "1001").owner == "1001"
    assert [c.call_id for c in recent] == ["b", "a"]
    assert (recent[1].customer_name, recent[1].disposition, recent[1].notes) == ("Li Lei", "sale", "warranty")
    assert [(c.owner, c.customer_name) for c in callbacks] == [(None, "Li Lei"), ("1001", "Li Lei")]


def test_the_directory_wraps_each_call_in_its_own_session(db):
    directory = SqlCustomerDirectory(db, region="CN", repeat_hours=12)
    me = customer(db, "Li Lei", NUMBER)
    assert directory.screen_pop(number=NUMBER, customer_id=None, call=None, now=NOW).repeat_hours == 12
    assert directory.profile(me).name == "Li Lei" and directory.profile(424242) is None
    assert [c.name for c in directory.search("Li")] == ["Li Lei"]
    assert directory.link("no-such-call", me) is False and directory.link("x", 424242) is False


def test_synthetic_data_is_fast_deterministic_and_poppable(tmp_path):
    sizes = {}
    for name in ("one", "two"):
        database = Database(f"sqlite:///{tmp_path / name}.db")
        upgrade(database)
        sync_agents(database, {"1001": _Agent("A"), "1002": _Agent("B")})
        result = generate_synthetic(database, customers=2000, interactions=10_000, now=NOW, agent_ids=["1001", "1002"],
                                    queues=["general", "sales"], codes=["resolved", "sale"], chunk=3000)
        with database.session() as s:
            sizes[name] = (s.scalar(select(func.count()).select_from(Interaction)),
                           s.scalar(select(func.sum(Interaction.talk_seconds))),
                           s.scalars(select(Customer.name).order_by(Customer.id).limit(5)).all())
            pop = load_screen_pop(s, number=synthetic_number(17), now=NOW)
            shared = load_screen_pop(s, number=synthetic_number(199), now=NOW)
        if name == "two":
            with pytest.raises(ValueError, match="empty database"):
                generate_synthetic(database, customers=10, interactions=10, now=NOW, agent_ids=["1001"],
                                   queues=["general"], codes=["resolved"])
        database.dispose()
    assert result.customers == 2000 and result.interactions == 10_000 and result.orders == 4000
    assert 2000 < result.phones < 2000 * 1.4 and 0.8 * 10_000 < result.dispositions < 10_000
    assert sizes["one"] == sizes["two"], "same sizes, same data"
    assert sizes["one"][0] == 10_000
    assert pop.kind == "customer" and len(pop.profile.contacts) == 5 and pop.profile.orders
    assert shared.kind == "choose" and len(shared.candidates) == 2
