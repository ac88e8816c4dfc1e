"""Minequest's gRPC services. Each sub-package is independent: services share
only the generated contracts (``minequest``) and the ``runtime`` package."""
