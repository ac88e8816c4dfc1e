"""The bench harness's pure parts: wrk's results merged, tables, py-spy stacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.harness.load import LoadResult, merge, parse_wrk, quantiles_of
from bench.harness.profiling import read_stacks
from bench.harness.report import table


def wrk_line(requests: int, latency_us: int, statuses: dict[str, int]) -> str:
    data = {
        "requests": requests,
        "duration_us": 2_000_000,
        "status_errors": statuses.get("s429", 0),
        "connect_errors": 0,
        "read_errors": 1,
        "write_errors": 0,
        "timeouts": 0,
        "statuses": statuses,
        "quantiles_us": [latency_us] * 1000,
    }
    return "Running 2s test\n...\nWRK_JSON " + json.dumps(data) + "\n"


def test_wrk_results_of_instances_run_together_add_up() -> None:
    fast = parse_wrk(wrk_line(3000, 1000, {"s202": 2900, "s429": 100}))
    slow = parse_wrk(wrk_line(1000, 9000, {"s202": 1000}))
    both = merge([fast, slow])
    assert both.requests == 4000
    assert both.seconds == 2.0
    assert both.accepted_per_second == 1950.0
    assert both.share("s429") == 0.025
    assert both.socket_errors == 2
    assert both.p50_ms == 1.0  # three quarters of the calls took 1 ms
    assert both.percentile_ms(0.9) == 9.0


def test_output_without_the_json_line_is_refused() -> None:
    with pytest.raises(ValueError, match="no WRK_JSON line"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_python_latencies_become_the_same_quantiles() -> None:
    result = LoadResult(100, 1.0, quantiles=quantiles_of([n / 1000 for n in range(1, 101)]))
    assert result.p50_ms == 50.0
    assert result.p99_ms == 99.0


def test_tables_align_or_render_as_markdown() -> None:
    rows = [["a", "1"], ["longer", "1,000"]]
    assert table(["name", "n"], rows).splitlines() == [
        "name        n",
        "a           1",
        "longer  1,000",
    ]
    assert table(["name", "n"], rows, markdown=True).splitlines()[1] == "|---|---|"


def test_py_spy_stacks_count_self_and_inclusive_time(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "main (app.py:1);handle (app.py:5);encode (json/encoder.py:10) 3\n"
        "main (app.py:1);handle (app.py:5) 1\n"
    )
    self_samples, inclusive, total = read_stacks(raw)
    assert total == 4
    assert self_samples["encode (json/encoder.py)"] == 3
    assert inclusive["handle (app.py)"] == 4
