"""Configuration files in TOML, checked whole before a process starts.

The rate-limit policies (:mod:`gateway.protection.policy`) and the boosts
catalogue (:mod:`services.mining.boosts`) are data files. Each is read with
:func:`read_toml` and walked by a :class:`Checker` that collects every
mistake instead of stopping at the first; the loader then raises its
:class:`FileMistakes` subclass, which reports each as ``file:where: problem``
(one line per mistake) and stops the process like any configuration error.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from runtime.config import ConfigError

__all__ = ["Checker", "FileMistakes", "read_toml"]


class FileMistakes(ConfigError):
    """One or more mistakes in a configuration file."""

    #: What the file holds, as the message names it ("the boosts").
    subject = "the file"

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(f"{where}: {problem}" for where, problem in problems)
        if len(problems) == 1:
            super().__init__(*problems[0])
        else:
            super().__init__(
                source,
                f"{len(problems)} mistakes in {self.subject}\n" + "\n".join(self.problems),
            )


def read_toml(
    path: Path, mistakes: type[FileMistakes], where: str | None = None
) -> dict[str, object]:
    """The parsed file; ``mistakes`` when it cannot be read (reported at
    ``where``: the variable that named the file, say) or is not TOML."""
    source = str(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        problem = f"cannot read {source}: {error.strerror}"
        raise mistakes(source, [(where or source, problem)]) from None
    except tomllib.TOMLDecodeError as error:
        raise mistakes(source, [(source, f"invalid TOML: {error}")]) from None


class Checker:
    """Walks a parsed file, collecting every problem instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[tuple[str, str]] = []

    def fail(self, where: str, problem: str) -> None:
        self.problems.append((f"{self.source}:{where}", problem))

    def unknown_keys(self, at: str, raw: Mapping[str, object], known: Sequence[str]) -> None:
        for key in raw:
            if key not in known:
                self.fail(f"{at}{key}", f"unknown key; expected one of {', '.join(known)}")
