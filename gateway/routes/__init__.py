"""The route table: every operation the gateway serves, one row each.

Add a service's routes by adding its module's ``ENDPOINTS`` here; the
Starlette routes and the OpenAPI document both follow.
"""

from gateway.routes import (
    admin_db,
    auth,
    boosts,
    mining,
    mining_boards,
    quests,
    referrals,
    rewards,
    system,
    wallet,
)
from gateway.routing import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = (
    *auth.ENDPOINTS,
    *mining.ENDPOINTS,
    *mining_boards.ENDPOINTS,
    *boosts.ENDPOINTS,
    *wallet.ENDPOINTS,
    *quests.ENDPOINTS,
    *rewards.ENDPOINTS,
    *referrals.ENDPOINTS,
    *system.ENDPOINTS,
    *admin_db.ENDPOINTS,
)

__all__ = ["ENDPOINTS"]
