"""The wallet service's configuration, read once from the environment.

Lists are entries separated by ``,`` (or ``;``), fields by ``:``; decimal
amounts are in whole currency units (``10`` MQC, ``0.5`` USDT)::

    WALLET_CURRENCIES=MQC:8,USDT:6                  code:precision
    WALLET_MINED_CURRENCY=MQC                       one of the above
    WALLET_DEPOSIT_WALLETS=USDT:ethereum:0x…,USDT:tron:T…   currency:chain:address
    WALLET_WITHDRAWAL_CHAINS=MQC:ethereum,USDT:tron currency:chain
    WALLET_WITHDRAWAL_LIMITS=MQC:10:100000:250000   currency:minimum:maximum:daily

Every mistake raises :class:`ConfigError` naming the variable, so a
misconfigured wallet never starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.config import ConfigError, Env, ServiceSettings
from runtime.errors import DomainError
from services.wallet.chains import known_chain, normalize_address
from services.wallet.money import MAX_PRECISION, Currency, parse_decimal, valid_code

DEFAULT_CURRENCIES = "MQC:8,USDT:6"
DEFAULT_WITHDRAWAL_CHAINS = "MQC:ethereum,USDT:ethereum,USDT:tron"
DEFAULT_WITHDRAWAL_LIMITS = "MQC:10:1000000:1000000,USDT:10:10000:20000"


@dataclass(frozen=True, slots=True)
class DepositWallet:
    currency: str
    chain: str
    address: str


@dataclass(frozen=True, slots=True)
class WithdrawalLimits:
    """Per-withdrawal minimum and maximum, and a per-user total per UTC day (units)."""

    minimum: int
    maximum: int
    daily: int


@dataclass(frozen=True, slots=True)
class WalletSettings:
    service: ServiceSettings
    currencies: Mapping[str, Currency]
    mined_currency: str
    deposit_wallets: tuple[DepositWallet, ...]
    withdrawal_chains: Mapping[str, frozenset[str]]
    withdrawal_limits: Mapping[str, WithdrawalLimits]
    credit_max_batch: int
    metrics_refresh_seconds: float
    #: Where the auth service answers whose wallet an address is (withdrawals).
    auth_service_addr: str

    @classmethod
    def from_env(cls, env: Env | None = None) -> WalletSettings:
        env = env or Env()
        currencies = _currencies(env)
        mined = env.string("WALLET_MINED_CURRENCY", "MQC").upper()
        if mined not in currencies:
            raise ConfigError("WALLET_MINED_CURRENCY", f"{mined} is not in WALLET_CURRENCIES")
        chains = _withdrawal_chains(env, currencies)
        limits = _withdrawal_limits(env, currencies)
        missing = sorted(set(chains) - set(limits))
        if missing:
            raise ConfigError(
                "WALLET_WITHDRAWAL_LIMITS",
                f"no limits for {', '.join(missing)} (named in WALLET_WITHDRAWAL_CHAINS)",
            )
        return cls(
            service=ServiceSettings.from_env("wallet", env, needs_redis=False),
            currencies=currencies,
            mined_currency=mined,
            deposit_wallets=_deposit_wallets(env, currencies),
            withdrawal_chains=chains,
            withdrawal_limits=limits,
            credit_max_batch=env.integer("WALLET_CREDIT_MAX_BATCH", 1000, minimum=1, maximum=10000),
            metrics_refresh_seconds=env.number(
                "WALLET_METRICS_REFRESH_SECONDS", 15.0, minimum=0.1, maximum=3600
            ),
            auth_service_addr=env.service_addr("AUTH_SERVICE_ADDR", "auth"),
        )

    def deposit_chains(self, currency: str) -> frozenset[str]:
        return frozenset(w.chain for w in self.deposit_wallets if w.currency == currency)


def _entries(env: Env, name: str, default: str, fields: int) -> list[list[str]]:
    value = env.string(name, default)
    entries = [item.strip() for item in re.split(r"[,;]", value) if item.strip()]
    parsed = []
    for entry in entries:
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) != fields or not all(parts):
            raise ConfigError(name, f"{entry!r} must have {fields} ':'-separated fields")
        parsed.append(parts)
    return parsed


def _currency(name: str, code: str, currencies: Mapping[str, Currency]) -> Currency:
    currency = currencies.get(code.upper())
    if currency is None:
        raise ConfigError(name, f"{code} is not in WALLET_CURRENCIES")
    return currency


def _chain(name: str, chain: str) -> str:
    try:
        return known_chain(chain)
    except DomainError as error:
        raise ConfigError(name, error.message) from None


def _currencies(env: Env) -> dict[str, Currency]:
    name = "WALLET_CURRENCIES"
    currencies: dict[str, Currency] = {}
    for raw_code, precision in _entries(env, "WALLET_CURRENCIES", DEFAULT_CURRENCIES, 2):
        code = raw_code.upper()
        if not valid_code(code):
            raise ConfigError(name, f"{code!r} is not a currency code (2-10 of A-Z, 0-9)")
        if not precision.isdigit() or int(precision) > MAX_PRECISION:
            raise ConfigError(name, f"precision of {code} must be 0-{MAX_PRECISION}")
        if code in currencies:
            raise ConfigError(name, f"{code} is listed twice")
        currencies[code] = Currency(code, int(precision))
    if not currencies:
        raise ConfigError(name, "at least one currency is required")
    return currencies


def _deposit_wallets(env: Env, currencies: Mapping[str, Currency]) -> tuple[DepositWallet, ...]:
    name = "WALLET_DEPOSIT_WALLETS"
    wallets: list[DepositWallet] = []
    for code, chain_name, address in _entries(env, "WALLET_DEPOSIT_WALLETS", "", 3):
        currency = _currency(name, code, currencies)
        chain = _chain(name, chain_name)
        try:
            canonical = normalize_address(chain, address)
        except DomainError as error:
            raise ConfigError(name, f"{code} on {chain}: {error.message}") from None
        if any(w.currency == currency.code and w.chain == chain for w in wallets):
            raise ConfigError(name, f"{code} on {chain} is listed twice")
        wallets.append(DepositWallet(currency.code, chain, canonical))
    return tuple(wallets)


def _withdrawal_chains(env: Env, currencies: Mapping[str, Currency]) -> dict[str, frozenset[str]]:
    name = "WALLET_WITHDRAWAL_CHAINS"
    chains: dict[str, set[str]] = {}
    for code, chain in _entries(env, "WALLET_WITHDRAWAL_CHAINS", DEFAULT_WITHDRAWAL_CHAINS, 2):
        currency = _currency(name, code, currencies)
        chains.setdefault(currency.code, set()).add(_chain(name, chain))
    return {code: frozenset(names) for code, names in chains.items()}


def _withdrawal_limits(env: Env, currencies: Mapping[str, Currency]) -> dict[str, WithdrawalLimits]:
    name = "WALLET_WITHDRAWAL_LIMITS"
    limits: dict[str, WithdrawalLimits] = {}
    for code, minimum, maximum, daily in _entries(
        env, "WALLET_WITHDRAWAL_LIMITS", DEFAULT_WITHDRAWAL_LIMITS, 4
    ):
        currency = _currency(name, code, currencies)
        try:
            low, high, day = (
                parse_decimal(value, currency, label)
                for value, label in ((minimum, "minimum"), (maximum, "maximum"), (daily, "daily"))
            )
        except DomainError as error:
            raise ConfigError(name, f"{code}: {error.message}") from None
        if not low <= high:
            raise ConfigError(name, f"{code}: minimum {minimum} is above maximum {maximum}")
        if day < low:
            raise ConfigError(name, f"{code}: daily {daily} is below minimum {minimum}")
        if currency.code in limits:
            raise ConfigError(name, f"{code} is listed twice")
        limits[currency.code] = WithdrawalLimits(low, high, day)
    return limits
