"""``python -m bench.clicks``: its options, variants and the table with the goals
(no stack started here; the bench itself is run by hand, see README)."""

from __future__ import annotations

import pytest

from bench import clicks
from bench.clicks import Exactness, Row


def test_the_defaults_are_the_issues_load() -> None:
    args = clicks.parse_args([])
    assert (args.users, args.connections, args.duration) == (2000, 32, 60)
    assert args.suite_variants == [("defaults", {})]


def test_variants_are_chosen_by_name_and_added_as_settings() -> None:
    args = clicks.parse_args(
        [
            "--variants",
            "defaults,1-gateway",
            "--variant",
            "w4:GATEWAY_WORKERS=4,MINING_WORKER_PROCESSES=2",
        ]
    )
    assert args.suite_variants == [
        ("defaults", {}),
        ("1-gateway", {"GATEWAY_WORKERS": "1"}),
        ("w4", {"GATEWAY_WORKERS": "4", "MINING_WORKER_PROCESSES": "2"}),
    ]


def test_quick_is_short(capsys: pytest.CaptureFixture[str]) -> None:
    args = clicks.parse_args(["--quick"])
    assert args.duration < 10
    assert args.users <= 300


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variants", "fastest"], "--variants: unknown fastest"),
        (["--variant", "GATEWAY_WORKERS=4"], "expected name:NAME=VALUE"),
        (["--variant", "w:GATEWAY_WORKERS"], "expected NAME=VALUE"),
        (["--profile", "everything"], "--profile: unknown everything"),
        (["--duration", "0"], "must be at least 1"),
    ],
)
def test_a_bad_option_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit):
        clicks.parse_args(argv)
    assert message in capsys.readouterr().err


def rows(
    *, accepted: float, p99: float, drain: float, cpu: float, duplicates: int = 0
) -> list[Row]:
    return [
        Row("ceiling (Starlette + grpc.aio echo)", 5000.0, 5.0, 9.0, 60.0, cpu_ms_per_click=0.3),
        Row(
            "defaults",
            accepted,
            20.0,
            p99,
            60.0,
            drain_per_s=drain,
            backlog_share=0.02,
            cpu_ms_per_click=cpu,
            cpu_by_process={"gateway": cpu / 2, "mongodb": cpu / 2},
            exactness=Exactness(queued=100, clicks=100, credited=100, duplicates=duplicates),
        ),
        Row("seed 000 (Node/Express + BullMQ + MongoDB worker)", 1000.0, 20.0, 50.0, 60.0),
    ]


def test_the_report_puts_the_ratios_side_by_side_and_meets_the_goals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clicks.print_report(
        rows(accepted=2500, p99=40, drain=2450, cpu=0.7), clicks.parse_args([]), markdown=True
    )
    out = capsys.readouterr().out
    assert (
        "| defaults | 2,500 | 20.0 / 40.0 | 2,450/s (0.98) | 2.0 % | 0.70 | 0.50 | 2.50 | 0 | yes |"
        in out
    )
    goals = next(line for line in out.splitlines() if line.startswith("  defaults: accepted"))
    assert goals.count("MET") == 6
    assert "MISSED" not in goals


def test_each_goal_missed_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    clicks.print_report(
        rows(accepted=1500, p99=60, drain=600, cpu=2.0, duplicates=1),
        clicks.parse_args([]),
        markdown=False,
    )
    goals = next(
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("  defaults: accepted")
    )
    assert "accepted 1.50x seed (>= 2.0x: MISSED)" in goals
    assert "p99 60.0 ms (< 50: MISSED)" in goals
    assert "drain 40 % of accepted (>= 95 %: MISSED)" in goals
    assert "CPU 2.00 ms/click (<= 0.8: MISSED)" in goals
    assert "duplicates 1 (MISSED)" in goals


def test_a_click_not_credited_fails_the_check() -> None:
    assert Exactness(queued=10, clicks=10, credited=10, duplicates=0).every_202_credited
    assert not Exactness(queued=10, clicks=10, credited=9, duplicates=0).every_202_credited
    assert not Exactness(
        queued=10, clicks=10, credited=10, duplicates=0, problems=["x"]
    ).every_202_credited


def test_rounds_report_each_ratio_inside_its_round(capsys: pytest.CaptureFixture[str]) -> None:
    assert clicks.parse_args(["--rounds", "3"]).rounds == 3
    slow = rows(accepted=900, p99=70, drain=850, cpu=2.0)
    slow[-1].accepted_per_s = 600.0  # the seed, in the same slow round: 1.50x
    fast = rows(accepted=2500, p99=30, drain=2450, cpu=0.6)  # 2.50x its round's seed
    clicks.print_ratios([slow, fast, slow])
    out = capsys.readouterr().out
    assert (
        "defaults / seed: 1.50, 2.50, 1.50 (median 1.50, range 1.50-2.50; goal >= 2.0x: MISSED)"
        in out
    )
    assert "defaults / ceiling: 0.18, 0.50, 0.18 (median 0.18, range 0.18-0.50)" in out


def test_goals_on_another_load_say_they_are_indicative(capsys: pytest.CaptureFixture[str]) -> None:
    clicks.print_report(
        rows(accepted=2500, p99=40, drain=2450, cpu=0.7),
        clicks.parse_args(["--quick"]),
        markdown=False,
    )
    assert "Goals (not the issue's load" in capsys.readouterr().out
