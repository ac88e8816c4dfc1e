"""runtime.access: a complete table per service, naming only identities the PKI issues."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import ServiceDescriptor

from minequest.auth.v1 import auth_pb2
from minequest.mining.v1 import mining_pb2
from minequest.quests.v1 import quests_pb2
from minequest.wallet.v1 import wallet_pb2
from runtime.access import ACCESS, DENY, GATEWAY, MINING_WORKER, QUESTS, rule_for
from tools import pki

SERVICES: list[ServiceDescriptor] = [
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    wallet_pb2.DESCRIPTOR.services_by_name["WalletService"],
    mining_pb2.DESCRIPTOR.services_by_name["MiningService"],
    quests_pb2.DESCRIPTOR.services_by_name["QuestsService"],
]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_rpc_of_the_service_has_a_rule_and_nothing_else_does(
    service: ServiceDescriptor,
) -> None:
    table = ACCESS[service.full_name]
    assert sorted(table) == sorted(method.name for method in service.methods)


def test_there_is_a_table_for_every_service_and_no_other() -> None:
    assert sorted(ACCESS) == sorted(service.full_name for service in SERVICES)


def test_tables_name_only_identities_the_pki_issues() -> None:
    callers = {
        caller for table in ACCESS.values() for rule in table.values() for caller in rule.callers
    }
    assert callers <= set(pki.IDENTITIES)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_admin_rules_are_the_gateways_and_name_real_fields(service: ServiceDescriptor) -> None:
    for method in service.methods:
        rule = ACCESS[service.full_name][method.name]
        assert rule.callers, f"{method.name}: nobody may call it"
        if rule.admin:
            assert rule.callers == {GATEWAY}, method.name
        if rule.principal_field is not None:
            assert rule.admin, method.name
            assert rule.principal_field in method.input_type.fields_by_name, method.name


def test_only_the_click_worker_and_quests_may_mint_coins() -> None:
    assert rule_for(ACCESS, "minequest.wallet.v1.WalletService", "Credit").callers == {
        MINING_WORKER,
        QUESTS,
    }


def test_admin_decisions_need_the_gateway_an_admin_and_the_deciding_admin() -> None:
    wallet = "minequest.wallet.v1.WalletService"
    decide = rule_for(ACCESS, wallet, "DecideWithdrawal")
    assert decide.callers == frozenset({GATEWAY})
    assert (decide.admin, decide.principal_field) == (True, "admin_id")
    for method in ("ListWithdrawalsByState", "ListUnmatchedDeposits"):
        assert rule_for(ACCESS, wallet, method).admin
    quests = "minequest.quests.v1.QuestsService"
    assert rule_for(ACCESS, quests, "UpsertQuest").admin
    assert rule_for(ACCESS, quests, "ArchiveQuest").admin


def test_an_unlisted_method_or_service_is_refused_to_everyone() -> None:
    assert rule_for(ACCESS, "minequest.wallet.v1.WalletService", "MintFreely") is DENY
    assert rule_for(ACCESS, "minequest.other.v1.Other", "Anything") is DENY
    assert DENY.callers == frozenset()
