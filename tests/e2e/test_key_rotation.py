"""Rotating the JWT signing key, as an operator would, through the real stack.

1. Publish the new key (``AUTH_JWT_VERIFY_KEY_FILES``) and wait for the
   gateways' next re-read of the JWK set (``JWKS_REFRESH_SECONDS``).
2. Sign with it, keeping the old key published while tokens it signed live.
3. Withdraw the old key: its tokens stop at the gateway's next re-read — even
   those it had in its verified-token cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.auth.keys import load_signing_key
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_auth_flow import login, problem
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rotating(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    yield from start_stack(request, tmp_path_factory, "rotation", {"JWKS_REFRESH_SECONDS": "1"})


def me(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


def eventually(check: object, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the gateway never caught up with the JWK set"
        time.sleep(0.2)


def test_a_withdrawn_key_stops_its_tokens_even_cached_ones(
    rotating: Stack, mailbox: Mailbox
) -> None:
    old_key = rotating.key_file
    new_key = rotating.work_dir / "jwt-next.pem"
    load_signing_key(new_key, generate=True)
    with rotating.client() as client:

        def kids() -> int:
            # Each gateway process redials a restarted auth on its own (within
            # 2 s); until then that process answers 503.
            answer = client.get("/api/auth/jwks")
            return len(answer.json()["keys"]) if answer.status_code == 200 else 0

        old_token = login(client, mailbox).access_token
        assert me(client, old_token).status_code == 200  # verified and cached

        # 1: the new key is published, the old one still signs
        rotating.env["AUTH_JWT_VERIFY_KEY_FILES"] = str(new_key)
        rotating.restart("auth")
        eventually(lambda: kids() == 2)
        time.sleep(2.5)  # the gateway re-reads the set every second here

        # 2: the new key signs; the old one stays published
        rotating.env["AUTH_JWT_PRIVATE_KEY_FILE"] = str(new_key)
        rotating.env["AUTH_JWT_VERIFY_KEY_FILES"] = str(old_key)
        rotating.restart("auth")
        eventually(lambda: kids() == 2)
        new_token = login(client, mailbox).access_token
        assert me(client, new_token).status_code == 200  # its kid was known already
        assert me(client, old_token).status_code == 200

        # 3: the old key is withdrawn
        rotating.env["AUTH_JWT_VERIFY_KEY_FILES"] = ""
        rotating.restart("auth")
        eventually(lambda: kids() == 1)
        eventually(lambda: me(client, old_token).status_code == 401)
        problem(me(client, old_token), 401, "invalid_token")
        assert me(client, new_token).status_code == 200
