"""Rate-limit policies: the shipped defaults, env overrides, and one fixture per bad config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protection.policy import (
    KeyKind,
    Policy,
    PolicyError,
    PolicySet,
    RoutePattern,
    Tier,
    aliases,
    load_policies,
    override_names,
)
from runtime.config import ConfigError, Env, load_or_exit

CONFIGS = Path(__file__).parent / "ratelimit_configs"

MINIMAL = """
[[policy]]
name = "p"
routes = ["GET /api/x"]
tiers = [{ name = "ip", key = "ip", rate = 5, period = "1s" }]
"""


def load(**environ: str) -> PolicySet:
    return load_policies(Env(environ))


def load_text(tmp_path: Path, text: str, **environ: str) -> PolicySet:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    return load_policies(Env(environ), path)


def problems_of(**environ: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load(**environ)
    return list(caught.value.problems)


def tier(**fields: object) -> Tier:
    defaults: dict[str, object] = {
        "name": "t",
        "key": KeyKind.IP,
        "rate": 5,
        "period_seconds": 1.0,
        "burst": 5,
    }
    return Tier(**(defaults | fields))  # type: ignore[arg-type]


# --- the shipped file --------------------------------------------------------

#: DESIGN.md "Rate limits and idempotency", in file order:
#: (policy, routes, fail_open, [(tier, key, rate, period_seconds, burst, field)]).
DESIGN_DEFAULTS = [
    (
        "mining",
        ["POST /api/mining/click"],
        False,
        [
            ("global", KeyKind.GLOBAL, 12000, 1, 24000, None),
            ("user", KeyKind.USER, 5, 1, 10, None),
            ("ip", KeyKind.IP, 20, 1, 40, None),
        ],
    ),
    (
        "register",
        ["POST /api/auth/register"],
        True,
        [
            ("ip", KeyKind.IP, 5, 3600, 5, None),
            ("wallet", KeyKind.WALLET, 10, 86400, 10, "walletAddress"),
        ],
    ),
    ("auth", ["POST /api/auth/*"], True, [("ip", KeyKind.IP, 50, 900, 50, None)]),
    ("profile", ["PATCH /api/auth/me"], True, [("user", KeyKind.USER, 20, 300, 20, None)]),
    (
        "withdrawals",
        ["POST /api/wallet/withdrawals"],
        False,
        [("user", KeyKind.USER, 10, 3600, 10, None), ("ip", KeyKind.IP, 30, 3600, 30, None)],
    ),
    (
        "boosts",
        ["POST /api/boosts/{boostId}/purchase"],
        False,
        [("user", KeyKind.USER, 30, 60.0, 10, None)],
    ),
    ("webhooks", ["POST /api/webhooks/*"], True, [("ip", KeyKind.IP, 600, 60, 600, None)]),
    # Not in DESIGN.md: the admin DB statistics are dear (several commands per database).
    ("admin_db", ["* /api/admin/db/*"], True, [("user", KeyKind.USER, 60, 60, 60, None)]),
    ("general", ["* /api/*"], True, [("ip", KeyKind.IP, 5000, 900, 5000, None)]),
]


def test_default_file_has_the_design_numbers() -> None:
    shipped = [
        (
            policy.name,
            [str(route) for route in policy.routes],
            policy.fail_open,
            [(t.name, t.key, t.rate, t.period_seconds, t.burst, t.field) for t in policy.tiers],
        )
        for policy in load().policies
    ]
    assert shipped == DESIGN_DEFAULTS
    assert not any(policy.shadow for policy in load().policies)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/openapi.json"),
        ("GET", "/"),
    ],
)
def test_the_document_and_unknown_paths_are_not_limited(method: str, path: str) -> None:
    assert load().for_route(method, path) is None


def test_health_is_limited_like_any_route() -> None:
    """An unlimited health route was a free probe of every backend for anyone."""
    policy = load().for_route("GET", "/api/health")
    assert policy is not None
    assert policy.name == "general"


def test_the_token_policy_is_charged_per_ip_before_verification() -> None:
    token = load().token
    assert token is not None
    assert [(t.name, t.key, t.rate, t.period_seconds) for t in token.tiers] == [
        ("ip", KeyKind.IP, 600, 60.0)
    ]
    assert token.fail_open
    assert load(TOKEN_RATE_LIMIT_IP_RATE="30").token.tiers[0].rate == 30  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "path", "policy"),
    [
        ("POST", "/api/mining/click", "mining"),
        ("POST", "/api/auth/register", "register"),  # before the auth prefix
        ("POST", "/api/auth/otp/request", "auth"),
        ("PATCH", "/api/auth/me", "profile"),
        ("GET", "/api/auth/me", "general"),
        ("POST", "/api/wallet/withdrawals", "withdrawals"),
        ("POST", "/api/webhooks/{provider}", "webhooks"),
        ("DELETE", "/api/quests/{id}", "general"),
    ],
)
def test_first_matching_policy_wins(method: str, path: str, policy: str) -> None:
    found = load().for_route(method, path)
    assert found is not None
    assert found.name == policy


def test_first_match_follows_file_order(tmp_path: Path) -> None:
    catch_all = MINIMAL.replace('"GET /api/x"', '"* /api/*"')
    text = catch_all + MINIMAL.replace('name = "p"', 'name = "q"')
    found = load_text(tmp_path, text).for_route("GET", "/api/x")
    assert found is not None
    assert found.name == "p"


def test_unmatched_patterns_name_the_policy() -> None:
    app_routes = [("GET", "/api/health"), ("POST", "/api/auth/register"), ("GET", "/metrics")]
    unmatched = load().unmatched_patterns(app_routes)
    assert "mining: POST /api/mining/click" in unmatched
    assert "unlimited: GET /api/openapi.json" in unmatched
    assert "register: POST /api/auth/register" not in unmatched
    assert "general: * /api/*" not in unmatched
    assert "unlimited: GET /metrics" not in unmatched


def test_rate_limits_can_be_turned_off() -> None:
    off = load(RATE_LIMITS_ENABLED="false", RATE_LIMIT_POLICY_FILE="/nonexistent.toml")
    assert off == PolicySet()
    assert off.for_route("POST", "/api/mining/click") is None


def test_the_file_can_be_swapped_by_env(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(MINIMAL)
    assert [p.name for p in load(RATE_LIMIT_POLICY_FILE=str(path)).policies] == ["p"]
    with pytest.raises(PolicyError) as caught:
        load(RATE_LIMIT_POLICY_FILE=str(tmp_path / "missing.toml"))
    assert caught.value.variable == "RATE_LIMIT_POLICY_FILE"


def test_burst_defaults_to_rate_and_may_be_below_it(tmp_path: Path) -> None:
    text = """
