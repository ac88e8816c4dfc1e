"""Internal calls authenticated by mutual TLS and authorised per method, on the
real wallet service over TCP, with certificates from tools/pki.py (no mocks).

Who may call what is runtime.access; these tests hold the wallet to it: the
click worker and quests may credit, the gateway may not; only the gateway,
on behalf of an admin, may decide a withdrawal; peers without a certificate
from our CA never get a connection; a client refuses a server whose
certificate names another identity."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2 as pb
from minequest.wallet.v1 import wallet_pb2_grpc
from runtime import context
from runtime.errors import RpcErrorInfo, decode_rpc_error
from runtime.grpc_client import channel
from services.wallet.server import wallet_lifespan
from tests.integration.conftest import (
    companion_auth,
    credit_request,
    reflected,
    served_address,
    tls_of,
    wallet_settings,
)
from tools import pki

pytestmark = pytest.mark.integration

WALLET_SERVICE = "minequest.wallet.v1.WalletService"
ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA issuing the same names: nothing it signed may get in."""
    directory = tmp_path_factory.mktemp("other-pki")
    pki.ensure(directory, ["gateway", "wallet", "auth"])
    return directory


@asynccontextmanager
async def served_wallet(
    mongodb_uri: str, database: str, pki_dir: Path, identity: str = "wallet", **extra: str
) -> AsyncIterator[str]:
    """The real wallet service with mutual TLS as ``identity``; its address.
    Beside it the real auth service (as ``auth``), which the wallet asks whose
    wallet a withdrawal goes to: that call is under the access tables too."""
    auth_identity = pki.identity_files(pki_dir, "auth").env()
    async with companion_auth(mongodb_uri, database, **auth_identity) as auth_addr:
        settings = wallet_settings(
            mongodb_uri,
            database,
            AUTH_SERVICE_ADDR=auth_addr,
            **pki.identity_files(pki_dir, identity).env(),
            **extra,
        )
        assert settings.service.tls is not None
        async with served_address(
            wallet_lifespan(settings), settings.service.tls, reflection=settings.service.reflection
        ) as address:
            yield address


@pytest.fixture
async def wallet(mongodb_uri: str, database_name: str, pki_dir: Path) -> AsyncIterator[str]:
    async with served_wallet(mongodb_uri, database_name, pki_dir) as address:
        yield address


@asynccontextmanager
async def stub_as(
    address: str, identity: str, pki_dir: Path
) -> AsyncIterator[wallet_pb2_grpc.WalletServiceAsyncStub]:
    """A wallet stub whose calls come from ``identity``."""
    async with channel(address, "wallet", tls_of(pki_dir, identity)) as wallet_channel:
        yield wallet_pb2_grpc.WalletServiceStub(wallet_channel)


@contextmanager
def on_behalf_of(user_id: str | None, role: str | None) -> Iterator[None]:
    """What the gateway's auth middleware binds for an authenticated request."""
    user_token, role_token = context.user_id.set(user_id), context.role.set(role)
    try:
        yield
    finally:
        context.role.reset(role_token)
        context.user_id.reset(user_token)


async def refused(call: Any) -> RpcErrorInfo:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return decode_rpc_error(caught.value)


def denied(method: str, caller: str, reason: str) -> float:
    labels = {"grpc_service": WALLET_SERVICE, "grpc_method": method, "caller": caller}
    return (
        REGISTRY.get_sample_value("grpc_server_access_denied_total", labels | {"reason": reason})
        or 0.0
    )


@pytest.mark.parametrize("identity", ["mining-worker", "quests"])
async def test_the_click_worker_and_quests_may_credit(
    wallet: str, pki_dir: Path, identity: str
) -> None:
    user = uuid.uuid4().hex
    async with stub_as(wallet, identity, pki_dir) as stub:
        reply = await stub.Credit(credit_request(user))
    assert len(reply.results) == 1
    async with stub_as(wallet, "gateway", pki_dir) as gateway:
        balance = await gateway.GetBalance(pb.GetBalanceRequest(user_id=user))
    assert any(b.currency == "MQC" and b.available_units > 0 for b in balance.balances)


