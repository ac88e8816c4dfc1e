"""runtime.heap: every process freezes its start-up objects and collects its
young generation less often; the embedded SecantusDB's launcher does the same.
Each case runs in a fresh interpreter (the test process keeps its own GC)."""

from __future__ import annotations

import pytest

from runtime.config import ConfigError, Env, ServiceSettings, gc_threshold
from runtime.embedded import EmbeddedMongo
from runtime.heap import YOUNG_THRESHOLD, launcher_lines
from tests.fresh_python import output_of

REPORT = "import gc; print(gc.get_threshold(), gc.get_freeze_count() > 1000)"


def test_tune_gc_freezes_what_is_alive_and_raises_the_young_threshold() -> None:
    assert output_of(f"from runtime.heap import tune_gc; tune_gc(5000); {REPORT}") == (
        "(5000, 50, 100) True"
    )


def test_the_launcher_lines_do_the_same_in_a_process_that_is_not_ours() -> None:
    assert (
        output_of(f"import json, email; {launcher_lines(1234)}; {REPORT}") == "(1234, 50, 100) True"
    )


def test_the_embedded_secantusdb_is_launched_with_the_configured_threshold(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_GC_THRESHOLD", "4321")
    launcher = EmbeddedMongo(tmp_path).command()[2]
    assert launcher_lines(4321) in launcher
    assert launcher.index("from secantus.cli import main") < launcher.index("gc.freeze()")


def test_the_threshold_defaults_and_a_bad_one_is_a_one_line_configuration_error() -> None:
    assert gc_threshold(Env({})) == YOUNG_THRESHOLD == 20_000
    with pytest.raises(ConfigError, match="PYTHON_GC_THRESHOLD"):
        gc_threshold(Env({"PYTHON_GC_THRESHOLD": "lots"}))
    with pytest.raises(ConfigError, match="PYTHON_GC_THRESHOLD"):
        ServiceSettings.from_env(
            "wallet",
            Env({"MONGODB_URI": "mongodb://x", "PYTHON_GC_THRESHOLD": "0"}),
            needs_redis=False,
        )
