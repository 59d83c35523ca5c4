"""The pure simulator core: matching, positions, balances, transfers, rate limits, config."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sim_client import OTHER, PRIMARY, SUB1, SUB2, make_config, sign

from qfexbot.sim import SimConfigError, SimSymbol, demo_sim_config, load_sim_config
from qfexbot.sim.common.ratelimit import RateLimiter
from qfexbot.sim.qfex import payloads
from qfexbot.sim.qfex.auth import NonceCache
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import CommandError, PrivateEvent, PublicTrade, TransferError

D = Decimal


class Clock:
    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine() -> Engine:
    return Engine(make_config(), Clock())


def order(**params: object) -> dict[str, object]:
    base: dict[str, object] = {
        "symbol": "AAPL-USD",
        "side": "BUY",
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": D("1"),
    }
    base.update(params)
    return base


def first_fill(events: list) -> dict:
    return next(
        e.frame["fill_response"]
        for e in events
        if isinstance(e, PrivateEvent) and "fill_response" in e.frame
    )


def statuses(events: list) -> list[str]:
    return [
        e.frame["order_response"]["status"]
        for e in events
        if isinstance(e, PrivateEvent) and "order_response" in e.frame
    ]


def test_market_buy_fills_and_updates_position_and_balance() -> None:
    eng = engine()
    best_ask = eng.best_ask("AAPL-USD")
    events = eng.add_order(PRIMARY, order(order_type="MARKET", order_time_in_force="IOC"))
    assert statuses(events) == ["ACK", "FILLED"]
    fill = first_fill(events)
    assert D(str(fill["price"])) == best_ask and fill["aggressor_side"] == "BUY"
    assert any(isinstance(e, PublicTrade) for e in events)
    position = eng.accounts[PRIMARY].positions["AAPL-USD"]
    assert position.size == 1 and position.average_price == best_ask
    fee = best_ask * eng.config.taker_fee
    assert eng.accounts[PRIMARY].fees == fee
    mark = eng.mark_price("AAPL-USD")
    unrealised = mark - best_ask
    expected = D("100000") - fee - mark * D("0.1") + min(unrealised, D(0))
    assert eng.available_balance(PRIMARY) == expected


def test_limit_rests_then_fills_as_maker_when_price_crosses() -> None:
    eng = engine()
    events = eng.add_order(PRIMARY, order(price=D("195.00"), client_order_id="rest-1"))
    assert statuses(events) == ["ACK"]
    assert eng.order_margin(PRIMARY) == D("19.5")
    assert eng.set_price("AAPL-USD", D("197")) == []
    events = eng.set_price("AAPL-USD", D("194"))
    assert statuses(events) == ["FILLED"]
    fill = first_fill(events)
    assert fill["price"] == 195.0 and fill["side"] == "BUY" and fill["aggressor_side"] == "SELL"
    assert fill["fee"] == float(D("195") * eng.config.maker_fee)
    assert eng.open_orders(PRIMARY) == [] and eng.order_margin(PRIMARY) == 0


def test_closing_realises_pnl_and_flip_resets_average() -> None:
    eng = engine()
    eng.add_order(PRIMARY, order(order_type="MARKET", order_time_in_force="IOC", quantity=D("2")))
    entry = eng.accounts[PRIMARY].positions["AAPL-USD"].average_price
    eng.set_price("AAPL-USD", D("210"))
    bid = eng.best_bid("AAPL-USD")
    eng.add_order(
        PRIMARY, order(side="SELL", order_type="MARKET", order_time_in_force="IOC", quantity=D("3"))
    )
    position = eng.accounts[PRIMARY].positions["AAPL-USD"]
    assert position.realised_pnl == 2 * (bid - entry)
    assert position.size == -1 and position.average_price == bid


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"symbol": "NOPE-USD"}, "BAD_SYMBOL"),
        # stops are supported (F3): a stop-loss with no position to close is REJECTED
        ({"order_type": "STOP_LOSS"}, "REJECTED"),
        ({"order_type": "MARKET", "order_time_in_force": "GTC"}, "INVALID_TIME_IN_FORCE"),
        (
            {"order_type": "ALO", "order_time_in_force": "IOC", "price": D("190")},
            "INVALID_TIME_IN_FORCE",
        ),
        ({"price": D("190.005")}, "INVALID_TICK_SIZE_PRECISION_PRICE"),
        ({"price": D("190"), "quantity": D("0.0005")}, "INVALID_TICK_SIZE_PRECISION_QUANTITY"),
        ({"price": D("190"), "quantity": D("2000")}, "QUANTITY_GREATER_THAN_MAX_QUANTITY"),
        ({"price": D("2000000")}, "PRICE_GREATER_THAN_MAX_PRICE"),
        ({"price": D("250")}, "PRICE_GREATER_THAN_MAX_PRICE"),
        ({"side": "SELL", "price": D("150")}, "PRICE_LESS_THAN_MIN_PRICE"),
        ({"price": D("190"), "quantity": D("999")}, "FAILED_MARGIN_CHECK"),
        ({"order_type": "ALO", "price": D("205")}, "REJECTED"),
        ({"price": D("190"), "reduce_only": True}, "REJECTED"),
    ],
)
def test_rejects_are_a_single_order_response(params: dict, status: str) -> None:
    eng = engine()
    assert statuses(
        eng.add_order(
            SUB1, order(price=D("190"), **params) if "price" not in params else order(**params)
        )
    ) == [status]
    assert eng.open_orders(SUB1) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"side": None}, "InvalidParameter"),
        ({"side": "UP"}, "InvalidJSONFormat"),
        ({"quantity": "1"}, "InvalidJSONFormat"),
    ],
)
def test_malformed_orders_raise_command_errors(params: dict, code: str) -> None:
    with pytest.raises(CommandError) as info:
        engine().add_order(PRIMARY, order(price=D("190"), **params))
    assert info.value.error_code == code


def test_ioc_and_fok_without_enough_liquidity_are_cancelled() -> None:
    eng = engine()
    assert statuses(eng.add_order(PRIMARY, order(price=D("190"), order_time_in_force="IOC"))) == [
        "ACK",
        "CANCELLED",
    ]
    fok = order(price=eng.best_ask("AAPL-USD"), order_time_in_force="FOK", quantity=D("500"))
    assert statuses(eng.add_order(PRIMARY, fok)) == ["ACK", "CANCELLED"]
    assert eng.accounts[PRIMARY].positions["AAPL-USD"].size == 0


def test_user_orders_match_each_other_and_self_trade_is_prevented() -> None:
    eng = engine()
    assert eng.best_bid("AAPL-USD") == D("199.99") and eng.best_ask("AAPL-USD") == D("200.01")
    eng.add_order(OTHER, order(side="SELL", price=D("200.00")))
    events = eng.add_order(PRIMARY, order(price=D("200.00")))
    assert statuses(events) == ["ACK", "FILLED", "FILLED"]
    assert eng.accounts[OTHER].positions["AAPL-USD"].size == -1
    eng.add_order(PRIMARY, order(side="SELL", price=D("200.00")))
    assert statuses(eng.add_order(PRIMARY, order(price=D("200.00")))) == ["ACK", "CANCELLED_STP"]


def test_cancel_by_order_id_and_client_order_id_both_forms() -> None:
    eng = engine()
    first = eng.add_order(PRIMARY, order(price=D("190"), client_order_id="c1"))[0]
    order_id = first.frame["order_response"]["order_id"]
    assert statuses(
        eng.cancel_order(
            PRIMARY,
            {"symbol": "AAPL-USD", "order_id": order_id, "cancel_order_id_type": "order_id"},
        )
    ) == ["CANCELLED"]
    assert statuses(eng.cancel_order(PRIMARY, {"symbol": "AAPL-USD", "order_id": order_id})) == [
        "NO_SUCH_ORDER"
    ]
    eng.add_order(PRIMARY, order(price=D("190"), client_order_id="dup"))
    eng.add_order(PRIMARY, order(price=D("191"), client_order_id="dup"))
    assert statuses(
        eng.cancel_order(
            PRIMARY,
            {"symbol": "AAPL-USD", "order_id": "dup", "cancel_order_id_type": "client_order_id"},
        )
    ) == ["CANCELLED", "CANCELLED"]
    eng.add_order(PRIMARY, order(price=D("190"), client_order_id="old-form"))
    assert statuses(
        eng.cancel_order(
            PRIMARY,
            {
                "symbol": "AAPL-USD",
                "client_order_id": "old-form",
                "cancel_order_id_type": "client_order_id",
            },
        )
    ) == ["CANCELLED"]
    other = eng.add_order(OTHER, order(price=D("190")))[0].frame["order_response"]["order_id"]
    assert statuses(eng.cancel_order(PRIMARY, {"order_id": other})) == ["NO_SUCH_ORDER"]


def test_position_notional_above_the_limit_is_rejected_max_notional() -> None:
    """D2: the spec's status enum names it REJECTED_WOULD_BREACH_MAX_NOTIONAL (current docs;
    the older REJECTED_WOULD_BREACH_MAX_POSITION is not in the AsyncAPI enum)."""
    symbols = {"AAPL-USD": SimSymbol("AAPL-USD", D("200.00"), max_position_notional=D(1000))}
    eng = Engine(make_config(symbols=symbols), Clock())
    assert statuses(eng.add_order(PRIMARY, order(price=D("190"), quantity=D(5)))) == ["ACK"]
    assert statuses(eng.add_order(PRIMARY, order(price=D("190"), quantity=D(6)))) == [
        "REJECTED_WOULD_BREACH_MAX_NOTIONAL"
    ]


def test_no_such_order_carries_valid_enums() -> None:
    """D1: side/type/time_in_force are enums in the spec's OrderResponse, never ""."""
    eng = engine()
    events = eng.cancel_order(
        PRIMARY, {"symbol": "AAPL-USD", "order_id": "nope", "cancel_order_id_type": "order_id"}
    )
    reply = events[0].frame["order_response"]
    assert reply["status"] == "NO_SUCH_ORDER" and reply["order_id"] == "nope"
    assert (reply["side"], reply["type"], reply["time_in_force"]) == ("BUY", "LIMIT", "GTC")
    kept = payloads.missing_order_response(
        PRIMARY, "AAPL-USD", 1.0, order_id="x", client_order_id="", side="SELL", order_type="ALO"
    )
    assert (kept["side"], kept["type"], kept["time_in_force"]) == ("SELL", "ALO", "GTC")
    junk = payloads.missing_order_response(
        PRIMARY, "AAPL-USD", 1.0, order_id="x", client_order_id="", side="", order_type=["?"]
    )
    assert (junk["side"], junk["type"]) == ("BUY", "LIMIT")


