"""The gateway serves the web app's build at /app/, and says how to build it
when there is none (GATEWAY_WEB_DIR)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_gateway_app import assert_problem, client_for


async def test_the_build_is_served_at_app(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>Minequest</title>")
    (tmp_path / "assets" / "index-1.js").write_text("console.log('mine')")
    async for client in client_for(GATEWAY_WEB_DIR=str(tmp_path)):
        page = await client.get("/app/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>Minequest</title>" in page.text
        script = await client.get("/app/assets/index-1.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        bare = await client.get("/app", follow_redirects=False)
        assert bare.status_code == 308
        assert bare.headers["location"] == "/app/"
        assert_problem(await client.get("/app/nope.js"), 404, "not_found")
        # the API beside it is untouched
        assert (await client.get("/api/openapi.json")).status_code == 200


async def test_without_a_build_app_answers_404_with_the_command(tmp_path: Path) -> None:
    async for client in client_for(GATEWAY_WEB_DIR=str(tmp_path / "missing")):
        body = assert_problem(await client.get("/app/"), 404, "web_app_not_built")
        assert "make web" in body["detail"]
        assert "GATEWAY_WEB_DIR" in body["detail"]
