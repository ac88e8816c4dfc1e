"""The wallet service: balances per user and currency, an append-only ledger
that never loses or invents a coin, deposits from a signed webhook,
withdrawals held until an admin decides, and spends inside the product
(``Wallet.Debit``: boost purchases, :mod:`services.wallet.debits`).

Run it with ``python -m services.wallet``; check every balance against the
ledger with ``python -m services.wallet reconcile`` (exit 1 on a difference).
"""
