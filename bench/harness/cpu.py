"""CPU per process, read from ``/proc/<pid>/stat`` (children of a process not counted)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (a gateway's forked workers, say)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and its living descendants."""
    return cpu_seconds(pid) + sum(tree_cpu_seconds(child) for child in children_of(pid))


class CpuMeter:
    """CPU seconds per named process (and its descendants) between
    :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._before: dict[str, float] = {}

    def start(self) -> None:
        self._before = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        return {
            name: max(0.0, tree_cpu_seconds(pid) - self._before.get(name, 0.0))
            for name, pid in self.pids.items()
        }
