"""Durations as operators write them: ``"500ms"``, ``"1s"``, ``"15m"``, ``"1h"``, ``"1d"``.

A bare number (TOML ``period = 30`` or env ``...=30``) is seconds.
"""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

#: What a bad duration is told it should look like.
DURATION_HINT = 'a duration like "1s", "15m", "1h", "1d" or a number of seconds'


def parse_duration(value: object) -> float:
    """Seconds in ``value`` (a number or a duration string); ``ValueError`` if malformed.

    Zero and negative numbers are returned as they are: the caller decides
    what range it accepts and says so in its own words.
    """
    if isinstance(value, bool):
        raise ValueError(f"must be {DURATION_HINT}, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2] or "s"]
    else:
        raise ValueError(f"must be {DURATION_HINT}, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"must be a finite number of seconds, got {value!r}")
    return seconds
