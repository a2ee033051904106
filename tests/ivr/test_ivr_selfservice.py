"""The self-service port on a real SQLite database with a few rows, and the IVR driven through it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from ivr_support import MONDAY_10AM, Driver
from ivr_support import menu as make_menu

from callcenter.db.engine import Database
from callcenter.db.models import Base, Customer, Order, OrderItem, PhoneNumber, Product
from callcenter.db.selfservice import SqlSelfService
from ivr import AccountBalance, CallerRecord, Lookup, Play, SelfServicePort, run_lookup


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'ivr.db'}")
    Base.metadata.create_all(database.engine)
    with database.session() as s:
        aircon = Product(sku="AC-1200", name="Inverter air conditioner", price=Decimal("3299.00"), warranty_months=36)
        tv = Product(sku="TV-55", name="55-inch television", price=Decimal("3599.00"), warranty_months=12)
        s.add_all([aircon, tv])
        s.flush()
        wei = Customer(name="Wei Zhang", tier="gold", language="zh", balance=Decimal("150.20"), credit_limit=Decimal("5000"))
        wei.phones.append(PhoneNumber(e164="+8613912345678", kind="mobile"))
        wei.phones.append(PhoneNumber(e164="+861065550000", kind="fixed"))
        office = Customer(name="Office Li", tier="vip", blacklisted=True, blacklist_reason="fraud")
        office.phones.append(PhoneNumber(e164="+861065550000", kind="fixed"))  # a shared line
        bad = Customer(name="Bad Bo", blacklisted=True)
        bad.phones.append(PhoneNumber(e164="+8613700000000", kind="mobile"))
        order = Order(
            order_number="SO00001234",
            ordered_at=dt.datetime(2026, 9, 30, 17, 30, tzinfo=dt.UTC),  # 1 October 01:30 in Shanghai
            amount=Decimal("6898.00"),
            currency="CNY",
            status="shipped",
        )
        order.items.append(OrderItem(product=aircon, quantity=1, unit_price=aircon.price, serial_number="AC1234567890",
                                     warranty_end=dt.date(2029, 9, 30)))
        order.items.append(OrderItem(product=tv, quantity=2, unit_price=tv.price, serial_number="TV9876543210"))
        wei.orders.append(order)
        s.add_all([wei, office, bad])
    yield database
    database.dispose()


@pytest.fixture
def port(db) -> SqlSelfService:
    return SqlSelfService(db, timezone="Asia/Shanghai")


def test_it_is_a_self_service_port(port):
    assert isinstance(port, SelfServicePort)


def test_find_caller(port):
    wei = port.find_caller("+8613912345678")
    assert isinstance(wei, CallerRecord)
    assert (wei.name, wei.tier, wei.blacklisted, wei.language, wei.shared) == ("Wei Zhang", "gold", False, "zh", False)
    assert port.find_caller("+8613700000000").blacklisted is True
    assert port.find_caller("+8613000000000") is None
    assert port.find_caller("") is None


def test_a_shared_line_prefers_the_customer_in_good_standing(port):
    shared = port.find_caller("+861065550000")
    assert shared.name == "Wei Zhang" and shared.shared is True


def test_order_status_by_full_number_or_by_its_digits(port):
    status = port.order_status("SO00001234")
    assert (status.order_number, status.status, status.amount, status.currency, status.items) == (
        "SO00001234", "shipped", Decimal("6898.00"), "CNY", 3,
    )
    assert status.ordered_at == dt.date(2026, 10, 1), "the order day is the center's local day"
    assert port.order_status("00001234") == status
    assert port.order_status("1234") is None, "digits must match the whole number"
    assert port.order_status("99999999") is None
    assert port.order_status("%") is None


def test_warranty_by_serial_and_by_order(port):
    by_serial = port.warranty(serial_number="1234567890")
    assert (by_serial.product, by_serial.warranty_end, by_serial.order_number) == (
        "Inverter air conditioner", dt.date(2029, 9, 30), "SO00001234",
    )
    tv = port.warranty(serial_number="TV9876543210")
    assert tv.warranty_end == dt.date(2026, 10, 1) + dt.timedelta(days=360), "computed from the product's months"
    by_order = port.warranty(order_number="00001234")
    assert by_order.serial_number == "AC1234567890", "the item covered longest speaks for the order"
    assert port.warranty(serial_number="000") is None
    assert port.warranty() is None


def test_account_balance(port, db):
    with db.session() as s:
        wei_id = s.query(Customer.id).filter_by(name="Wei Zhang").scalar()
    balance = port.account_balance(wei_id)
    assert balance == AccountBalance(wei_id, Decimal("150.20"), "CNY", Decimal("5000.00"))
    assert port.account_balance(999) is None


def test_a_missing_table_is_a_failed_lookup_not_a_crash(tmp_path):
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        answer = run_lookup(SqlSelfService(empty), Lookup(1, "caller", key="+8613912345678"))
        assert answer.error and not answer.found
    finally:
        empty.dispose()


def test_the_session_through_the_database(port):
    body = """
    [menus.main]
    type = "collect"
    prompt = "enter"
    variable = "order_number"
    min_length = 4
    max_length = 12
    next = "lookup"

    [menus.lookup]
    type = "lookup"
    lookup = "order_status"
    input = "order_number"
    found = "result"
    not_found = "bye"

    [menus.result]
    type = "play"
    prompt = ["status_{order.status}", "amount", "{money:order.amount}"]
    next = "bye"

    [menus.bye]
    type = "hangup"
    """
    d = Driver(make_menu(body, languages=("zh",)), caller="+8613912345678", port=port, now=MONDAY_10AM, language="zh")
    d.start()
    assert d.session.caller.tier == "gold"
    d.press("00001234#")
    result = [p for p in d.of(Play) if p.prompts[0] == "status_shipped"][0]
    assert "六千八百九十八元整" in result.text
    assert d.session.record().customer_id == d.session.caller.customer_id
