"""What every benchmark under ``bench/`` is built from; the scripts themselves
(``python -m bench.<name>``) only say what to measure and print.

- :mod:`bench.harness.processes`: child processes with log files, a clean
  environment, ports, one HTTP call, uvicorn servers, the work folder;
- :mod:`bench.harness.suite`: the whole suite started from ``tools.dev``'s
  plan (the one ``make dev`` and the e2e tests use) on ports and databases of
  its own;
- :mod:`bench.harness.load`: wrk (and a Python fallback), results merged;
- :mod:`bench.harness.grpc_load`: gRPC load as ghz does it (ghz, grpc.aio
  client processes, h2load) and :mod:`bench.harness.ghz_report`, ghz's report;
- :mod:`bench.harness.tokens`: access tokens minted with the auth key;
- :mod:`bench.harness.redis_stats`: ``INFO commandstats`` and ``MONITOR``;
- :mod:`bench.harness.cpu`: CPU per process from ``/proc``;
- :mod:`bench.harness.profiling`: py-spy recordings and their top frames;
- :mod:`bench.harness.report`: the machine, versions, tables, verdicts.
"""