async def test_the_gateway_may_not_credit(wallet: str, pki_dir: Path) -> None:
    before = denied("Credit", "gateway", "caller_not_allowed")
    async with stub_as(wallet, "gateway", pki_dir) as stub:
        with on_behalf_of("someone", "admin"):  # no end user makes it allowed
            info = await refused(stub.Credit(credit_request(uuid.uuid4().hex)))
    assert info.code == grpc.StatusCode.PERMISSION_DENIED
    assert info.reason == "caller_not_allowed"
    assert denied("Credit", "gateway", "caller_not_allowed") == before + 1


async def test_a_service_may_call_only_its_own_methods(wallet: str, pki_dir: Path) -> None:
    async with stub_as(wallet, "mining-worker", pki_dir) as stub:
        info = await refused(stub.GetBalance(pb.GetBalanceRequest(user_id="u")))
    assert (info.code, info.reason) == (grpc.StatusCode.PERMISSION_DENIED, "caller_not_allowed")


async def health_of(address: str, credentials: grpc.ChannelCredentials) -> Any:
    options = [("grpc.ssl_target_name_override", "wallet")]
    async with grpc.aio.secure_channel(address, credentials, options=options) as raw:
        return await health_pb2_grpc.HealthStub(raw).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )


async def test_health_answers_any_verified_peer(wallet: str, pki_dir: Path) -> None:
    for identity in pki.IDENTITIES:
        worker = tls_of(pki_dir, identity)
        credentials = grpc.ssl_channel_credentials(worker.ca_pem, worker.key_pem, worker.cert_pem)
        answer = await health_of(wallet, credentials)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, identity


async def test_a_client_without_a_certificate_cannot_connect(wallet: str, pki_dir: Path) -> None:
    trusting = grpc.ssl_channel_credentials(root_certificates=tls_of(pki_dir, "gateway").ca_pem)
    info = await refused(health_of(wallet, trusting))
    assert info.code == grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.insecure_channel(wallet) as plaintext:
        stub = health_pb2_grpc.HealthStub(plaintext)
        info = await refused(stub.Check(health_pb2.HealthCheckRequest(), timeout=5))
    assert info.code == grpc.StatusCode.UNAVAILABLE


async def test_a_client_certificate_from_another_ca_cannot_connect(
    wallet: str, pki_dir: Path, other_ca: Path
) -> None:
    # It trusts our CA (so the server's certificate is fine), but its own
    # "gateway" certificate comes from another CA: the server hangs up.
    forged = tls_of(other_ca, "gateway")
    credentials = grpc.ssl_channel_credentials(
        tls_of(pki_dir, "gateway").ca_pem, forged.key_pem, forged.cert_pem
    )
    info = await refused(health_of(wallet, credentials))
    assert info.code == grpc.StatusCode.UNAVAILABLE


async def test_a_server_whose_certificate_names_another_identity_is_refused(
    mongodb_uri: str, database_name: str, pki_dir: Path
) -> None:
    async with (
        served_wallet(mongodb_uri, database_name, pki_dir, identity="quests") as address,
        stub_as(address, "mining-worker", pki_dir) as stub,
    ):
        info = await refused(stub.Credit(credit_request(uuid.uuid4().hex), timeout=5))
    assert info.code == grpc.StatusCode.UNAVAILABLE


async def test_a_server_from_another_ca_is_refused(
    mongodb_uri: str, database_name: str, pki_dir: Path, other_ca: Path
) -> None:
    async with (
        served_wallet(mongodb_uri, database_name, other_ca) as address,
        stub_as(address, "gateway", pki_dir) as stub,
    ):
        info = await refused(stub.GetBalance(pb.GetBalanceRequest(user_id="u"), timeout=5))
    assert info.code == grpc.StatusCode.UNAVAILABLE


async def pending_withdrawal(address: str, pki_dir: Path, user: str) -> str:
    async with stub_as(address, "quests", pki_dir) as quests:
        await quests.Credit(credit_request(user, "50"))
    async with stub_as(address, "gateway", pki_dir) as gateway:
        with on_behalf_of(user, "user"):
            reply = await gateway.CreateWithdrawal(
                pb.CreateWithdrawalRequest(
                    user_id=user,
                    amount=common_pb2.Money(currency="MQC", amount="10"),
                    chain="ethereum",
                    address=ADDRESS,
                    idempotency_key=uuid.uuid4().hex,
                )
            )
    return reply.withdrawal.id


