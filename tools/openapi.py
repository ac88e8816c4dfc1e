"""The checked-in HTTP contract: ``openapi.json`` at the repository root.

The gateway builds its OpenAPI document from the route table at start
(``GET /api/openapi.json``); this tool writes the same document to the
repository so that clients (``clients/typescript``) generate from a file
and reviews see every contract change as a diff::

    python -m tools.openapi write    # regenerate openapi.json (make openapi)
    python -m tools.openapi check    # exit 1 when openapi.json is stale

The unit tests run the check too (tests/unit/test_openapi_drift.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "openapi.json"
FIX = "python -m tools.openapi write (or: make openapi)"


def build() -> dict[str, Any]:
    """The document the gateway serves, with the package's version."""
    from gateway.app import version
    from gateway.openapi import build_openapi
    from gateway.routes import ENDPOINTS

    return build_openapi(ENDPOINTS, version=version())


def render(document: dict[str, Any]) -> str:
    """Stable text: two-space indents, keys in table order, a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def stale(path: Path = DOCUMENT) -> str | None:
    """Why ``path`` is not the generated document, or ``None`` when it is."""
    if not path.exists():
        return f"{path.name} is missing: run {FIX}"
    if path.read_text(encoding="utf-8") != render(build()):
        return f"{path.name} differs from the route table: run {FIX} and commit it"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.openapi", description=__doc__)
    parser.add_argument("command", choices=("write", "check"))
    parser.add_argument("--path", type=Path, default=DOCUMENT, help="default: openapi.json")
    args = parser.parse_args(argv)
    if args.command == "write":
        args.path.write_text(render(build()), encoding="utf-8")
        print(f"wrote {args.path}")
        return 0
    problem = stale(args.path)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"{args.path.name} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
