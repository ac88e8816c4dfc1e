from __future__ import annotations

import pytest

from runtime.config import ConfigError, Env, ServiceSettings


def test_typed_reads_and_defaults():
    env = Env({"A": " 42 ", "B": "yes", "C": "x, y,,z", "D": ""})
    assert env.integer("A", 1) == 42
    assert env.boolean("B", False) is True
    assert env.csv("C", []) == ["x", "y", "z"]
    assert env.string("D", "default") == "default", "blank counts as unset"
    assert env.optional("MISSING") is None


@pytest.mark.parametrize(
    ("environ", "call", "message"),
    [
        ({"N": "ten"}, lambda e: e.integer("N", 1), "N: must be an integer, got 'ten'"),
        ({"N": "0"}, lambda e: e.integer("N", 1, minimum=1), "N: must be at least 1, got 0"),
        ({"F": "fast"}, lambda e: e.number("F", 1.0), "F: must be a number, got 'fast'"),
        ({"B": "maybe"}, lambda e: e.boolean("B", False), "B: must be true or false, got 'maybe'"),
        ({}, lambda e: e.required("R"), "R: is required"),
        ({"L": "LOUD"}, lambda e: e.choice("L", "INFO", {"INFO"}), "L: must be one of ['INFO']"),
    ],
)
def test_bad_values_name_the_variable(environ, call, message):
    with pytest.raises(ConfigError) as caught:
        call(Env(environ))
    assert str(caught.value).startswith(message)


def test_service_settings_require_store_urls():
    with pytest.raises(ConfigError) as caught:
        ServiceSettings.from_env("auth", Env({}))
    assert caught.value.variable == "MONGODB_URI"
    settings = ServiceSettings.from_env(
        "auth",
        Env({"MONGODB_URI": "mongodb://x", "AUTH_METRICS_PORT": "0"}),
        needs_redis=False,
    )
    assert settings.grpc_port == 50051
    assert settings.metrics_port is None, "port 0 disables the metrics server"
    assert settings.mongodb_database == "minequest_auth"
