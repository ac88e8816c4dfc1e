"""The TypeScript client (clients/typescript) and the web app's own logic (web/),
type-checked with tsc and unit-tested with node's test runner.

``make clients`` generates the client's types from the checked-in
openapi.json first, so a contract change that breaks the hand-written layer
or the web app fails here. Skipped without node/npm.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 300

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node/npm not found: install Node.js 20+ to test the TypeScript client",
)


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} in {cwd}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def built() -> None:
    """The client generated from openapi.json and built, the web app's packages installed."""
    run(["make", "--no-print-directory", "-s", "clients"], ROOT)
    web = ROOT / "web"
    if not (web / "node_modules" / ".package-lock.json").exists():
        run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], web)


def test_the_client_type_checks_against_the_generated_contract(built: None) -> None:
    run(["npm", "run", "--silent", "typecheck"], ROOT / "clients" / "typescript")


def test_the_clients_unit_tests_pass(built: None) -> None:
    out = run(["npm", "test", "--silent"], ROOT / "clients" / "typescript")
    assert "# fail 0" in out
    assert "# pass 0" not in out


def test_the_web_app_type_checks_and_its_tap_batcher_passes(built: None) -> None:
    web = ROOT / "web"
    run(["npm", "run", "--silent", "typecheck"], web)
    out = run(["npm", "test", "--silent"], web)
    assert "# fail 0" in out
    assert "# pass 0" not in out