[[policy]]
name = "p"
routes = ["GET /api/x"]
tiers = [
  { name = "ip", key = "ip", rate = 5, period = "1s" },
  { name = "user", key = "user", rate = 5, period = 2.5, burst = 1 },
]
"""
    ip, user = load_text(tmp_path, text).policies[0].tiers
    assert (ip.rate, ip.burst, ip.period_seconds) == (5, 5, 1.0)
    assert (user.rate, user.burst, user.period_seconds) == (5, 1, 2.5)


def test_header_names_are_lower_cased(tmp_path: Path) -> None:
    text = MINIMAL.replace('key = "ip"', 'key = "header", field = "X-Api-Key"')
    assert load_text(tmp_path, text).policies[0].tiers[0].field == "x-api-key"


# --- env overrides -------------------------------------------------------------


def test_env_overrides_apply() -> None:
    policies = load(
        MINING_RATE_LIMIT_USER_RATE="10",
        MINING_RATE_LIMIT_GLOBAL_BURST="50000",
        MINING_RATE_LIMIT_SHADOW="true",
        AUTH_RATE_LIMIT_IP_PERIOD="10m",
        AUTH_RATE_LIMIT_IP_RATE="70",
        GENERAL_RATE_LIMIT_FAIL="closed",
        PROFILE_RATE_LIMIT_USER_RATE="",  # blank is unset, as in .env.example
    )
    by_name = {policy.name: policy for policy in policies.policies}
    mining, auth = by_name["mining"], by_name["auth"]
    global_, user, _ = mining.tiers
    assert (user.rate, user.burst) == (10, 10), "an explicit burst stays"
    assert (global_.rate, global_.burst) == (12000, 50000)
    assert mining.shadow is True
    assert (auth.tiers[0].rate, auth.tiers[0].burst, auth.tiers[0].period_seconds) == (70, 70, 600)
    assert by_name["general"].fail_open is False
    assert by_name["profile"].tiers[0].rate == 20


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("MINING_RATE_LIMIT_USER_RATE", "ten", "must be an integer, got 'ten'"),
        ("MINING_RATE_LIMIT_USER_RATE", "0", "must be at least 1, got 0"),
        ("MINING_RATE_LIMIT_GLOBAL_BURST", "-5", "must be at least 1, got -5"),
        ("AUTH_RATE_LIMIT_IP_PERIOD", "soon", "must be a duration like"),
        ("AUTH_RATE_LIMIT_IP_PERIOD", "0s", "must be a duration > 0"),
        ("MINING_RATE_LIMIT_SHADOW", "maybe", "must be true or false, got 'maybe'"),
        ("MINING_RATE_LIMIT_FAIL", "sometimes", "must be one of ['closed', 'open']"),
    ],
)
def test_bad_override_values_name_the_variable(variable: str, value: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load(**{variable: value})
    assert caught.value.variable == variable
    assert caught.value.problem.startswith(problem)


def test_unknown_override_names_are_errors_with_a_suggestion() -> None:
    (problem,) = problems_of(MINING_RATE_LIMIT_USER_RAT="10")
    assert problem == (
        "MINING_RATE_LIMIT_USER_RAT: is not a rate-limit override; "
        "did you mean MINING_RATE_LIMIT_USER_RATE?"
    )
    assert problems_of(MINING_RATE_LIMIT_WALLET_RATE="3")[0].startswith(
        "MINING_RATE_LIMIT_WALLET_RATE: is not a rate-limit override"
    )


def test_unrelated_variables_are_left_alone() -> None:
    load(MINING_QUEUE_MAX_DEPTH="100", RATE_LIMIT_POLICY_FILE="", REDIS_URL="redis://x")


def test_override_names_cover_every_policy_and_tier() -> None:
    defaults = load()
    names = override_names(defaults)
    everything = (*defaults.policies, defaults.token)
    assert len(names) == sum(2 + 3 * len(policy.tiers) for policy in everything if policy)
    assert len(set(names)) == len(names)
    for name in (
        "MINING_RATE_LIMIT_USER_RATE",
        "MINING_RATE_LIMIT_GLOBAL_BURST",
        "AUTH_RATE_LIMIT_IP_PERIOD",
        "REGISTER_RATE_LIMIT_WALLET_PERIOD",
        "WITHDRAWALS_RATE_LIMIT_FAIL",
        "GENERAL_RATE_LIMIT_SHADOW",
    ):
        assert name in names
    # Every listed name is accepted by the loader.
    load(**dict.fromkeys((n for n in names if n.endswith(("_RATE", "_BURST"))), "7"))


# --- bad configs: one fixture each ---------------------------------------------

BAD_CONFIGS = [
    ("syntax_error", "", "invalid TOML: Unclosed array (at line 4, column 1)"),
    ("unknown_top_level_key", "version", "unknown key; expected one of policy, unlimited, token"),
    ("token_keyed_by_user", "token.caller.key", "the token policy runs before the caller is known"),
    ("token_with_routes", "token.routes", "unknown key; expected one of tiers, shadow, fail"),
    ("policy_named_token", "policy[0].name", "'token' is the [token] table's name"),
    ("no_policies", "policy", "at least one [[policy]] table is required"),
    ("policy_without_name", "policy[0].name", "is required"),
    ("duplicate_policy_name", "policy[1].name", "duplicate name 'p'"),
    ("bad_policy_name", "policy[0].name", "must match [a-z][a-z0-9_]*, got 'Mining-Clicks'"),
    ("unknown_policy_key", "p.limit", "unknown key; expected one of name, routes, tiers"),
    ("no_routes", "p.routes", 'needs at least one "METHOD /path" pattern'),
    ("route_missing_method", "p.routes", "must be \"METHOD /path\", got '/api/x'"),
    ("route_bad_method", "p.routes", "unknown method 'FETCH' in 'FETCH /api/x'"),
    ("route_path_not_absolute", "p.routes", "path must start with / and may end in *"),
    ("route_star_inside_path", "p.routes", "path must start with / and may end in *"),
    ("bad_unlimited_pattern", "unlimited", "path must start with /"),
    ("no_tiers", "p.tiers", "needs at least one tier"),
    ("fail_not_open_or_closed", "p.fail", 'must be "open" or "closed", got \'sometimes\''),
    ("shadow_not_bool", "p.shadow", "must be true or false, got 'yes'"),
    ("tier_without_name", "p.tiers[0].name", "is required"),
    ("duplicate_tier_name", "p.tiers[1].name", "duplicate name 'ip'"),
    ("unknown_key_kind", "p.ip.key", "got 'cookie'; must be one of global, user, ip, wallet"),
    ("missing_key_kind", "p.ip.key", "is required; must be one of global, user"),
    ("rate_below_one", "p.ip.rate", "must be an integer >= 1, got 0"),
    ("rate_not_integer", "p.ip.rate", "must be an integer >= 1, got 5.5"),
    ("rate_missing", "p.ip.rate", "is required"),
    ("burst_below_one", "p.ip.burst", "must be an integer >= 1, got 0"),
    ("bad_period_string", "p.ip.period", 'must be a duration like "1s", "15m"'),
    ("period_not_positive", "p.ip.period", "must be a duration > 0"),
    ("period_missing", "p.ip.period", "is required"),
    ("header_without_field", "p.client.field", "a header key needs a header name, got None"),
    ("body_without_field", "p.email.field", "a body key needs a lowerCamelCase JSON body field"),
    ("body_field_not_camel_case", "p.email.field", "a body key needs a lowerCamelCase JSON"),
    ("field_on_ip_key", "p.ip.field", "only header, body and wallet keys take a field"),
    ("unknown_tier_key", "p.ip.window", "unknown key; expected one of name, key, rate, period"),
]


@pytest.mark.parametrize(
    ("fixture", "where", "problem"), BAD_CONFIGS, ids=[row[0] for row in BAD_CONFIGS]
)
def test_a_bad_config_is_refused_with_one_clear_error(
    fixture: str, where: str, problem: str
) -> None:
    path = CONFIGS / f"{fixture}.toml"
    with pytest.raises(PolicyError) as caught:
        load_policies(Env({}), path)
    error = caught.value
    assert isinstance(error, ConfigError)
    location = f"{path}:{where}" if where else str(path)
    assert error.variable == location
    assert error.problem.startswith(problem), error.problem
    assert str(error) == f"{location}: {error.problem}"
    assert "\n" not in str(error)


def test_every_fixture_is_tested() -> None:
    tested = {row[0] for row in BAD_CONFIGS} | {"several_mistakes"}
    assert {path.stem for path in CONFIGS.glob("*.toml")} == tested


def test_several_mistakes_are_all_reported_one_per_line() -> None:
    path = CONFIGS / "several_mistakes.toml"
    with pytest.raises(PolicyError) as caught:
        load_policies(Env({"P_RATE_LIMIT_IP_RATE": "zero"}), path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}: 6 mistakes in the rate-limit policies"
    assert [line.split(": ")[0].removeprefix(f"{path}:") for line in lines[1:]] == [
        "p.routes",
        "p.ip.rate",
        "p.user.burst",
        "p.user.period",
        "p.fail",
        "policy[1].name",
    ]


def test_load_or_exit_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = CONFIGS / "rate_below_one.toml"
    with pytest.raises(SystemExit) as exited:
        load_or_exit(lambda: load_policies(Env({}), path))
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"configuration error: {path}:p.ip.rate: must be an integer >= 1, got 0\n"
    )


# --- tiers and patterns ----------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "period", "burst", "described"),
    [
        (5, 1.0, 10, "5;w=1;burst=10"),
        (12000, 1.0, 24000, "12000;w=1;burst=24000"),
        (5000, 900.0, 5000, "5000;w=900"),
        (10, 86400.0, 10, "10;w=86400"),
        (3, 0.5, 3, "3;w=1"),
        (20, 1.0, 5, "20;w=1;burst=5"),
    ],
)
def test_describe(rate: int, period: float, burst: int, described: str) -> None:
    assert tier(rate=rate, period_seconds=period, burst=burst).describe() == described


@pytest.mark.parametrize(
    ("rate", "period", "interval_us"),
    [
        (5, 1.0, 200_000),
        (12000, 1.0, 83),
        (5000, 900.0, 180_000),
        (3, 1.0, 333_333),
        (10, 86400.0, 8_640_000_000),
        (10**9, 1.0, 1),
        (10**7, 1.0, 1),  # 0.1 µs rounds down to 0, clamped to 1
    ],
)
def test_emission_interval(rate: int, period: float, interval_us: int) -> None:
    assert tier(rate=rate, period_seconds=period).emission_interval_us == interval_us


@pytest.mark.parametrize(
    ("pattern", "method", "path", "matches"),
    [
        ("POST /api/quests/{id}/complete", "POST", "/api/quests/{quest_id}/complete", True),
        ("POST /api/quests/{id}/complete", "POST", "/api/quests/{id:str}/complete", True),
        ("POST /api/quests/{id}/complete", "GET", "/api/quests/{id}/complete", False),
        ("POST /api/auth/*", "POST", "/api/auth/register", True),
        ("POST /api/auth/*", "POST", "/api/authz", False),
        ("* /api/*", "DELETE", "/api/x", True),
        ("* /api/*", "GET", "/api", False),
        ("GET /api/health", "HEAD", "/api/health", True),
        ("HEAD /api/health", "GET", "/api/health", False),
        ("GET /api/health", "GET", "/api/health/", False),
    ],
)
def test_route_pattern_matches(pattern: str, method: str, path: str, matches: bool) -> None:
    assert RoutePattern.parse(pattern).matches(method, path) is matches


segment = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=8),
    st.from_regex(r"\{[a-z_]{1,6}(:[a-z]{3})?\}", fullmatch=True),
)
paths = st.lists(segment, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])


@given(path=paths, other=paths, method=methods, cut=st.integers(min_value=1, max_value=40))
def test_route_pattern_matching_is_consistent(path: str, other: str, method: str, cut: int) -> None:
    exact = RoutePattern.parse(f"{method} {path}")
    assert exact.matches(method, path)
    assert RoutePattern.parse(f"* {path}").matches(method, path)
    assert exact.matches(method, other) == (
        RoutePattern.parse(f"{method} {other}").matches(method, path)
    ), "exact matching is symmetric"
    if "{" not in path + other:
        assert exact.matches(method, other) == (path == other)
        prefix = RoutePattern.parse(f"{method} {path[:cut]}*")
        assert prefix.matches(method, other) == other.startswith(path[:cut])
    wrong = "PUT" if method != "PUT" else "POST"
    assert not exact.matches(wrong, path)


def test_policy_set_without_unlimited_routes() -> None:
    only = Policy("only", (RoutePattern("*", "/*"),), (tier(),))
    assert PolicySet((only,)).for_route("GET", "/api/health") is only


# --- the seed app's names, accepted as aliases ----------------------------------


def tiers_of(policies: PolicySet, policy: str) -> dict[str, tuple[int, float, int]]:
    (found,) = [p for p in policies.policies if p.name == policy]
    return {t.name: (t.rate, t.period_seconds, t.burst) for t in found.tiers}


def test_the_seed_apps_mining_names_set_the_mining_tiers() -> None:
    """The seed's .env.example, as an operator moving from it sets it."""
    policies = load(
        MINING_RATE_LIMIT_GLOBAL="12001",
        MINING_RATE_LIMIT_GLOBAL_BURST="24001",
        MINING_RATE_LIMIT_PER_USER="6",
        MINING_RATE_LIMIT_USER_BURST="11",
        MINING_RATE_LIMIT_PER_IP="21",
        MINING_RATE_LIMIT_IP_BURST="41",
    )
    assert tiers_of(policies, "mining") == {
        "global": (12001, 1.0, 24001),
        "user": (6, 1.0, 11),
        "ip": (21, 1.0, 41),
    }