def test_find_order_sees_open_filled_and_rejected_orders_of_the_account_only() -> None:
    """D7: get_order answers from the order history, finished orders included."""
    eng = engine()
    resting = eng.add_order(PRIMARY, order(price=D("190")))[0].frame["order_response"]["order_id"]
    taker = eng.add_order(PRIMARY, order(order_type="MARKET", order_time_in_force="IOC"))
    filled = taker[0].frame["order_response"]["order_id"]
    rejected = eng.add_order(PRIMARY, order(price=D("190.005")))[0].frame["order_response"]
    found = eng.find_order(PRIMARY, resting)
    assert found is not None and found.status == "ACK"
    found = eng.find_order(PRIMARY, filled, "AAPL-USD")
    assert found is not None and found.status == "FILLED" and found.remaining == 0
    found = eng.find_order(PRIMARY, rejected["order_id"])
    assert found is not None and found.status == "INVALID_TICK_SIZE_PRECISION_PRICE"
    assert eng.find_order(OTHER, resting) is None
    assert eng.find_order(PRIMARY, resting, "EUR-USD") is None
    assert eng.find_order(PRIMARY, "nope") is None


def test_event_sequence_is_per_account_and_monotonic() -> None:
    eng = engine()
    events = eng.add_order(PRIMARY, order(order_type="MARKET", order_time_in_force="IOC"))
    private = [e for e in events if isinstance(e, PrivateEvent)]
    assert [e.seq for e in private] == [1, 2, 3]
    assert eng.accounts[PRIMARY].event_seq == 3 and eng.accounts[SUB1].event_seq == 0


