"""What schemathesis cannot read in the OpenAPI document, told once
(loaded with ``SCHEMATHESIS_HOOKS=tests.e2e.schemathesis_hooks``).

- The named formats of :mod:`gateway.constraints`: an ``evm-address`` is
  lower-case, upper-case or EIP-55 checksummed; a ``phone`` is a number that
  exists; an ``email`` passes email-validator; a ``currency-code`` is one the
  deployment has (``SCHEMATHESIS_CURRENCIES``).
- Values only the deployment knows, as a client would supply them: a
  ``referralCode`` a user holds (``SCHEMATHESIS_REFERRAL_CODE``), a withdrawal
  amount within its currency's places and limits on a chain it pays out on
  (``SCHEMATHESIS_WITHDRAWAL_LIMITS``, ``SCHEMATHESIS_CURRENCY_PLACES``,
  ``SCHEMATHESIS_WITHDRAWAL_CHAINS``), a quest's existing prerequisites and a
  coin reward in one of its currencies.
- Rules across fields that JSON Schema cannot state and the document says in
  words: a click's ``lastTapAt`` is not before its ``firstTapAt`` and neither
  is in the future. Schema-valid cases breaking them are not sent as
  "valid" ones (negative cases are untouched).
- A list's ``pageToken`` is one a page of that list gave out: valid cases
  ask for the first page (an invented token is 400 ``invalid_page_token``).
- ``verifyWallet`` needs a signature by the caller's wallet over a message
  the server issued, and ``telegramLogin`` initData signed with the bot's
  token: no generated case can carry either, so their valid cases are not
  sent (their schema-violating ones are).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers
import schemathesis
from email_validator import EmailNotValidError, validate_email
from hypothesis import strategies as st
from hypothesis.internal import lambda_sources
from schemathesis import GenerationMode

from runtime.addresses import InvalidEvmAddress, eip55


def _describe_or_give_up(function: Any, *args: Any, **kwargs: Any) -> str:
    """Hypothesis describes a strategy's lambdas by parsing their module's source,
    deep inside a test after raising the recursion limit; on CPython 3.11.7
    ``ast.parse`` then fails there ("AST constructor recursion depth mismatch",
    fixed in later 3.11 releases). The description only labels a strategy."""
    try:
        return str(_DESCRIBE(function, *args, **kwargs))  # type: ignore[no-untyped-call]
    except SystemError:
        return "lambda: <unknown>"


_DESCRIBE = lambda_sources._lambda_description
lambda_sources._lambda_description = _describe_or_give_up  # type: ignore[assignment]

_HEX = "0123456789abcdef"
_address = st.text(alphabet=_HEX, min_size=40, max_size=40)


# Named functions, not lambdas: hypothesis parses a lambda's source to describe it.
def _lower(digits: str) -> str:
    return "0x" + digits


def _upper(digits: str) -> str:
    return "0x" + digits.upper()


def _checksummed(digits: str) -> str:
    return eip55("0x" + digits)


schemathesis.openapi.format(
    "evm-address",
    st.one_of(_address.map(_lower), _address.map(_upper), _address.map(_checksummed)),
)
#: Numbers that exist (phonenumbers' examples for a few regions).
schemathesis.openapi.format(
    "phone", st.sampled_from(["+14155550123", "+442071838750", "+33142685300", "+4930123456"])
)
schemathesis.openapi.format(
    "currency-code",
    st.sampled_from(os.environ.get("SCHEMATHESIS_CURRENCIES", "MQC,USDT").split(",")),
)


def _stamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _taps_in_order(body: Any) -> bool:
    if not isinstance(body, dict):
        return True
    first, last = _stamp(body.get("firstTapAt")), _stamp(body.get("lastTapAt"))
    now = datetime.now(UTC)
    stamps = [stamp for stamp in (first, last) if stamp is not None]
    if any(stamp.tzinfo is None or stamp > now for stamp in stamps):
        return False
    return not (first and last and last < first)


def _formats_hold(values: Any) -> bool:
    """Whether the named formats in a body, query or path hold (the coverage
    phase draws from patterns alone: "+1000000" is no phone number)."""
    if not isinstance(values, dict):
        return True
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            continue
        if name == "phone" and not _is_phone(value):
            return False
        if name == "email" and not _is_email(value):
            return False
        if name in _ADDRESS_FIELDS and not _is_address(value):
            return False
    return True


_ADDRESS_FIELDS = frozenset({"walletAddress", "address"})


def _is_phone(value: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(value, None)))
    except phonenumbers.NumberParseException:
        return False


def _is_email(value: str) -> bool:
    """email-validator's syntax rules, as the auth service applies them (no
    special-use domains such as .test, no quoted local parts)."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _is_address(value: str) -> bool:
    try:
        eip55(value)
    except InvalidEvmAddress:
        return False
    return True


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> bool:
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return True
    if not all(_formats_hold(part) for part in (case.body, case.query, case.path_parameters)):
        return False
    operation_id = case.operation.definition.raw.get("operationId")
    if operation_id in ("verifyWallet", "telegramLogin"):
        return False
    if operation_id == "submitClick":
        return _taps_in_order(case.body)
    return True


