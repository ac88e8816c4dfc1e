"""The k6 scripts in ``tests/load/`` (k6 itself is not installed here): each
one parses as JavaScript (``node --check``, skipped without node), reads the
settings the README documents and fails its run on more than 1 % errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

LOAD = Path(__file__).resolve().parents[1] / "load"
SCRIPTS = {
    "mining-clicks.js": ("BASE_URL", "RPS", "USERS", "DURATION"),
    "registration-burst.js": ("BASE_URL", "VUS"),
    "withdrawal-flow.js": ("BASE_URL", "WEBHOOK_SECRET", "VUS", "DURATION"),
}
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node not installed: cannot check the k6 scripts")
@pytest.mark.parametrize("name", [*SCRIPTS, "common.js"])
def test_each_k6_script_is_valid_javascript(name: str) -> None:
    assert NODE is not None
    checked = subprocess.run(
        [NODE, "--check", str(LOAD / name)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(("name", "settings"), SCRIPTS.items())
def test_each_script_reads_its_settings_and_fails_on_one_percent_errors(
    name: str, settings: tuple[str, ...]
) -> None:
    text = (LOAD / name).read_text()
    everything = text + (LOAD / "common.js").read_text()
    for setting in settings:
        assert re.search(rf"__ENV\.{setting}\b|number\('{setting}'", everything), setting
    assert "errors: ['rate<0.01']" in text


def test_the_click_script_takes_the_seed_scripts_token_settings() -> None:
    common = (LOAD / "common.js").read_text()
    assert "__ENV.AUTH_TOKEN" in common
    assert "__ENV.TOKENS_FILE" in common