def test_transfers_move_available_balance_and_refuse_documented_errors() -> None:
    eng = engine()
    entry = eng.transfer(PRIMARY, PRIMARY, SUB2, D("12.5"))
    assert eng.available_balance(SUB2) == D("12.5")
    assert eng.available_balance(PRIMARY) == D("99987.5")
    assert eng.ledger == [entry]
    for args, status in [
        ((PRIMARY, SUB1, D("0")), 422),
        ((PRIMARY, SUB1, D("-1")), 422),
        ((SUB1, PRIMARY, D("50.01")), 422),
        ((SUB1, SUB1, D("1")), 400),
        ((PRIMARY, OTHER, D("1")), 403),
    ]:
        with pytest.raises(TransferError) as info:
            eng.transfer(PRIMARY, *args)
        assert info.value.status == status
    assert len(eng.ledger) == 1


def test_rate_limiter_budget_decay_and_cancel_bucket() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(D("5"), 60.0, clock)
    assert all(limiter.check("u", "add_order") is None for _ in range(5))
    retry = limiter.check("u", "add_order")
    assert retry is not None and retry > 0
    assert limiter.check("u", "cancel_order") is None
    assert limiter.check("other", "add_order") is None
    clock.now += retry + 0.01
    assert limiter.check("u", "add_order") is None


