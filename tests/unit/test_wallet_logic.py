"""The wallet's pure logic: money, addresses, configuration, the state machine,
page tokens and credit validation (no store)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2
from runtime.config import ConfigError, Env
from runtime.errors import DomainError
from services.wallet import pages
from services.wallet.chains import normalize_address, normalize_tx_hash
from services.wallet.credits import read_entries
from services.wallet.ledger import Kind, Posting, deltas
from services.wallet.money import Currency, format_units, parse_decimal, read_money, to_money
from services.wallet.reconcile import expected
from services.wallet.settings import WalletSettings
from services.wallet.withdrawals import (
    Decision,
    State,
    seconds_to_next_day,
    transition,
)

MQC = Currency("MQC", 8)
USDT = Currency("USDT", 6)
WHOLE = Currency("PTS", 0)
CURRENCIES = {"MQC": MQC, "USDT": USDT}
EIP55 = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def reason_of(call: object, *args: object) -> str:
    with pytest.raises(DomainError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.reason


@pytest.mark.parametrize(
    ("text", "currency", "units"),
    [
        ("1", MQC, 100_000_000),
        ("1.5", MQC, 150_000_000),
        ("0.00000001", MQC, 1),
        ("12.500000", USDT, 12_500_000),
        ("1.50000000000", USDT, 1_500_000),  # trailing zeros are exact
        ("007", WHOLE, 7),
        ("92233720368.54775807", MQC, 2**63 - 1),
    ],
)
def test_decimal_strings_become_exact_minor_units(
    text: str, currency: Currency, units: int
) -> None:
    assert parse_decimal(text, currency, "amount") == units


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("0.000000001", MQC, "precision_exceeded"),
        ("1.0000001", USDT, "precision_exceeded"),
        ("0.5", WHOLE, "precision_exceeded"),
        ("-1", MQC, "amount_not_positive"),
        ("0", MQC, "amount_not_positive"),
        ("0.00", MQC, "amount_not_positive"),
        ("1e3", MQC, "invalid_amount"),
        ("NaN", MQC, "invalid_amount"),
        ("Infinity", MQC, "invalid_amount"),
        ("1,5", MQC, "invalid_amount"),
        (".5", MQC, "invalid_amount"),
        ("", MQC, "invalid_amount"),
        ("+1", MQC, "invalid_amount"),
        ("92233720368.54775808", MQC, "amount_too_large"),
    ],
)
def test_bad_decimal_strings_are_refused(text: str, currency: Currency, reason: str) -> None:
    assert reason_of(parse_decimal, text, currency, "amount") == reason


def test_units_format_with_every_place() -> None:
    assert format_units(150_000_000, MQC) == "1.50000000"
    assert format_units(1, USDT) == "0.000001"
    assert format_units(-5, USDT) == "-0.000005"
    assert format_units(42, WHOLE) == "42"
    assert to_money(MQC, 1) == common_pb2.Money(currency="MQC", units=1, amount="0.00000001")


def test_money_takes_the_string_or_the_units_and_both_must_agree() -> None:
    money = common_pb2.Money
    assert read_money(money(currency="mqc", amount="2"), CURRENCIES, "a") == (MQC, 200_000_000)
    assert read_money(money(currency="MQC", units=7), CURRENCIES, "a") == (MQC, 7)
    agreeing = money(currency="MQC", units=100_000_000, amount="1")
    assert read_money(agreeing, CURRENCIES, "a") == (MQC, 100_000_000)
    mismatch = money(currency="MQC", units=1, amount="1")
    assert reason_of(read_money, mismatch, CURRENCIES, "a") == "amount_mismatch"
    assert reason_of(read_money, money(currency="BTC", units=1), CURRENCIES, "a") == (
        "unknown_currency"
    )
    assert reason_of(read_money, money(currency="MQC"), CURRENCIES, "a") == "amount_not_positive"


@pytest.mark.parametrize(
    ("chain", "address", "canonical"),
    [
        ("ethereum", EIP55.lower(), EIP55),
        ("ethereum", "0x" + EIP55[2:].upper(), EIP55),
        ("ETHEREUM", EIP55, EIP55),
        ("bsc", EIP55, EIP55),
        ("tron", TRON, TRON),
    ],
)
def test_addresses_are_checked_per_chain(chain: str, address: str, canonical: str) -> None:
    assert normalize_address(chain, address) == canonical


@pytest.mark.parametrize(
    ("chain", "address", "reason"),
    [
        ("ethereum", "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "invalid_address"),  # checksum
        ("ethereum", EIP55[:-1], "invalid_address"),
        ("ethereum", EIP55[2:], "invalid_address"),
        ("ethereum", TRON, "invalid_address"),
        ("tron", EIP55, "invalid_address"),
        ("tron", TRON[:-1] + "u", "invalid_address"),  # checksum
        ("tron", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj60", "invalid_address"),  # not base58
        ("dogecoin", EIP55, "unknown_chain"),
    ],
)
def test_bad_addresses_are_refused(chain: str, address: str, reason: str) -> None:
    assert reason_of(normalize_address, chain, address) == reason


def test_transaction_hashes_have_one_spelling() -> None:
    digits = "AB" * 32
    assert normalize_tx_hash("ethereum", "0x" + digits) == "0x" + digits.lower()
    assert normalize_tx_hash("tron", digits) == digits.lower()
    assert reason_of(normalize_tx_hash, "ethereum", digits) == "invalid_deposit"
    assert reason_of(normalize_tx_hash, "tron", "0x" + digits) == "invalid_deposit"


def test_the_state_machine_has_two_transitions_and_no_way_back() -> None:
    assert transition(State.PENDING, Decision.APPROVE) is State.COMPLETED
    assert transition(State.PENDING, Decision.REJECT) is State.REJECTED
    assert transition(State.COMPLETED, Decision.APPROVE) is None  # already so: nothing to do
    assert transition(State.REJECTED, Decision.REJECT) is None
    for state, decision in [
        (State.COMPLETED, Decision.REJECT),
        (State.REJECTED, Decision.APPROVE),
    ]:
        assert reason_of(transition, state, decision) == "withdrawal_not_pending"


def test_the_daily_limit_resets_at_midnight_utc() -> None:
    moment = datetime(2030, 1, 1, 23, 59, 30, tzinfo=UTC)
    assert seconds_to_next_day(moment) == 30


def test_postings_net_per_account_and_the_ledger_sums_back() -> None:
    postings = [
        Posting("u", "MQC", Kind.CREDIT, 10, "s", "1"),
        Posting("u", "MQC", Kind.HOLD, 4, "s", "2"),
        Posting("u", "MQC", Kind.DEBIT, 3, "s", "3"),
        Posting("u", "MQC", Kind.RELEASE, 1, "s", "4"),
        Posting("v", "USDT", Kind.CREDIT, 2, "s", "5"),
    ]
    assert deltas(postings) == {("u", "MQC"): (7, 0), ("v", "USDT"): (2, 0)}
    assert expected([("credit", 10), ("hold", 4), ("debit", 3), ("release", 1)]) == (7, 0)
    with pytest.raises(ValueError, match="positive"):
        deltas([Posting("u", "MQC", Kind.CREDIT, 0, "s", "6")])


def test_page_tokens_round_trip_and_refuse_garbage() -> None:
    doc = {"created_at": datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "_id": "abc"}
    token = pages.encode_token(doc)
    assert pages.older_than(token) == {
        "$or": [
            {"created_at": {"$lt": doc["created_at"]}},
            {"created_at": doc["created_at"], "_id": {"$lt": "abc"}},
        ]
    }
    for garbage in ("!!", "e30", "WzEsMl0"):  # not base64, {}, [1,2]
        assert reason_of(pages.older_than, garbage) == "invalid_page_token"


def credit_entry(**fields: object) -> wallet_pb2.CreditEntry:
    values: dict[str, object] = {
        "user_id": "u1",
        "amount": common_pb2.Money(currency="MQC", units=5),
        "source": "mining.click",
        "source_id": "k1",
    }
    values.update(fields)
    return wallet_pb2.CreditEntry(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "reason", "field"),
    [
        ({"user_id": ""}, "invalid_credit", "entries[0].user_id"),
        ({"source": "Mining"}, "invalid_credit", "entries[0].source"),
        ({"source": "deposit"}, "reserved_source", "entries[0].source"),
        ({"source": "withdrawal.hold"}, "reserved_source", "entries[0].source"),
        ({"source_id": ""}, "invalid_credit", "entries[0].source_id"),
        ({"source_id": "x" * 257}, "invalid_credit", "entries[0].source_id"),
    ],
)
def test_credit_entries_are_validated(fields: dict[str, object], reason: str, field: str) -> None:
    with pytest.raises(DomainError) as caught:
        read_entries([credit_entry(**fields)], CURRENCIES, 10)
    assert (caught.value.reason, caught.value.field) == (reason, field)


def test_credit_batches_are_bounded() -> None:
    assert len(read_entries([credit_entry()] * 3, CURRENCIES, 3)) == 3
    assert reason_of(read_entries, [credit_entry()] * 4, CURRENCIES, 3) == "invalid_credit"
    [posting] = read_entries([credit_entry(source="withdrawals")], CURRENCIES, 3)
    assert posting.kind is Kind.CREDIT  # only "withdrawal" and "withdrawal.*" are reserved


def settings(**environ: str) -> WalletSettings:
    return WalletSettings.from_env(Env({"MONGODB_URI": "mongodb://127.0.0.1:1", **environ}))


def test_defaults_run_without_any_wallet_configuration() -> None:
    loaded = settings()
    assert dict(loaded.currencies) == {"MQC": MQC, "USDT": USDT}
    assert loaded.mined_currency == "MQC"
    assert loaded.deposit_wallets == ()
    assert loaded.withdrawal_chains["USDT"] == {"ethereum", "tron"}
    assert loaded.withdrawal_limits["MQC"].minimum == 10 * 10**8
    assert loaded.service.grpc_port == 50053
    assert loaded.service.mongodb_database == "minequest_wallet"


def test_lists_accept_semicolons_and_normalise() -> None:
    loaded = settings(
        WALLET_CURRENCIES="mqc:8;usdt:6",
        WALLET_DEPOSIT_WALLETS=f"USDT:Ethereum:{EIP55.lower()}; USDT:tron:{TRON}",
    )
    assert [(w.currency, w.chain, w.address) for w in loaded.deposit_wallets] == [
        ("USDT", "ethereum", EIP55),
        ("USDT", "tron", TRON),
    ]
    assert loaded.deposit_chains("USDT") == {"ethereum", "tron"}


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("WALLET_CURRENCIES", "MQC", "must have 2 ':'-separated fields"),
        ("WALLET_CURRENCIES", "MQC:19", "precision of MQC must be 0-18"),
        ("WALLET_CURRENCIES", "MQC:8,MQC:6", "MQC is listed twice"),
        ("WALLET_CURRENCIES", "M$C:8", "is not a currency code"),
        ("WALLET_MINED_CURRENCY", "BTC", "BTC is not in WALLET_CURRENCIES"),
        ("WALLET_DEPOSIT_WALLETS", "USDT:ethereum:0x1234", "0x followed by 40 hex digits"),
        ("WALLET_DEPOSIT_WALLETS", "USDT:solana:abc", "unknown chain 'solana'"),
        ("WALLET_DEPOSIT_WALLETS", "BTC:ethereum:" + EIP55, "BTC is not in WALLET_CURRENCIES"),
        ("WALLET_WITHDRAWAL_CHAINS", "MQC:ethereum,BTC:tron", "BTC is not in WALLET_CURRENCIES"),
        ("WALLET_WITHDRAWAL_LIMITS", "MQC:10:1:100,USDT:1:2:3", "minimum 10 is above maximum 1"),
        ("WALLET_WITHDRAWAL_LIMITS", "MQC:1:10:0.5,USDT:1:2:3", "daily 0.5 is below minimum 1"),
        ("WALLET_WITHDRAWAL_LIMITS", "MQC:0.000000001:1:1,USDT:1:2:3", "decimal places"),
        ("WALLET_WITHDRAWAL_LIMITS", "MQC:1:2:3", "no limits for USDT"),
        ("WALLET_CREDIT_MAX_BATCH", "0", "must be at least 1"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**{variable: value})
    assert caught.value.variable == variable
    assert problem in caught.value.problem
