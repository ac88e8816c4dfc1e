""".env.example, compose.yaml and deploy/ agree with each other and with the code.

The validators themselves (docker compose config, promtool) run in
``tools/check_compose.sh``; the last test runs it and is skipped only when
neither validator is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.protection.policy import load_policies, override_names
from gateway.settings import GatewaySettings
from runtime.config import Env
from services.auth.settings import AuthSettings
from services.mining.settings import MiningSettings, WorkerSettings
from services.quests.settings import QuestsSettings
from services.wallet.settings import WalletSettings
from tools import pki
from tools.dev import dev_plan

ROOT = Path(__file__).resolve().parents[2]

#: Every variable the processes read (DESIGN.md and the issue), by owner.
SHARED = [
    "MONGODB_URI",
    "REDIS_URL",
    "LOG_LEVEL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "SHUTDOWN_GRACE_SECONDS",
    "PYTHON_GC_THRESHOLD",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "MINEQUEST_DATA_DIR",
    "MONGODB_EMBEDDED_NICE",
    "MINEQUEST_ENV",
    "GRPC_TLS_CA_FILE",
    "GRPC_TLS_CERT_FILE",
    "GRPC_TLS_KEY_FILE",
    "GRPC_REFLECTION",
]
AUTH = [
    "AUTH_GRPC_HOST",
    "AUTH_GRPC_PORT",
    "AUTH_METRICS_PORT",
    "AUTH_MONGODB_DATABASE",
    "AUTH_JWT_PRIVATE_KEY_FILE",
    "AUTH_JWT_GENERATE_KEY",
    "AUTH_ACCESS_TOKEN_TTL_SECONDS",
    "AUTH_REFRESH_TOKEN_TTL_SECONDS",
    "AUTH_OTP_TTL_SECONDS",
    "AUTH_OTP_MAX_ATTEMPTS",
    "AUTH_OTP_RESEND_COOLDOWN_SECONDS",
    "ENABLE_DEV_OTP_FALLBACK",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASS",
    "SMTP_FROM",
    "SMTP_TIMEOUT_SECONDS",
    "SMTP_CA_FILE",
    "SMTP_SECURITY",
    "AUTH_JWT_VERIFY_KEY_FILES",
    "AUTH_SESSION_MAX_LIFETIME_SECONDS",
    "AUTH_OTP_MAILS_PER_HOUR",
    "AUTH_OTP_FREE_FAILURES",
    "AUTH_OTP_BACKOFF_BASE_SECONDS",
    "AUTH_OTP_BACKOFF_MAX_SECONDS",
    "AUTH_OTP_DAILY_FAILURE_BUDGET",
    "AUTH_OTP_FAILURE_WINDOW_SECONDS",
    "AUTH_LOGIN_LINK_URL",
    "AUTH_MAIL_CONCURRENCY",
    "AUTH_MAIL_QUEUE_SIZE",
    "SIWE_DOMAIN",
    "SIWE_URI",
    "SIWE_CHAIN_ID",
    "SIWE_STATEMENT",
    "SIWE_CHALLENGE_TTL_SECONDS",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_AUTH_MAX_AGE_SECONDS",
]
WALLET = [
    "WALLET_GRPC_HOST",
    "WALLET_GRPC_PORT",
    "WALLET_METRICS_PORT",
    "WALLET_MONGODB_DATABASE",
    "WALLET_CURRENCIES",
    "WALLET_MINED_CURRENCY",
    "WALLET_DEPOSIT_WALLETS",
    "WALLET_WITHDRAWAL_CHAINS",
    "WALLET_WITHDRAWAL_LIMITS",
    "WALLET_CREDIT_MAX_BATCH",
    "WALLET_METRICS_REFRESH_SECONDS",
]
QUESTS = [
    "QUESTS_GRPC_HOST",
    "QUESTS_GRPC_PORT",
    "QUESTS_METRICS_PORT",
    "QUESTS_MONGODB_DATABASE",
    "QUESTS_DAILY_RESET_HOUR",
    "QUESTS_LEADERBOARD_CACHE_SECONDS",
    "QUESTS_SWEEP_INTERVAL_SECONDS",
    "QUESTS_SWEEP_MIN_AGE_SECONDS",
    "QUESTS_COMPLETE_MAX_ATTEMPTS",
    "DAILY_REWARDS",
    "DAILY_REWARD_CURRENCY",
    "DAILY_REWARD_DECIMALS",
    "DAILY_REWARD_UTC_OFFSET_MINUTES",
]
MINING = [
    "MINING_GRPC_HOST",
    "MINING_GRPC_PORT",
    "MINING_METRICS_PORT",
    "MINING_MONGODB_DATABASE",
    "MINING_QUEUE_MAX_DEPTH",
    "MINING_ENERGY_MAX",
    "MINING_ENERGY_REGEN_PER_SECOND",
    "MINING_ENERGY_PER_TAP",
    "MINING_MAX_TAPS_PER_SECOND",
    "MINING_TAP_BURST_SECONDS",
    "MINING_DAILY_TAP_CAP",
    "MINING_MAX_TAPS_PER_REQUEST",
    "MINING_REWARD_CURRENCY",
    "MINING_REWARD_DECIMALS",
    "MINING_REWARD_PER_TAP",
    "MINING_STATUS_TTL_SECONDS",
    "MINING_THROTTLED_STATUS_TTL_SECONDS",
    "MINING_REDIS_TIMEOUT_MS",
    "MINING_WORKER_CONCURRENCY",
    "MINING_WORKER_BATCH_SIZE",
    "MINING_WORKER_BLOCK_MS",
    "MINING_WORKER_LINGER_MS",
    "MINING_WORKER_LINGER_FROM",
    "MINING_WORKER_NICE",
    "MINING_WORKER_CLAIM_IDLE_MS",
    "MINING_WORKER_MAX_ATTEMPTS",
    "MINING_DEAD_LETTER_MAX",
    "MINING_WORKER_METRICS_PORT",
    "MINING_WORKER_PROCESSES",
    "MINING_WORKER_NAME",
    "MINING_OUTBOX_SWEEP_SECONDS",
    "MINING_OUTBOX_SWEEP_AGE_SECONDS",
    # bot signals and the mined-coin leaderboards (issue 16)
    "MINING_BOT_MIN_SAMPLES",
    "MINING_BOT_INTERVAL_STDDEV_MS",
    "MINING_BOT_INTERVAL_CV",
    "MINING_BOT_SESSION_GAP_SECONDS",
    "MINING_BOT_SUSTAINED_SECONDS",
    "MINING_BOT_NEAR_RATE",
    "MINING_BOT_CAP_RUN",
    "MINING_BOT_SHADOW_MODE",
    "MINING_LEADERBOARD_UTC_OFFSET_MINUTES",
    "MINING_LEADERBOARD_CACHE_SECONDS",
    "REFERRAL_MINING_SHARE_PERCENT",
    "REFERRAL_SECOND_LEVEL_SHARE_PERCENT",
    "REFERRAL_JOIN_BONUS",
    "MINING_BOOSTS_FILE",
    "MINING_BOOST_SWEEP_SECONDS",
    "MINING_BOOST_SWEEP_AGE_SECONDS",
]
GATEWAY = [
    "GATEWAY_HOST",
    "GATEWAY_PORT",
    "GATEWAY_WORKERS",
    "GATEWAY_CLICK_BATCH_MAX",
    "GATEWAY_CLICK_BATCH_WINDOW_MS",
    "AUTH_SERVICE_ADDR",
    "CORS_ALLOW_ORIGINS",
    "MAX_BODY_BYTES",
    "GRPC_TIMEOUT_SECONDS",
    "JWKS_MIN_REFRESH_SECONDS",
    "JWKS_REFRESH_SECONDS",
    "TOKEN_CACHE_SIZE",
    "WALLET_SERVICE_ADDR",
    "QUESTS_SERVICE_ADDR",
    "MINING_SERVICE_ADDR",
    "DEPOSIT_WEBHOOK_SECRET",
    "DEPOSIT_WEBHOOK_TOLERANCE_SECONDS",
    "GATEWAY_METRICS_HOST",
    "GATEWAY_METRICS_PORT",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_COUNT",
    "GATEWAY_WEB_DIR",
]
PROTECTION = [
    "RATE_LIMITS_ENABLED",
    "RATE_LIMIT_POLICY_FILE",
    "TOKEN_RATE_LIMIT_IP_RATE",
    "MINING_RATE_LIMIT_USER_RATE",
    "MINING_RATE_LIMIT_USER_BURST",
    "MINING_RATE_LIMIT_IP_RATE",
    "MINING_RATE_LIMIT_GLOBAL_RATE",
    "TRUSTED_PROXIES",
    "GUARD_REDIS_TIMEOUT_MS",
    "IDEMPOTENCY_LEASE_SECONDS",
    "IDEMPOTENCY_RETENTION_SECONDS",
]
COMPOSE_ONLY = [
    "COMPOSE_PROJECT_NAME",
    "GRAFANA_ADMIN_PASSWORD",
    "REDIS_PASSWORD",
    "MONGO_ROOT_USER",
    "MONGO_ROOT_PASSWORD",
]

#: What the issue fixes as each variable's default ("" = unset).
DEFAULTS = {
    "MONGODB_URI": "",
    "REDIS_URL": "",
    "LOG_LEVEL": "INFO",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    "SHUTDOWN_GRACE_SECONDS": "10",
    "JWT_ISSUER": "minequest",
    "JWT_AUDIENCE": "minequest-api",
    "MINEQUEST_DATA_DIR": ".data",
    "MINEQUEST_ENV": "development",
    "GRPC_TLS_CA_FILE": "",
    "GRPC_TLS_CERT_FILE": "",
    "GRPC_TLS_KEY_FILE": "",
    "GRPC_REFLECTION": "false",
    "REDIS_PASSWORD": "",
    "MONGO_ROOT_PASSWORD": "",
    "MINING_QUEUE_MAX_DEPTH": "100000",
    "MINING_WORKER_CONCURRENCY": "1",
    "AUTH_GRPC_HOST": "127.0.0.1",
    "AUTH_GRPC_PORT": "50051",
    "AUTH_METRICS_PORT": "9101",
    "AUTH_MONGODB_DATABASE": "minequest_auth",
    "AUTH_ACCESS_TOKEN_TTL_SECONDS": "900",
    "AUTH_REFRESH_TOKEN_TTL_SECONDS": "2592000",
    "AUTH_OTP_TTL_SECONDS": "300",
    "AUTH_OTP_MAX_ATTEMPTS": "5",
    "AUTH_OTP_RESEND_COOLDOWN_SECONDS": "60",
    "ENABLE_DEV_OTP_FALLBACK": "",
    "AUTH_JWT_GENERATE_KEY": "",
    "SMTP_HOST": "",
    "SMTP_PORT": "587",
    "SMTP_USER": "",
    "SMTP_PASS": "",
    "SMTP_FROM": "no-reply@minequest.local",
    "SMTP_TIMEOUT_SECONDS": "10",
    "GATEWAY_HOST": "127.0.0.1",
    "GATEWAY_PORT": "8080",
    "GATEWAY_WORKERS": "",
    "GATEWAY_CLICK_BATCH_MAX": "100",
    "GATEWAY_CLICK_BATCH_WINDOW_MS": "2",
    "AUTH_SERVICE_ADDR": "127.0.0.1:50051",
    "CORS_ALLOW_ORIGINS": "",
    "MAX_BODY_BYTES": "1048576",
    "GRPC_TIMEOUT_SECONDS": "5",
    "JWKS_MIN_REFRESH_SECONDS": "30",
    "JWKS_REFRESH_SECONDS": "15",
    "GATEWAY_METRICS_HOST": "127.0.0.1",
    "GATEWAY_METRICS_PORT": "9100",
    "MAX_HEADER_BYTES": "16384",
    "MAX_HEADER_COUNT": "100",
    "TOKEN_CACHE_SIZE": "100000",
    "WALLET_GRPC_HOST": "127.0.0.1",
    "WALLET_GRPC_PORT": "50053",
    "WALLET_METRICS_PORT": "9103",
    "WALLET_MONGODB_DATABASE": "minequest_wallet",
    "WALLET_CURRENCIES": "MQC:8,USDT:6",
    "WALLET_MINED_CURRENCY": "MQC",
    "WALLET_DEPOSIT_WALLETS": "",
    "WALLET_WITHDRAWAL_CHAINS": "MQC:ethereum,USDT:ethereum,USDT:tron",
    "WALLET_WITHDRAWAL_LIMITS": "MQC:10:1000000:1000000,USDT:10:10000:20000",
    "WALLET_CREDIT_MAX_BATCH": "1000",
    "WALLET_METRICS_REFRESH_SECONDS": "15",
    "WALLET_SERVICE_ADDR": "127.0.0.1:50053",
    "QUESTS_GRPC_HOST": "127.0.0.1",
    "QUESTS_GRPC_PORT": "50054",
    "QUESTS_METRICS_PORT": "9104",
    "QUESTS_MONGODB_DATABASE": "minequest_quests",
    "QUESTS_DAILY_RESET_HOUR": "0",
    "QUESTS_LEADERBOARD_CACHE_SECONDS": "10",
    "QUESTS_SWEEP_INTERVAL_SECONDS": "30",
    "QUESTS_SWEEP_MIN_AGE_SECONDS": "10",
    "QUESTS_COMPLETE_MAX_ATTEMPTS": "8",
    "QUESTS_SERVICE_ADDR": "127.0.0.1:50054",
    "DEPOSIT_WEBHOOK_SECRET": "",
    "DEPOSIT_WEBHOOK_TOLERANCE_SECONDS": "300",
    "RATE_LIMITS_ENABLED": "true",
    "GUARD_REDIS_TIMEOUT_MS": "50",
    "IDEMPOTENCY_LEASE_SECONDS": "30",
    "IDEMPOTENCY_RETENTION_SECONDS": "86400",
}


def env_example() -> list[tuple[str, str, str]]:
    """(name, value, comment just above) for each assignment in .env.example."""
    entries = []
    comment: list[str] = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("# "))
        elif "=" in line:
            name, _, value = line.partition("=")
            entries.append((name, value, " ".join(comment)))
            comment = []
        else:
            comment = []
    return entries


def test_every_variable_the_code_reads_by_name_is_in_env_example() -> None:
    """Catches a new setting added to the code but not to .env.example."""
    pattern = re.compile(
        r"(?:env\.(?:string|optional|required|integer|number|boolean|csv|choice|service_addr)\("
        r"|\(env, )\s*\"([A-Z0-9_]+)\""
    )
    read = {
        name
        for folder in ("runtime", "services", "gateway", "tools")
        for path in (ROOT / folder).rglob("*.py")
        for name in pattern.findall(path.read_text())
    }
    assert read, "the pattern found nothing: the check would prove nothing"
    documented = {name for name, _, _ in env_example()}
    assert read - documented == set()


def test_env_example_lists_every_variable_once_with_a_comment() -> None:
    entries = env_example()
    names = [name for name, _, _ in entries]
    assert sorted(names) == sorted(
        SHARED + AUTH + WALLET + MINING + QUESTS + GATEWAY + PROTECTION + COMPOSE_ONLY
    )
    assert len(names) == len(set(names))
    assert all(comment.strip() for _, _, comment in entries), "a variable has no comment"


def test_env_example_holds_the_documented_defaults_and_no_secret() -> None:
    values = {name: value for name, value, _ in env_example()}
    assert {name: values[name] for name in DEFAULTS} == DEFAULTS
    assert values["SMTP_PASS"] == ""
    assert values["AUTH_JWT_PRIVATE_KEY_FILE"] == ""
    assert values["DEPOSIT_WEBHOOK_SECRET"] == ""
    assert values["REDIS_PASSWORD"] == values["MONGO_ROOT_PASSWORD"] == ""


def test_env_example_values_load_in_every_process() -> None:
    values = {name: value for name, value, _ in env_example()}
    plan = dev_plan(Env(values))
    assert [spec.name for spec in plan.processes] == [
        "auth",
        "wallet",
        "mining",
        "quests",
        "mining-worker",
        "gateway",
    ]
    assert plan.notes, "no SMTP in the example, so make dev warns about the OTP fallback"
    GatewaySettings.from_env(Env(values))
    running = values | {
        "AUTH_JWT_PRIVATE_KEY_FILE": "/tmp/key.pem",  # noqa: S108
        "MONGODB_URI": "mongodb://127.0.0.1:1",
        "REDIS_URL": "redis://127.0.0.1:1",
    }
    settings = AuthSettings.from_env(Env(running))
    assert settings.dev_otp_fallback is False
    wallet = WalletSettings.from_env(Env(running))
    assert wallet.deposit_wallets == ()
    assert set(wallet.withdrawal_limits) == set(wallet.withdrawal_chains) == {"MQC", "USDT"}
    mining = MiningSettings.from_env(Env(running))
    assert (mining.queue_max_depth, mining.rules.energy_max) == (100_000, 1000)
    assert mining.reward.units_per_tap == 100_000
    worker = WorkerSettings.from_env(Env(running))
    assert (worker.concurrency, worker.batch_size) == (1, 10_000)
    assert worker.consumer  # hostname-pid when MINING_WORKER_NAME is empty
    quests = QuestsSettings.from_env(Env(running))
    assert (quests.daily_reset_hour, quests.leaderboard_cache_seconds) == (0, 10)


def test_rate_limit_overrides_in_env_example_exist() -> None:
    """A documented override that names no policy/tier would be refused at start."""
    documented = {name for name, _, _ in env_example() if "_RATE_LIMIT_" in name}
    assert documented
    assert documented <= set(override_names(load_policies(Env({}))))


def test_compose_only_passes_documented_variables() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", compose))
    assert referenced <= {name for name, _, _ in env_example()}
    assert "SMTP_HOST" in referenced


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    return services


#: The Minequest processes in compose and the identity (certificate) each runs as.
IDENTITIES = {
    "gateway": "gateway",
    "auth": "auth",
    "wallet": "wallet",
    "mining": "mining",
    "mining-worker": "mining-worker",
    "quests": "quests",
}


def test_compose_runs_every_process_in_production_with_its_own_certificate() -> None:
    services = compose_services()
    assert set(IDENTITIES.values()) == set(pki.IDENTITIES)
    pki_mounts = services["pki"]["volumes"]
    assert services["pki"]["command"] == ["python", "-m", "tools.pki", "--dir", "/pki"]
    assert sorted(pki_mounts) == sorted(
        f"pki-{name}:/pki/{name}" for name in ("ca", *pki.IDENTITIES)
    )
    for name, identity in IDENTITIES.items():
        service = services[name]
        env = service["environment"]
        assert env["MINEQUEST_ENV"] == "production", name
        assert env["GRPC_TLS_CERT_FILE"] == "/run/minequest/tls/cert.pem", name
        assert f"pki-{identity}:/run/minequest/tls:ro" in service["volumes"], name
        assert not any(v.startswith("pki-ca:") for v in service["volumes"]), name
        assert service["depends_on"]["pki"] == {"condition": "service_completed_successfully"}
        assert "insecure_channel" not in str(service.get("healthcheck")), name


def test_compose_publishes_no_grpc_or_store_port() -> None:
    published = {name: svc["ports"] for name, svc in compose_services().items() if "ports" in svc}
    assert published == {
        "gateway": ["8080:8080"],
        "prometheus": ["127.0.0.1:9090:9090"],
        "grafana": ["127.0.0.1:3000:3000"],
        "alertmanager": ["127.0.0.1:9093:9093"],
    }


def test_compose_stores_require_passwords_the_services_carry() -> None:
    services = compose_services()
    env = services["wallet"]["environment"]
    assert env["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    assert env["MONGODB_URI"].startswith(
        "mongodb://${MONGO_ROOT_USER:-minequest}:${MONGO_ROOT_PASSWORD:?"
    )
    assert "authSource=admin" in env["MONGODB_URI"]
    assert "replicaSet=rs0" in env["MONGODB_URI"]
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    mongo = services["mongo"]
    assert "--keyFile" in mongo["command"]
    assert "--replSet" in mongo["command"]
    assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGO_ROOT_PASSWORD:?")
    assert mongo["depends_on"]["mongo-keyfile"] == {"condition": "service_completed_successfully"}
    assert "rs.initiate" in mongo["healthcheck"]["test"][1]
    compose = (ROOT / "compose.yaml").read_text()
    for key in ("REDIS_PASSWORD", "MONGO_ROOT_PASSWORD"):
        uses = [
            line
            for line in compose.splitlines()
            if key in line and not line.lstrip().startswith("#")
        ]
        assert uses
        assert all(f"${{{key}:?" in line for line in uses), (
            f"{key} must be required, never defaulted"
        )


def test_compose_has_no_literal_secrets() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    for key in ("SMTP_PASS", "GF_SECURITY_ADMIN_PASSWORD", "DEPOSIT_WEBHOOK_SECRET"):
        [line] = [line for line in compose.splitlines() if f"{key}:" in line]
        assert "${" in line, f"{key} must come from the environment"


def test_dashboard_and_alerts_use_the_design_metric_names() -> None:
    dashboard = (ROOT / "deploy/grafana/dashboards/minequest.json").read_text()
    alerts = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    for name in (
        "http_request_duration_seconds",
        "http_requests_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds",
        "ratelimit_decisions_total",
        "idempotency_requests_total",
        "redis_latency_ms",
    ):
        assert name in dashboard
    for alert in (
        "GatewayHigh5xxRatio",
        "GatewayHighP99Latency",
        "AuthDown",
        "GatewayProtectionUnavailable",
    ):
        assert f"alert: {alert}" in alerts


def have_validator() -> bool:
    if shutil.which("docker-compose") or shutil.which("promtool"):
        return True
    if shutil.which("docker") is None:
        return False
    plugin = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return plugin.returncode == 0


@pytest.mark.skipif(
    not have_validator(),
    reason="no compose validator or promtool installed "
    "(apt-get install --no-install-recommends docker-compose prometheus)",
)
def test_check_compose_script_passes() -> None:
    result = subprocess.run(
        [str(ROOT / "tools/check_compose.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check_compose: OK" in result.stdout


def test_every_data_file_the_code_reads_ships_in_the_package() -> None:
    """The image installs the package (not the tree): a Lua script or policy
    file missing from package-data would crash the service at start there."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    shipped = {
        path
        for package, patterns in declared.items()
        for pattern in patterns
        for path in (ROOT / package.replace(".", "/")).glob(pattern)
    }
    data = {
        path
        for folder in ("runtime", "services", "gateway")
        for suffix in ("*.lua", "*.toml", "*.json")
        for path in (ROOT / folder).rglob(suffix)
    }
    assert data, "no data files found: the check would prove nothing"
    assert sorted(map(str, data - shipped)) == []