def test_rate_limiter_refuses_a_message_heavier_than_the_budget_without_crashing() -> None:
    """A budget below one message's weight (get_user_orders weighs 5): refused with a hint.
    The retry hint was log(load / max(budget - weight, 1e-9)), a math domain error at load 0,
    which ended the connection instead of answering RateLimited."""
    limiter = RateLimiter(D("3"), 60.0, Clock(0.0))
    assert limiter.check("u", "get_user_orders") == 60.0
    assert limiter.check("u", "add_order") is None


def test_nonce_cache_window_and_signature_vector() -> None:
    assert sign("qfex_secret_test", "c0ffee", 1760545414) == (
        "9a892254ce0416371a78a4352130b7825a2f5fb442b12ddfa7c2f5202ef045dc"
    )
    clock = Clock(0.0)
    cache = NonceCache(900.0, clock)
    assert cache.claim("k", "ab") and not cache.claim("k", "ab") and cache.claim("k2", "ab")
    clock.now = 901.0
    assert cache.claim("k", "ab")


def test_sim_toml_is_validated_with_key_paths(tmp_path) -> None:
    good = tmp_path / "SIM.toml"
    good.write_text(f'''
[[users]]
public_key = "qfex_pub_x"
secret = "qfex_secret_x"
account_id = "{PRIMARY}"
subaccounts = ["{SUB1}"]
[users.deposits]
"{PRIMARY}" = 1000
"{SUB1}" = 2.5
[sim]
pulse_interval = 0.5
seed = 3
[sim.symbols."AAPL-USD"]
price = 150
[sim.symbols."XYZ-USD"]
price = 10
tick_size = 0.5
[finery]
anything = "left alone"
''')
    config = load_sim_config(good)
    assert config.users[0].deposits == {PRIMARY: D("1000"), SUB1: D("2.5")}
    assert config.pulse_interval == 0.5 and config.seed == 3
    assert set(config.symbols) == {"AAPL-USD", "XYZ-USD"}
    assert config.symbols["AAPL-USD"].tick_size == D("0.01")
    bad = tmp_path / "BAD.toml"
    bad.write_text(f'''
[[users]]
public_key = "k"
secret = "s"
account_id = "not-a-uuid"
[users.deposits]
"{OTHER}" = 5
[sim]
pulse_interval = -1
colour = "blue"
[sim.symbols."NEW-USD"]
tick_size = 0.1
''')
    with pytest.raises(SimConfigError) as info:
        load_sim_config(bad)
    text = "\n".join(info.value.errors)
    for path in (
        "users[0].account_id",
        f'users[0].deposits."{OTHER}"',
        "sim.pulse_interval",
        "sim.colour",
        'sim.symbols."NEW-USD".price',
    ):
        assert path in text
    assert "s" not in [e.split(": ")[-1] for e in info.value.errors]


def test_demo_config_is_valid() -> None:
    config = demo_sim_config()
    eng = Engine(config)
    assert eng.available_balance(config.users[0].account_id) == D("100000")
