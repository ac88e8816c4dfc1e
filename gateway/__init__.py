"""The HTTP JSON gateway: the one door web and mobile clients knock on.

It verifies access tokens locally, turns JSON bodies into protobuf requests,
calls the gRPC services and answers JSON (RFC 9457 problem details on error).
Routes are rows of one declarative table (:mod:`gateway.routing`) that drives
both the Starlette routes and the OpenAPI document.
"""

from gateway.app import create_app
from gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]
