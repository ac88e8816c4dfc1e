"""How the suite's Python processes collect garbage: fewer, cheaper pauses.

CPython runs its cycle collector on the young generation every 700 net
allocations, and every so often over everything alive. A request handler
allocates thousands of short-lived objects, and a process holds hundreds of
thousands of long-lived ones from start-up (modules, protobuf descriptors,
compiled routes), which every full collection walks again. At launch-day
load that was the click route's tail: 2000 users over 32 connections, the
gateway's p99 was 52.6 ms with Python's defaults and 27.2 ms once start-up
objects were frozen (``bench.clicks``, README, Benchmarks).

:func:`tune_gc` (called by :func:`runtime.process.start_process`, once a
process has imported what it runs) moves everything alive into the permanent
generation (``gc.freeze``: never walked again) and collects the young
generation every ``PYTHON_GC_THRESHOLD`` allocations (default
:data:`YOUNG_THRESHOLD`). Reference counting still frees almost everything
at once; only cyclic garbage waits, a few MB at most.
"""

from __future__ import annotations

import gc

__all__ = ["OLDER_THRESHOLDS", "YOUNG_THRESHOLD", "launcher_lines", "tune_gc"]

#: Allocations between collections of the young generation (CPython: 700).
YOUNG_THRESHOLD = 20_000
#: Collections of the generation below between collections of the next (CPython: 10, 10).
OLDER_THRESHOLDS = (50, 100)


def tune_gc(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Freeze what is alive now and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, *OLDER_THRESHOLDS)


def launcher_lines(young_threshold: int = YOUNG_THRESHOLD) -> str:
    """The same, as Python source for a ``python -c`` launcher of a process
    that is not ours (the embedded SecantusDB), after its imports."""
    older, oldest = OLDER_THRESHOLDS
    return (
        "import gc; gc.collect(); gc.freeze(); "
        f"gc.set_threshold({young_threshold}, {older}, {oldest})"
    )
