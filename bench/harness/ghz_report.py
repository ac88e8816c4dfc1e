"""ghz's report, from an :class:`~bench.harness.grpc_load.Outcome`: the JSON
(``count``, ``total``, ``average``, ``fastest``, ``slowest`` in integer
nanoseconds, ``rps``, ``latencyDistribution`` p10...p99, ``histogram``,
``statusCodeDistribution``, ``errorDistribution``, ``details`` when asked),
its text summary and its CSV of calls."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.harness.grpc_load import Options, Outcome, percentiles

#: The percentages ghz reports.
MARKS = (10, 25, 50, 75, 90, 95, 99)
HISTOGRAM_BUCKETS = 10


def report(outcome: Outcome, options: Options, *, details: bool = False) -> dict[str, Any]:
    """The report as ghz writes it with ``-O json``."""
    latencies = outcome.latencies
    count = len(latencies)
    total = outcome.total_ns
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "endReason": "timeout" if options.duration else "normal",
        "options": {
            "call": options.call,
            "host": options.target,
            "insecure": options.tls is None,
            "concurrency": options.concurrency,
            "total": 0 if options.duration else options.total,
            "duration": int((options.duration or 0) * 1e9),
            "rps": int(options.rps),
            "connections": options.connections,
            "generator": outcome.generator,
        },
        "count": count,
        "total": total,
        "average": sum(latencies) // count if count else 0,
        "fastest": min(latencies, default=0),
        "slowest": max(latencies, default=0),
        "rps": count / (total / 1e9) if total else 0.0,
        "errorDistribution": dict(Counter(error for error in outcome.errors if error)),
        "statusCodeDistribution": dict(outcome.status_counts()),
        "latencyDistribution": [
            {"percentage": mark, "latency": value}
            for mark, value in zip(MARKS, percentiles(latencies, MARKS), strict=True)
        ]
        if count
        else None,
        "histogram": histogram(latencies),
    }
    if details:
        result["details"] = [
            {
                "timestamp": dt.datetime.fromtimestamp(start / 1e9, dt.UTC).isoformat(),
                "latency": latency,
                "error": error,
                "status": status,
            }
            for start, latency, error, status in zip(
                outcome.starts, latencies, outcome.errors, outcome.statuses, strict=True
            )
        ]
    return result


def histogram(latencies: list[int]) -> list[dict[str, Any]]:
    """ghz's buckets: marks (seconds) evenly from the fastest to the slowest."""
    if not latencies:
        return []
    fastest, slowest = min(latencies), max(latencies)
    step = (slowest - fastest) / HISTOGRAM_BUCKETS
    marks = [fastest + step * index for index in range(HISTOGRAM_BUCKETS + 1)]
    counts = [0] * len(marks)
    for value in latencies:
        index = 0 if step == 0 else min(len(marks) - 1, int(-(-(value - fastest) // step)))
        counts[index] += 1
    return [
        {"mark": mark / 1e9, "count": n, "frequency": n / len(latencies)}
        for mark, n in zip(marks, counts, strict=True)
    ]


def _ms(nanoseconds: float) -> str:
    return f"{nanoseconds / 1e6:.2f} ms"


def summary(data: Mapping[str, Any]) -> str:
    """The text ghz prints with ``-O summary`` (its default)."""
    lines = [
        "",
        "Summary:",
        f"  Count:\t{data['count']}",
        f"  Total:\t{_ms(data['total'])}",
        f"  Slowest:\t{_ms(data['slowest'])}",
        f"  Fastest:\t{_ms(data['fastest'])}",
        f"  Average:\t{_ms(data['average'])}",
        f"  Requests/sec:\t{data['rps']:.2f}",
        "",
        "Response time histogram:",
    ]
    buckets = data.get("histogram") or []
    most = max((bucket["count"] for bucket in buckets), default=0)
    for bucket in buckets:
        bar = "∎" * (round(40 * bucket["count"] / most) if most else 0)
        lines.append(f"  {1000 * bucket['mark']:.3f} [{bucket['count']}]\t|{bar}")
    lines += ["", "Latency distribution:"]
    for point in data.get("latencyDistribution") or []:
        lines.append(f"  {point['percentage']} % in {_ms(point['latency'])} ")
    lines += ["", "Status code distribution:"]
    for status, n in sorted(data["statusCodeDistribution"].items(), key=lambda item: -item[1]):
        lines.append(f"  [{status}]\t{n} responses")
    if data["errorDistribution"]:
        lines += ["", "Error distribution:"]
        for error, n in sorted(data["errorDistribution"].items(), key=lambda item: -item[1]):
            lines.append(f"  [{n}]\t{error}")
    return "\n".join(lines) + "\n"


def csv(data: Mapping[str, Any]) -> str:
    """ghz's ``-O csv``: one line per call (the report's ``details``)."""
    lines = ["duration (ms),status,error"]
    for call in data.get("details") or []:
        error = str(call["error"]).replace('"', '""')
        lines.append(f'{call["latency"] / 1e6:.2f},{call["status"]},"{error}"')
    return "\n".join(lines) + "\n"