@pytest.mark.parametrize(
    ("alias", "tier", "rate"),
    [
        ("MINING_RATE_LIMIT_GLOBAL", "global", 7),
        ("MINING_RATE_LIMIT_PER_USER", "user", 7),
        ("MINING_RATE_LIMIT_USER", "user", 7),
        ("MINING_RATE_LIMIT_PER_IP", "ip", 7),
        ("MINING_RATE_LIMIT_IP", "ip", 7),
    ],
)
def test_each_seed_rate_name_is_an_alias_of_ours(alias: str, tier: str, rate: int) -> None:
    assert tiers_of(load(**{alias: str(rate)}), "mining")[tier][0] == rate


@pytest.mark.parametrize(
    ("alias", "tier"),
    [
        ("MINING_RATE_LIMIT_PER_USER_BURST", "user"),
        ("MINING_RATE_LIMIT_PER_IP_BURST", "ip"),
        ("MINING_RATE_LIMIT_PER_GLOBAL_BURST", "global"),
    ],
)
def test_each_seed_burst_name_is_an_alias_of_ours(alias: str, tier: str) -> None:
    assert tiers_of(load(**{alias: "99"}), "mining")[tier][2] == 99


@pytest.mark.parametrize(
    ("alias", "tier", "period"),
    [
        ("RL_REGISTER_PER_HOUR", "ip", 3600.0),
        ("RL_REGISTER_PER_DAY", "ip", 86_400.0),
        ("RL_REGISTER_IP_PER_MINUTE", "ip", 60.0),
        ("RL_REGISTER_WALLET_PER_DAY", "wallet", 86_400.0),
        ("RL_AUTH_PER_MINUTE", "ip", 60.0),
        ("RL_PROFILE_USER_PER_SECOND", "user", 1.0),
    ],
)
def test_rl_per_period_names_set_a_tiers_rate_and_period(
    alias: str, tier: str, period: float
) -> None:
    policy = alias.removeprefix("RL_").split("_")[0].lower()
    rate, seconds, _ = tiers_of(load(**{alias: "3"}), policy)[tier]
    assert (rate, seconds) == (3, period)


