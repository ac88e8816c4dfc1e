"""The route table: every operation the gateway serves, one row each.

Add a service's routes by adding its module's ``ENDPOINTS`` here; the
Starlette routes and the OpenAPI document both follow.
"""

from gateway.routes import admin_db, auth, mining, quests, system, wallet
from gateway.routing import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = (
    *auth.ENDPOINTS,
    *mining.ENDPOINTS,
    *wallet.ENDPOINTS,
    *quests.ENDPOINTS,
    *system.ENDPOINTS,
    *admin_db.ENDPOINTS,
)

__all__ = ["ENDPOINTS"]
