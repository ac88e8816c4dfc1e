"""The mining service: the click pipeline, the hot path of the product.

``python -m services.mining`` serves ``Mining.SubmitClicks`` (the gateway's
batches of concurrent clicks), ``SubmitClick`` and the status reads: one
Redis script per call checks, click by click, the key, the queue depth,
energy, the tap rate and the daily cap, and queues each accepted click on
the ``mining-clicks`` stream. ``python -m services.mining worker`` drains the
stream through a consumer group into MongoDB, per batch: click records,
totals and an outbox of what the batch owes in one transaction, then one
``Wallet.Credit`` entry per user per batch (:mod:`services.mining.outbox`).
``python -m services.mining inspect`` shows the stream, the consumers, the
dead letters and the outbox backlog (``replay-dead`` puts dead letters back).
"""
