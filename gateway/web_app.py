"""The player's web app (``web/``, built by ``make web``) served at ``/app/``.

The build directory is ``GATEWAY_WEB_DIR`` (``web/dist`` of this checkout by
default). When it holds no ``index.html`` the gateway still starts: ``/app/``
answers 404 problem+json saying how to build it. The app calls the API on
the same origin, so it needs no CORS.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway import errors

#: ``web/dist`` beside the ``gateway`` package (a checkout after ``make web``).
DEFAULT_WEB_DIR = Path(__file__).resolve().parents[1] / "web" / "dist"
PREFIX = "/app"


def web_app_routes(web_dir: Path) -> list[BaseRoute]:
    """``/app`` redirects to ``/app/``; ``/app/...`` serves the build, or the hint."""

    async def redirect(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    routes: list[BaseRoute] = [Route(PREFIX, redirect, methods=["GET", "HEAD"])]
    if (web_dir / "index.html").is_file():
        routes.append(Mount(PREFIX, app=StaticFiles(directory=web_dir, html=True)))
        return routes

    async def not_built(request: Request) -> Response:
        return errors.problem(
            404,
            "web_app_not_built",
            "the web app is not built: run `make web` (needs Node.js 20+ and npm), "
            "or point GATEWAY_WEB_DIR at a build",
        )

    routes.append(Route(PREFIX + "/{path:path}", not_built, methods=["GET", "HEAD"]))
    return routes
