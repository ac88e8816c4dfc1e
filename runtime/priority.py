"""Which processes give way on a shared box: the click drain yields the CPU
to the requests.

On one machine the gateway, the mining service and Redis answer clicks
while the mining worker and its database write them, and under load the
two halves compete for the same cores. The worker's batches linger for
seconds anyway (``MINING_WORKER_LINGER_MS``), so a few milliseconds of
waiting for a core cost it nothing, while every millisecond a request
waits is latency a user sees. So the worker (``MINING_WORKER_NICE``) and
the embedded SecantusDB ``make dev`` starts (``MONGODB_EMBEDDED_NICE``)
run at niceness :data:`BACKGROUND_NICE` by default: they get whatever CPU
the requests leave, which on an idle box is all of it. Side by side
(README, Benchmarks) that accepted 12-17 % more clicks at a lower p99 and
less CPU per click. 0 runs them like everything else.

Raising one's own niceness needs no privilege. In a container the kernel
weighs containers against each other by their CPU shares, not by nice
values, so there the setting only orders the processes inside one.
"""

from __future__ import annotations

import os

from runtime.config import Env

__all__ = ["BACKGROUND_NICE", "background_nice", "launcher_line", "lower_priority"]

#: Niceness of the background drain (0 normal, 19 the lowest priority).
BACKGROUND_NICE = 10


def background_nice(env: Env, name: str) -> int:
    """The niceness variable ``name`` sets (default :data:`BACKGROUND_NICE`)."""
    return env.integer(name, BACKGROUND_NICE, minimum=0, maximum=19)


def lower_priority(niceness: int) -> None:
    """Add ``niceness`` to this process's nice value (0: leave it)."""
    if niceness:
        os.nice(niceness)


def launcher_line(niceness: int) -> str:
    """The same, as Python source for a ``python -c`` launcher ('' for 0)."""
    return f"import os; os.nice({niceness}); " if niceness else ""