def decision(withdrawal_id: str, admin_id: str) -> pb.DecideWithdrawalRequest:
    return pb.DecideWithdrawalRequest(
        withdrawal_id=withdrawal_id, decision=pb.DECISION_APPROVE, admin_id=admin_id
    )


async def test_only_the_gateway_for_an_admin_may_decide_withdrawals(
    wallet: str, pki_dir: Path
) -> None:
    withdrawal = await pending_withdrawal(wallet, pki_dir, uuid.uuid4().hex)
    async with stub_as(wallet, "gateway", pki_dir) as gateway:
        info = await refused(gateway.DecideWithdrawal(decision(withdrawal, "root")))
        assert (info.code, info.reason) == (grpc.StatusCode.PERMISSION_DENIED, "admin_required")
        with on_behalf_of("mallory", "user"):
            info = await refused(gateway.DecideWithdrawal(decision(withdrawal, "mallory")))
        assert info.reason == "admin_required"
        with on_behalf_of("root", "admin"):
            info = await refused(gateway.DecideWithdrawal(decision(withdrawal, "someone-else")))
            assert info.reason == "principal_mismatch"
            listed = await gateway.ListWithdrawalsByState(
                pb.ListWithdrawalsByStateRequest(state=pb.WITHDRAWAL_STATE_PENDING)
            )
            assert withdrawal in {w.id for w in listed.withdrawals}
            reply = await gateway.DecideWithdrawal(decision(withdrawal, "root"))
    assert reply.withdrawal.state == pb.WITHDRAWAL_STATE_COMPLETED


async def test_other_services_cannot_decide_withdrawals_even_claiming_an_admin(
    wallet: str, pki_dir: Path
) -> None:
    withdrawal = await pending_withdrawal(wallet, pki_dir, uuid.uuid4().hex)
    for identity in ("quests", "mining-worker", "auth", "mining"):
        async with stub_as(wallet, identity, pki_dir) as stub:
            with on_behalf_of("root", "admin"):
                info = await refused(stub.DecideWithdrawal(decision(withdrawal, "root")))
                listing = await refused(
                    stub.ListUnmatchedDeposits(pb.ListUnmatchedDepositsRequest())
                )
        assert (info.code, info.reason) == (grpc.StatusCode.PERMISSION_DENIED, "caller_not_allowed")
        assert listing.reason == "caller_not_allowed", identity


async def services_listed(address: str, pki_dir: Path) -> set[str]:
    async with channel(address, "wallet", tls_of(pki_dir, "gateway")) as raw:
        return await reflected(raw)


async def test_reflection_is_off_by_default(wallet: str, pki_dir: Path) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await services_listed(wallet, pki_dir)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_is_on_with_grpc_reflection_true(
    mongodb_uri: str, database_name: str, pki_dir: Path
) -> None:
    async with served_wallet(
        mongodb_uri, database_name, pki_dir, GRPC_REFLECTION="true"
    ) as address:
        assert WALLET_SERVICE in await services_listed(address, pki_dir)


async def healthcheck(address: str, environ: dict[str, str], *args: str) -> tuple[int, str]:
    """``python -m runtime.healthcheck`` (compose's gRPC healthchecks) as a process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runtime.healthcheck",
        address,
        *args,
        env={**os.environ, **environ},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_the_container_healthcheck_dials_with_the_services_own_certificate(
    wallet: str, pki_dir: Path, other_ca: Path
) -> None:
    own = pki.identity_files(pki_dir, "wallet").env()
    assert await healthcheck(wallet, own) == (0, "")
    code, err = await healthcheck(wallet, pki.identity_files(other_ca, "wallet").env())
    assert (code, "UNAVAILABLE" in err) == (1, True)
    code, err = await healthcheck(wallet, own, "--server", "quests")
    assert (code, "UNAVAILABLE" in err) == (1, True)
    code, _ = await healthcheck(wallet, {})  # plaintext against a mutual-TLS server
    assert code == 1