#: The deployment's withdrawal rules (WALLET_WITHDRAWAL_LIMITS
#: currency:minimum:maximum:daily, WALLET_CURRENCIES code:places).
def _limits() -> dict[str, tuple[Decimal, Decimal, int]]:
    places = _places()
    limits = {}
    for item in os.environ.get("SCHEMATHESIS_WITHDRAWAL_LIMITS", "").split(","):
        if item:
            code, low, high, _daily = item.split(":")
            limits[code] = (Decimal(low), Decimal(high), int(places.get(code, "0")))
    return limits


def _withdrawable(money: dict[str, Any]) -> dict[str, Any]:
    """The body's amount, or the currency's minimum when the deployment refuses it."""
    rule = _limits().get(str(money.get("currency", "")).upper())
    if rule is None:
        return money
    low, high, places = rule
    amount = _decimal(money.get("amount"), places)
    if amount is None or not low <= amount <= high:
        amount = low
    return {"currency": money["currency"], "amount": str(amount)}


def _decimal(value: Any, places: int) -> Decimal | None:
    """``value`` as a decimal with at most ``places`` places, else ``None``."""
    try:
        amount = Decimal(str(value))
        return amount if amount.is_finite() and amount == round(amount, places) else None
    except (InvalidOperation, ValueError):
        return None


@schemathesis.hook
def map_case(
    context: schemathesis.HookContext, case: schemathesis.Case[Any]
) -> schemathesis.Case[Any]:
    """Values only the deployment knows, as a client would supply them."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return case
    operation_id = case.operation.definition.raw.get("operationId")
    if isinstance(case.query, dict) and "pageToken" in case.query:
        # A client sends only a nextPageToken a page gave it; no generated
        # string is one (the document says so): ask for the first page.
        del case.query["pageToken"]
    if not isinstance(case.body, dict):
        return case
    body: dict[str, Any] = case.body
    if operation_id == "register" and body.get("referralCode"):
        body["referralCode"] = os.environ.get("SCHEMATHESIS_REFERRAL_CODE", "")
    if operation_id in ("createQuest", "updateQuest") and isinstance(body.get("quest"), dict):
        body["quest"] = _quest(body["quest"])
        if operation_id == "updateQuest":  # the body's id, if any, is the path's
            body["quest"]["id"] = (case.path_parameters or {}).get("questId", "")
    if operation_id == "createWithdrawal" and isinstance(body.get("amount"), dict):
        body["amount"] = _withdrawable(body["amount"])
        body.update(_payout(str(body["amount"].get("currency", "")), body))
    return case


def _quest(quest: dict[str, Any]) -> dict[str, Any]:
    """A quest the deployment can store: prerequisites are quests that exist (none
    here), a coin reward is a positive amount of a currency it has, and its
    window (activeUntil after activeFrom) is not empty."""
    quest = {**quest, "prerequisiteIds": []}
    reward = quest.get("coinReward")
    if isinstance(reward, dict):
        currency = str(reward.get("currency", "")).upper()
        if currency not in _places():
            currency = next(iter(_places()), "MQC")
        amount = _decimal(reward.get("amount"), int(_places().get(currency, "0")))
        if amount is None or not 0 < amount <= 10**6:
            amount = Decimal(1)
        quest["coinReward"] = {"currency": currency, "amount": str(amount)}
    start, end = _stamp(quest.get("activeFrom")), _stamp(quest.get("activeUntil"))
    if start and end and end <= start:
        quest.pop("activeUntil")
    return quest


def _places() -> dict[str, str]:
    """WALLET_CURRENCIES of the deployment: code -> decimal places."""
    raw = os.environ.get("SCHEMATHESIS_CURRENCY_PLACES", "")
    return dict(item.split(":") for item in raw.split(",") if item)


#: A payee on each kind of chain (the deployment's own example addresses).
_PAYEES = {
    "tron": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
    "evm": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
}


def _payout(currency: str, body: dict[str, Any]) -> dict[str, str]:
    """A chain the deployment pays ``currency`` out on (WALLET_WITHDRAWAL_CHAINS),
    and an address on it when the generated one is not."""
    allowed = [
        chain
        for code, chain in (
            item.split(":")
            for item in os.environ.get("SCHEMATHESIS_WITHDRAWAL_CHAINS", "").split(",")
            if item
        )
        if code == currency.upper()
    ]
    chain = str(body.get("chain", ""))
    if allowed and chain not in allowed:
        chain = allowed[0]
    address = str(body.get("address", ""))
    if chain == "tron":
        return {"chain": chain, "address": _PAYEES["tron"]}
    if not _is_address(address):
        address = _PAYEES["evm"]
    return {"chain": chain, "address": address}
