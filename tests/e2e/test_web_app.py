"""The web app in a real browser against the real stack.

``make web`` builds ``web/dist``, which the gateway serves at ``/app/``; a
stack in dev mode (no SMTP, ``ENABLE_DEV_OTP_FALLBACK=true``, as ``make dev``
runs) answers it. ``web/e2e/browser.mjs`` drives Debian's chromium with
playwright-core through a new player's first minutes (invited, mining, the
daily reward, boosts, quests, referrals, every leaderboard, the wallet) and
prints what the page showed; a second scenario opens the app as a Telegram
Mini App, logged in by its initData alone. The screenshot goes to a temporary folder, or to
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
from tests.e2e.test_telegram_and_referrals import init_data, telegram_login, tg_user

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


def new_inviter(stack: Stack) -> tuple[str, dict[str, str]]:
    """A player (a Telegram account, made through the API) whose referral
    code invites others: its code and bearer header."""
    with stack.client() as client:
        login = telegram_login(client, init_data(tg_user()))
        bearer = {"Authorization": f"Bearer {login['tokens']['accessToken']}"}
        me = client.get("/api/referrals/me", headers=bearer)
    assert me.status_code == 200, me.text
    code: str = me.json()["referralCode"]
    return code, bearer


def invited_by(stack: Stack, bearer: dict[str, str]) -> int:
    with stack.client() as client:
        me = client.get("/api/referrals/me", headers=bearer)
    assert me.status_code == 200, me.text
    invited: int = me.json()["invited"]
    return invited


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


def test_an_invited_player_mines_claims_the_daily_reward_and_sees_boosts_referrals_and_boards(
    web_stack: Stack, tmp_path: Path
) -> None:
    username = f"web{uuid.uuid4().hex[:8]}"
    wallet = new_wallet()
    quest_name = "Say hello on X"
    new_quest(web_stack, quest_name)
    inviter_code, inviter = new_inviter(web_stack)
    screenshot = Path(os.environ.get("WEB_APP_SCREENSHOT") or tmp_path / "web-app.png")

    seen = run_browser(
        web_stack,
        SCREENSHOT=str(screenshot),
        EMAIL=f"{username}@example.com",
        WALLET=wallet,
        USERNAME=username,
        QUEST_NAME=quest_name,
        TAPS="5",
        REF=inviter_code,
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
    # every board, the player's own row marked on it once the worker credited
    boards = seen["boards"]
    assert "40 XP" in boards["xpAround"]["own"]
    assert "(you)" in boards["xpAround"]["own"]
    for board in ("dayTop", "weekTop", "dayAround"):
        own = boards[board]["own"]
        assert f"{username} (you) 0.00500000 MQC mined" in own, (board, own)
        assert boards[board]["ownRank"].startswith("You: #"), (board, boards[board])
    # the daily reward: claimed, the streak grown, the next claim announced
    assert (seen["streakBefore"], seen["streakAfter"]) == (0, 1)
    assert seen["dailyReward"].endswith("MQC")
    assert seen["dailyNext"].startswith("Next claim")
    # boosts with their prices; one the player cannot afford is refused, clearly
    assert len(seen["boosts"]) == 3
    assert all("level 0/" in row and "Buy for" in row for row in seen["boosts"])
    assert seen["boostRefusal"].endswith("[insufficient_funds]"), seen["history"]
    # the invite link filled in the sign-up form; the player has a code of their own
    assert seen["referralField"] == inviter_code
    assert len(seen["referralCode"]) == 8
    assert seen["referralCode"] != inviter_code
    assert seen["inviteLink"].endswith(f"/app/?ref={seen['referralCode']}")
    assert invited_by(web_stack, inviter) == 1
    assert any("credit" in row and "MQC" in row for row in seen["history"])
    assert seen["depositReference"].startswith("MQ")
    # 2 MQC asked; 0.005 mined and the first day's reward (0.1 by default)
    assert seen["withdrawal"].endswith("[insufficient_funds]")
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


@pytest.mark.parametrize("via", ["window", "hash"])
def test_inside_telegram_the_mini_app_logs_in_with_its_init_data_and_no_code(
    web_stack: Stack, via: str
) -> None:
    """initData as Telegram gives a Mini App (window.Telegram.WebApp.initData,
    or the URL's #tgWebAppData when Telegram's script is not on the page),
    signed for the stack's TELEGRAM_BOT_TOKEN: the page logs in without asking
    for a code, and its start_param (a referral code) links the inviter."""
    inviter_code, inviter = new_inviter(web_stack)
    username = f"tg{uuid.uuid4().hex[:8]}"

    data = init_data(tg_user(username), start_param=inviter_code)

    seen = run_browser(web_stack, INIT_DATA=data, TELEGRAM_VIA=via)

    assert seen["player"] == username
    assert seen["loginShown"] == 0
    assert len(seen["referralCode"]) == 8
    assert seen["referralCode"] != inviter_code
    assert seen["error"] == ""
    assert seen["consoleErrors"] == []
    assert invited_by(web_stack, inviter) == 1
