"""GRPC_TLS_* and GRPC_REFLECTION: read once, checked at start, refused when wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from runtime.config import ConfigError, Env, ServiceSettings
from runtime.tls import load_tls, require_identity
from tools import pki

VARIABLES = ("GRPC_TLS_CA_FILE", "GRPC_TLS_CERT_FILE", "GRPC_TLS_KEY_FILE")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    pki.ensure(directory, ["wallet", "gateway"])
    return directory


def identity(pki_dir: Path, name: str) -> dict[str, str]:
    return pki.identity_files(pki_dir, name).env()


def refusal(environ: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_tls(Env(environ))
    return caught.value


def test_no_tls_variables_means_plaintext_outside_production() -> None:
    assert load_tls(Env({})) is None
    assert load_tls(Env({"MINEQUEST_ENV": "development", "GRPC_TLS_CA_FILE": " "})) is None


def test_production_refuses_to_start_without_tls() -> None:
    error = refusal({"MINEQUEST_ENV": "production"})
    assert error.variable == "GRPC_TLS_CA_FILE"
    assert "required when MINEQUEST_ENV=production" in error.problem


def test_production_starts_with_tls(pki_dir: Path) -> None:
    tls = load_tls(Env({"MINEQUEST_ENV": "production", **identity(pki_dir, "wallet")}))
    assert tls is not None
    assert tls.identity == "wallet"


def test_a_full_configuration_gives_the_identity_and_hides_the_key(pki_dir: Path) -> None:
    tls = load_tls(Env(identity(pki_dir, "gateway")))
    assert tls is not None
    assert tls.identity == "gateway"
    assert tls.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert "PRIVATE" not in repr(tls)
    assert tls.not_after > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)


@pytest.mark.parametrize("missing", VARIABLES)
def test_a_partial_configuration_names_the_missing_variable(pki_dir: Path, missing: str) -> None:
    environ = identity(pki_dir, "wallet")
    del environ[missing]
    error = refusal(environ)
    assert error.variable == missing
    assert "set all three GRPC_TLS_* or none" in error.problem


@pytest.mark.parametrize("variable", VARIABLES)
def test_an_unreadable_file_is_named(pki_dir: Path, tmp_path: Path, variable: str) -> None:
    environ = identity(pki_dir, "wallet") | {variable: str(tmp_path / "nope.pem")}
    error = refusal(environ)
    assert error.variable == variable
    assert "cannot read" in error.problem


@pytest.mark.parametrize("variable", VARIABLES)
def test_a_file_that_is_not_pem_is_named(pki_dir: Path, tmp_path: Path, variable: str) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    error = refusal(identity(pki_dir, "wallet") | {variable: str(garbage)})
    assert error.variable == variable


def test_another_certificates_key_is_refused(pki_dir: Path) -> None:
    environ = identity(pki_dir, "wallet") | {
        "GRPC_TLS_KEY_FILE": identity(pki_dir, "gateway")["GRPC_TLS_KEY_FILE"]
    }
    assert refusal(environ).variable == "GRPC_TLS_KEY_FILE"


def test_a_certificate_from_another_ca_is_refused(pki_dir: Path, tmp_path: Path) -> None:
    pki.ensure(tmp_path, ["wallet"])
    environ = identity(tmp_path, "wallet") | {
        "GRPC_TLS_CA_FILE": identity(pki_dir, "wallet")["GRPC_TLS_CA_FILE"]
    }
    error = refusal(environ)
    assert error.variable == "GRPC_TLS_CERT_FILE"
    assert "not issued by the CA" in error.problem


def test_an_expired_certificate_is_refused(pki_dir: Path) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=pki.LEAF_DAYS + 1)
    with pytest.raises(ConfigError) as caught:
        load_tls(Env(identity(pki_dir, "wallet")), now=later)
    assert caught.value.variable == "GRPC_TLS_CERT_FILE"
    assert "python -m tools.pki" in caught.value.problem


def test_a_process_refuses_another_identitys_certificate(pki_dir: Path) -> None:
    tls = load_tls(Env(identity(pki_dir, "gateway")))
    require_identity(tls, "gateway")
    require_identity(None, "wallet")
    with pytest.raises(ConfigError) as caught:
        require_identity(tls, "wallet")
    assert caught.value.variable == "GRPC_TLS_CERT_FILE"
    assert "'gateway'" in caught.value.problem


def service_env(**extra: str) -> Env:
    return Env({"MONGODB_URI": "mongodb://127.0.0.1:1", **extra})


def test_services_read_tls_and_reflection_once_with_their_settings(pki_dir: Path) -> None:
    plain = ServiceSettings.from_env("wallet", service_env(), needs_redis=False)
    assert (plain.tls, plain.reflection) == (None, False)
    secured = ServiceSettings.from_env(
        "wallet",
        service_env(GRPC_REFLECTION="true", **identity(pki_dir, "wallet")),
        needs_redis=False,
    )
    assert secured.tls is not None
    assert secured.tls.identity == "wallet"
    assert secured.reflection is True


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"GRPC_REFLECTION": "sometimes"}, "GRPC_REFLECTION"),
        ({"MINEQUEST_ENV": "production"}, "GRPC_TLS_CA_FILE"),
        ({"GRPC_TLS_CA_FILE": "/ca.pem"}, "GRPC_TLS_CERT_FILE"),
    ],
)
def test_service_settings_refuse_bad_security_settings(
    extra: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceSettings.from_env("wallet", service_env(**extra), needs_redis=False)
    assert caught.value.variable == variable


def test_the_gateway_reads_its_own_identity(pki_dir: Path) -> None:
    assert GatewaySettings.from_env(Env({})).grpc_tls is None
    settings = GatewaySettings.from_env(Env(identity(pki_dir, "gateway")))
    assert settings.grpc_tls is not None
    assert settings.grpc_tls.identity == "gateway"
    with pytest.raises(ConfigError) as caught:
        GatewaySettings.from_env(Env({"MINEQUEST_ENV": "production"}))
    assert caught.value.variable == "GRPC_TLS_CA_FILE"
