"""The mining service: the click pipeline, the hot path of the product.

``python -m services.mining`` serves ``Mining.SubmitClick`` and the status
reads: one Redis script per click checks the queue depth, the key, energy,
the tap rate and the daily cap, and queues the click on the ``mining-clicks``
stream. ``python -m services.mining worker`` drains the stream through a
consumer group into MongoDB and credits rewards through ``Wallet.Credit``;
``python -m services.mining inspect`` shows the stream, the consumers and the
dead letters (``replay-dead`` puts dead letters back).
"""