def test_our_period_wins_over_the_one_an_rl_name_implies() -> None:
    rate, seconds, _ = tiers_of(
        load(RL_REGISTER_PER_HOUR="3", REGISTER_RATE_LIMIT_IP_PERIOD="2h"), "register"
    )["ip"]
    assert (rate, seconds) == (3, 7200.0)


def test_an_alias_and_our_name_disagreeing_is_a_mistake_naming_both() -> None:
    (problem,) = problems_of(MINING_RATE_LIMIT_PER_USER="7", MINING_RATE_LIMIT_USER_RATE="8")
    assert "MINING_RATE_LIMIT_PER_USER" in problem
    assert "MINING_RATE_LIMIT_USER_RATE" in problem
    # the same value twice is not
    assert (
        tiers_of(load(MINING_RATE_LIMIT_PER_USER="7", MINING_RATE_LIMIT_USER_RATE="7"), "mining")[
            "user"
        ][0]
        == 7
    )


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        (
            "MINING_RATE_LIMIT_PER_USR",
            "did you mean MINING_RATE_LIMIT_PER_USER (an alias of MINING_RATE_LIMIT_USER_RATE)?",
        ),
        (
            "RL_REGISTR_PER_HOUR",
            "did you mean RL_REGISTER_PER_HOUR (an alias of REGISTER_RATE_LIMIT_IP_RATE)?",
        ),
        ("MINING_RATE_LIMIT_USER_RAT", "did you mean MINING_RATE_LIMIT_USER_RATE?"),
    ],
)
def test_a_name_matching_nothing_is_refused_with_the_nearest_name(name: str, hint: str) -> None:
    (problem,) = problems_of(**{name: "5"})
    assert problem == f"{name}: is not a rate-limit override; {hint}"


def test_every_alias_names_one_of_our_variables() -> None:
    defaults = load()
    ours = set(override_names(defaults))
    found = aliases(defaults)
    assert {alias.target for alias in found} <= ours
    assert len({alias.name for alias in found}) == len(found)
    assert not {alias.name for alias in found} & ours
