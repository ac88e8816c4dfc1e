"""The checked-in openapi.json is the document the gateway serves."""

from __future__ import annotations

import json
from pathlib import Path

from tools import openapi


def test_the_checked_in_openapi_json_matches_the_route_table() -> None:
    problem = openapi.stale()
    assert problem is None, problem


def test_a_stale_document_names_the_command_that_fixes_it(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    document = openapi.build()
    del document["paths"]["/api/auth/register"]
    stale.write_text(openapi.render(document), encoding="utf-8")
    problem = openapi.stale(stale)
    assert problem is not None
    assert "python -m tools.openapi write" in problem
    assert openapi.main(["check", "--path", str(stale)]) == 1
    assert openapi.main(["write", "--path", str(stale)]) == 0
    assert openapi.main(["check", "--path", str(stale)]) == 0
    assert "/api/auth/register" in json.loads(stale.read_text(encoding="utf-8"))["paths"]


def test_a_missing_document_is_reported(tmp_path: Path) -> None:
    problem = openapi.stale(tmp_path / "openapi.json")
    assert problem is not None
    assert "missing" in problem
