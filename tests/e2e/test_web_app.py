"""The web app in a real browser against the real stack.

``make web`` builds ``web/dist``, which the gateway serves at ``/app/``; a
stack in dev mode (no SMTP, ``ENABLE_DEV_OTP_FALLBACK=true``, as ``make dev``
runs) answers it. ``web/e2e/browser.mjs`` drives Debian's chromium with
playwright-core through a new player's first minutes and prints what the
page showed. The screenshot goes to a temporary folder, or to
``WEB_APP_SCREENSHOT`` (``docs/web-app.png`` for the README).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stack, start_stack
from tests.e2e.test_auth_flow import new_wallet

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BUILD_TIMEOUT_SECONDS = 300
BROWSER_TIMEOUT_SECONDS = 120


def _missing_tools() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not found: install Node.js 20+ to build and drive the web app"
    if not Path(CHROMIUM).exists():
        return "chromium not found: run `make browser-tools` (Debian's chromium)"
    return None


@pytest.fixture(scope="module")
def web_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    missing = _missing_tools()
    if missing is not None:
        pytest.skip(missing)
    # Built first: the gateway looks for web/dist/index.html when it starts.
    build = subprocess.run(
        ["make", "--no-print-directory", "-s", "web"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    yield from start_stack(
        request,
        tmp_path_factory,
        "web",
        {
            "SMTP_HOST": "",
            "ENABLE_DEV_OTP_FALLBACK": "true",
            # Energy refills slowly here, so the fall the page shows stays put.
            "MINING_ENERGY_REGEN_PER_SECOND": "0.001",
        },
    )


def new_quest(stack: Stack, name: str) -> str:
    quest_id = f"web-{uuid.uuid4().hex[:8]}"
    admin = {"Authorization": f"Bearer {stack.token_for('web-admin', role='admin')}"}
    body = {"quest": {"id": quest_id, "name": name, "type": "QUEST_TYPE_SOCIAL", "xpReward": "40"}}
    with stack.client() as client:
        response = client.post("/api/admin/quests", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return quest_id


def run_browser(stack: Stack, **values: str) -> dict[str, Any]:
    env = {**os.environ, "APP_URL": f"{stack.base_url}/app/", "CHROMIUM": CHROMIUM, **values}
    done = subprocess.run(
        ["node", "e2e/browser.mjs"],
        cwd=ROOT / "web",
        env=env,
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, (
        f"{done.stdout}\n{done.stderr}\n--- gateway ---\n{stack.child('gateway').output()}"
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_new_player_logs_in_mines_completes_a_quest_and_is_on_the_leaderboard(
    web_stack: Stack, tmp_path: Path
) -> None:
    username = f"web{uuid.uuid4().hex[:8]}"
    wallet = new_wallet()
    quest_name = "Say hello on X"
    new_quest(web_stack, quest_name)
    screenshot = Path(os.environ.get("WEB_APP_SCREENSHOT") or tmp_path / "web-app.png")

    seen = run_browser(
        web_stack,
        SCREENSHOT=str(screenshot),
        EMAIL=f"{username}@example.com",
        WALLET=wallet,
        USERNAME=username,
        QUEST_NAME=quest_name,
        TAPS="5",
    )

    assert len(seen["devCode"]) == 6, seen["devCode"]
    assert seen["devCode"].isdigit()
    assert seen["player"] == username
    assert seen["energyAfter"] < seen["energyBefore"]
    assert seen["balanceAfter"] > seen["balanceBefore"] == 0
    assert "taps mined" in seen["clickStatus"]
    assert seen["totalXp"] == 40
    assert any(username in row and "40 XP" in row for row in seen["leaderboard"])
    assert seen["ownRank"].startswith("You: #")
    assert any("credit" in row and "MQC" in row for row in seen["history"])
    assert seen["depositReference"].startswith("MQ")
    assert seen["withdrawal"].endswith("[insufficient_funds]")  # 2 MQC asked, 0.005 mined
    assert seen["consoleErrors"] == []
    assert screenshot.stat().st_size > 10_000

    # what the server holds agrees with what the page showed
    with web_stack.client() as client:
        lookup = client.get(f"/api/public/users/interaction/{wallet}")
    assert lookup.status_code == 200, lookup.text
    assert lookup.json()["questsCompleted"] == 1


def test_the_mails_login_link_signs_in_on_opening(web_stack: Stack) -> None:
    """AUTH_LOGIN_LINK_URL=…/app/#challenge={challengeId}&key={key}: the link
    signs in. The dev code stands in for the mail's key (verify takes either)."""
    username = f"link{uuid.uuid4().hex[:8]}"
    email = f"{username}@example.com"
    with web_stack.client() as client:
        registered = client.post(
            "/api/auth/register",
            json={"walletAddress": new_wallet(), "email": email, "username": username},
        )
        assert registered.status_code == 201, registered.text
        otp = client.post("/api/auth/otp/request", json={"email": email}).json()
    link = f"{web_stack.base_url}/app/#challenge={otp['challengeId']}&key={otp['devCode']}"

    seen = run_browser(web_stack, LOGIN_LINK=link)

    assert seen["player"] == username
    assert seen["consoleErrors"] == []
