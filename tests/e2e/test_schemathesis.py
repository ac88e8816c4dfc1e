"""The OpenAPI document says what the server does: schemathesis, every operation.

schemathesis reads ``/api/openapi.json`` from a running stack and sends what
the document allows (and, in its negative phase, what it forbids) to every
operation, with a signed-in user's token and then an admin's, and with every
check on: no 5xx, every status and content type documented, every answer
matching its schema, every schema-valid request accepted and every
schema-violating one refused. The run is bounded (examples per operation,
one seed) so it takes a minute or two, and is reproducible.

What schemathesis cannot know is said here, once: a request that reuses an
``Idempotency-Key`` with another body is answered the documented 422
(``idempotency_key_reused``), which is right for a valid request, so that
status is an accepted answer on the operations that take a key, and only
there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.refusals import KEY_REUSED_STATUS
from services.wallet.settings import (
    DEFAULT_CURRENCIES,
    DEFAULT_WITHDRAWAL_CHAINS,
    DEFAULT_WITHDRAWAL_LIMITS,
)
from tests.e2e.conftest import ROOT, Stack, start_stack
from tests.e2e.test_auth_flow import Session, login, make_admin
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e

ST = Path(sys.executable).parent / "st"
#: Cases per operation and phase; with a fixed seed a failure reproduces.
EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "10")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261201")
#: The run's ceiling (seconds): the runs take about a minute each here.
TIMEOUT = 400

#: The limits are the gateway's, not what is under test: schemathesis sends
#: hundreds of requests from one address and one user within seconds.
ROOMY = {
    "MINING_RATE_LIMIT_USER_RATE": "100000",
    "MINING_RATE_LIMIT_USER_BURST": "100000",
    "MINING_RATE_LIMIT_IP_RATE": "100000",
    "MINING_RATE_LIMIT_IP_BURST": "100000",
    "PROFILE_RATE_LIMIT_USER_RATE": "100000",
    "WITHDRAWALS_RATE_LIMIT_USER_RATE": "100000",
    "WITHDRAWALS_RATE_LIMIT_IP_RATE": "100000",
    "WEBHOOKS_RATE_LIMIT_IP_RATE": "100000",
    "TOKEN_RATE_LIMIT_IP_RATE": "100000",
}
#: What is under test is the contract, not latency: on a loaded machine the
#: guard's 50 ms Redis budget can lapse and the click route (fail closed)
#: answers 503 limits_unavailable, as designed.
CONTRACT_ENV = ROOMY | {"GUARD_REDIS_TIMEOUT_MS": "2000"}


#: What schemathesis accepts from a valid request by default.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
#: Documented refusals of a valid request that its state, not its shape,
#: decides: a reused Idempotency-Key (422) and FAILED_PRECONDITION (412:
#: insufficient funds, a quest's prerequisites), where the document lists them.
STATE_REFUSALS = (str(KEY_REUSED_STATUS), "412")


#: What this suite cannot do, as documented: it has no SMS sender, so a phone
#: login is the documented 503 ``delivery_unavailable``, not a server error.
DEPLOYMENT_REFUSALS = {"requestOtp": "503"}


def _quoted(statuses: list[str]) -> str:
    return ", ".join(f'"{status}"' for status in statuses)


def config(path: Path, document: dict[str, Any]) -> Path:
    """schemathesis.toml: per operation, the state refusals its document lists."""
    blocks = []
    for item in document["paths"].values():
        for operation in item.values():
            name, responses = operation["operationId"], operation["responses"]
            extra = [status for status in STATE_REFUSALS if status in responses]
            block = []
            if extra:
                block += [
                    "[operations.checks.positive_data_acceptance]",
                    f"expected-statuses = [{_quoted([*ACCEPTED, *extra])}]",
                ]
            unavailable = DEPLOYMENT_REFUSALS.get(name)
            if unavailable is not None and unavailable in responses:
                block += [
                    "[operations.checks.not_a_server_error]",
                    f'expected-statuses = ["2xx", "3xx", "4xx", "{unavailable}"]',
                ]
            if block:
                blocks.append(
                    "\n".join(["[[operations]]", f'include-operation-id = "{name}"', *block])
                )
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def contract_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    yield from start_stack(request, tmp_path_factory, "contract", CONTRACT_ENV)


def run(
    stack: Stack, session: Session, tmp_path: Path, *filters: str
) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    with httpx.Client(base_url=stack.base_url) as client:
        document = client.get("/api/openapi.json").json()
    command = [
        str(ST),
        "--no-color",
        "--config-file",
        str(config(tmp_path / "schemathesis.toml", document)),
        "run",
        f"{stack.base_url}/api/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "2",
        "--generation-database",
        "none",
        "--header",
        f"Authorization: Bearer {session.access_token}",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        *filters,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
        **deployment(stack),
        "SCHEMATHESIS_REFERRAL_CODE": session.user.get("referralCode", ""),
    }
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    (tmp_path / "output.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
    return done


def deployment(stack: Stack) -> dict[str, str]:
    """The stack's wallet rules, for the hooks (tests/e2e/schemathesis_hooks.py)."""
    places = stack.env.get("WALLET_CURRENCIES", DEFAULT_CURRENCIES)
    return {
        "SCHEMATHESIS_CURRENCY_PLACES": places,
        "SCHEMATHESIS_CURRENCIES": ",".join(item.split(":")[0] for item in places.split(",")),
        "SCHEMATHESIS_WITHDRAWAL_LIMITS": stack.env.get(
            "WALLET_WITHDRAWAL_LIMITS", DEFAULT_WITHDRAWAL_LIMITS
        ),
        "SCHEMATHESIS_WITHDRAWAL_CHAINS": stack.env.get(
            "WALLET_WITHDRAWAL_CHAINS", DEFAULT_WITHDRAWAL_CHAINS
        ),
    }


def operations_tested(done: subprocess.CompletedProcess[str]) -> int | None:
    """How many operations a run tested, from its summary."""
    found = re.search(r"^\s*Tested: (\d+)", done.stdout, re.MULTILINE)
    return int(found[1]) if found else None


@pytest.mark.skipif(not ST.exists() and shutil.which("st") is None, reason="schemathesis absent")
def test_every_operation_does_what_the_document_says(
    contract_stack: Stack, mailbox: Mailbox, tmp_path: Path
) -> None:
    admin = make_admin(contract_stack, mailbox)
    with contract_stack.client() as client:
        user = login(client, mailbox)
    runs = {
        "user": run(contract_stack, user, tmp_path / "user", "--exclude-tag", "admin"),
        "admin": run(contract_stack, admin, tmp_path / "admin", "--include-tag", "admin"),
    }
    failed = {who: done for who, done in runs.items() if done.returncode != 0}
    report = "\n\n".join(
        f"== {who}\n{done.stdout[-12000:]}{done.stderr[-2000:]}" for who, done in failed.items()
    )
    assert not failed, report
    with httpx.Client(base_url=contract_stack.base_url) as client:
        document = client.get("/api/openapi.json").json()
    # Every operation was run, by the caller it is for (schemathesis leaves out
    # the one that serves the document it read).
    operations = [
        op
        for path, item in document["paths"].items()
        for op in item.values()
        if path != "/api/openapi.json"
    ]
    admin_ops = sum("admin" in op["tags"] for op in operations)
    assert operations_tested(runs["user"]) == len(operations) - admin_ops
    assert operations_tested(runs["admin"]) == admin_ops
    with httpx.Client(base_url=contract_stack.base_url) as client:
        assert client.get("/api/health").status_code == 200
    assert "Traceback" not in contract_stack.log("gateway")
