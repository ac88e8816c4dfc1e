"""runtime.priority: the click drain (the mining worker, the embedded
SecantusDB) runs at a higher nice value than the request path, so that on a
shared box the requests get the CPU first. Each case runs in a fresh process
(raising the test process's own niceness would be for good)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.config import ConfigError, Env
from runtime.embedded import EmbeddedMongo
from runtime.priority import BACKGROUND_NICE, background_nice, launcher_line
from tests.fresh_python import output_of

RAISED = (
    "import os; from runtime.priority import lower_priority; "
    "before = os.nice(0); lower_priority({n}); print(os.nice(0) - before)"
)


def test_the_niceness_defaults_to_ten_and_a_bad_one_is_a_one_line_configuration_error() -> None:
    assert background_nice(Env({}), "MINING_WORKER_NICE") == BACKGROUND_NICE == 10
    assert background_nice(Env({"MINING_WORKER_NICE": "0"}), "MINING_WORKER_NICE") == 0
    for bad in ("20", "-1", "low"):
        with pytest.raises(ConfigError, match="MINING_WORKER_NICE"):
            background_nice(Env({"MINING_WORKER_NICE": bad}), "MINING_WORKER_NICE")


@pytest.mark.skipif(os.nice(0) > 12, reason="the test process is already nice 13 or more")
def test_a_process_lowers_its_own_priority_by_the_niceness_and_zero_leaves_it() -> None:
    assert output_of(RAISED.format(n=7)) == "7"
    assert output_of(RAISED.format(n=0)) == "0"


@pytest.mark.skipif(os.nice(0) > 9, reason="the test process is already nice 10 or more")
def test_the_embedded_secantusdb_runs_at_the_configured_niceness(tmp_path: Path) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    settings = {"MONGODB_EMBEDDED_NICE": "9"}
    with EmbeddedMongo(tmp_path, environ=settings, cache_size="64M") as server:
        assert server.process is not None
        assert os.getpriority(os.PRIO_PROCESS, server.process.pid) == own + 9
    assert launcher_line(0) == ""
    normal = EmbeddedMongo(tmp_path, environ={"MONGODB_EMBEDDED_NICE": "0"})
    assert "os.nice" not in normal.command()[2]
    assert "os.nice(10)" in EmbeddedMongo(tmp_path, environ={}).command()[2]
