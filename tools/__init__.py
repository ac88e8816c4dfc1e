"""Developer tooling: stub generation and the `make dev` supervisor."""
