"""py-spy recordings of running processes and the frames they spend time in."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.harness.processes import ROOT


def py_spy() -> str | None:
    """The py-spy executable (the ``bench`` extra installs it beside Python), or None."""
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


@dataclass(slots=True)
class Recording:
    name: str
    process: subprocess.Popen[str]
    raw: Path


class Recorder:
    """py-spy ``record`` on several processes at once for ``seconds``.

    Sampling pauses the process (whole stacks; ``nonblocking`` cuts coroutine
    stacks short): keep the rate low enough that the pauses do not push
    timeouts (the guard's Redis calls) over their limit.
    """

    def __init__(
        self,
        spy: str,
        pids: Mapping[str, int],
        seconds: float,
        out_dir: Path,
        *,
        rate: int = 100,
        nonblocking: bool = False,
        gil_only: bool = True,
    ) -> None:
        self.recordings: list[Recording] = []
        self.seconds = seconds
        for name, pid in pids.items():
            raw = out_dir / f"profile-{name}.txt"
            command = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds) + 1)]
            command += ["--rate", str(rate), "--format", "raw", "--output", str(raw)]
            # A supervisor's children too (the gateway's GATEWAY_WORKERS processes).
            command.append("--subprocesses")
            if nonblocking:
                command.append("--nonblocking")
            if gil_only:
                command.append("--gil")
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            self.recordings.append(Recording(name, process, raw))

    def finish(self) -> dict[str, tuple[Path | None, str]]:
        """Wait for every recording: name -> (raw stacks file, or None and why)."""
        results: dict[str, tuple[Path | None, str]] = {}
        try:
            for recording in self.recordings:
                _, problem = recording.process.communicate(timeout=self.seconds + 60)
                ok = recording.process.returncode == 0 and recording.raw.exists()
                results[recording.name] = (
                    (recording.raw, "")
                    if ok
                    else (
                        None,
                        f"py-spy failed ({recording.process.returncode}): {problem.strip()[-400:]}",
                    )
                )
        finally:
            self.stop()
        return results

    def stop(self) -> None:
        for recording in self.recordings:
            if recording.process.poll() is None:
                recording.process.kill()
                recording.process.wait()


def read_stacks(raw: Path) -> tuple[Counter[str], Counter[str], int]:
    """Samples per frame from py-spy's ``--format raw`` (collapsed stacks): self
    (the innermost frame) and inclusive (anywhere on the stack), and the total."""
    self_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if frame]
        if not frames:
            continue
        total += count
        self_samples[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return self_samples, inclusive, total


def print_top(
    self_samples: Counter[str], inclusive: Counter[str], total: int, most: int = 25
) -> None:
    if not total:
        print("  no samples")
        return
    print(f"  self time (top {most}):")
    for frame, count in self_samples.most_common(most):
        print(f"    {100 * count / total:5.1f}%  {frame}")
    print(f"  inclusive (top {most + 15}):")
    for frame, count in inclusive.most_common(most + 15):
        print(f"    {100 * count / total:5.1f}%  {frame}")


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _frame(frame: str) -> str:
    """``func (path/to/module.py:12)`` → ``func (module/path.py)``, shortened."""
    frame = frame.strip()
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"
