"""Breaking-change guard for the HTTP API, beside ``buf breaking`` for the protos.

Compares the checked-in ``openapi.json`` with the one at a base ref — the
last release tag (``v*``), or the previous commit when there is none — and
fails on what breaks a client built against the base::

    python -m tools.openapi_breaking              # against the base ref
    python -m tools.openapi_breaking --against v1.2.0
    python -m tools.openapi_breaking base         # print the base ref (tools/buf_breaking.sh)

Breaking: a removed path or operation; a removed success status; a new
required parameter or request field (or a body that becomes required); a
removed request field (bodies refuse unknown fields); a removed response
field, or one no longer always present; a removed enum value; a type that
accepts less in a request or answers more in a response. Additions pass: new
paths, operations, optional fields, response fields, enum values, statuses.
A base without ``openapi.json`` passes with a note.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = "openapi.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

Document = Mapping[str, Any]


# --- the base ref -----------------------------------------------------------------


def _git(*args: str, repo: Path = ROOT) -> str | None:
    done = subprocess.run(  # noqa: S603 - git with our own arguments
        ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def base_ref(repo: Path = ROOT) -> str | None:
    """The last release tag (``v*``) reachable from HEAD, else ``HEAD~1``, else ``None``."""
    tag = _git("describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD", repo=repo)
    if tag:
        return tag
    return "HEAD~1" if _git("rev-parse", "--verify", "-q", "HEAD~1", repo=repo) else None


def document_at(ref: str) -> Document | None:
    """``openapi.json`` as committed at ``ref`` (``None`` when it has none)."""
    text = _git("show", f"{ref}:{DOCUMENT}")
    return json.loads(text) if text else None


# --- the rules --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def breaking_changes(old: Document, new: Document) -> list[Change]:
    """Every change from ``old`` to ``new`` that breaks a client built on ``old``."""
    return list(_paths(old, new))


def _paths(old: Document, new: Document) -> Iterator[Change]:
    new_paths = new.get("paths", {})
    for path, old_item in old.get("paths", {}).items():
        new_item = new_paths.get(path)
        if new_item is None:
            yield Change(path, "path removed")
            continue
        for method in METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            if method not in new_item:
                yield Change(where, "operation removed")
                continue
            yield from _operation(where, old, old_item[method], new, new_item[method])


def _operation(
    where: str, old_doc: Document, old: Mapping[str, Any], new_doc: Document, new: Mapping[str, Any]
) -> Iterator[Change]:
    old_params = {(p["in"], p["name"]): p for p in old.get("parameters", [])}
    new_params = {(p["in"], p["name"]): p for p in new.get("parameters", [])}
    for key, param in new_params.items():
        before = old_params.get(key)
        if param.get("required") and not (before and before.get("required")):
            yield Change(where, f"{key[0]} parameter {key[1]!r} is now required")
        if before is not None:
            yield from _schema(
                f"{where} {key[0]} {key[1]}",
                _Side(old_doc, before.get("schema", {})),
                _Side(new_doc, param.get("schema", {})),
                request=True,
                seen=set(),
            )
    old_body, new_body = _body(old), _body(new)
    if new.get("requestBody", {}).get("required") and not old.get("requestBody", {}).get(
        "required"
    ):
        yield Change(where, "the request body is now required")
    if old_body is not None and new_body is not None:
        yield from _schema(
            f"{where} body",
            _Side(old_doc, old_body),
            _Side(new_doc, new_body),
            request=True,
            seen=set(),
        )
    new_responses = new.get("responses", {})
    for status, answer in old.get("responses", {}).items():
        if status not in new_responses:
            if str(status).startswith("2"):
                yield Change(where, f"response {status} removed")
            continue
        old_schema, new_schema = _content_schema(answer), _content_schema(new_responses[status])
        if old_schema is not None and new_schema is None:
            yield Change(where, f"response {status} no longer has a body")
        elif old_schema is not None and new_schema is not None:
            yield from _schema(
                f"{where} response {status}",
                _Side(old_doc, old_schema),
                _Side(new_doc, new_schema),
                request=False,
                seen=set(),
            )


def _body(operation: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return _content_schema(operation.get("requestBody", {}))


def _content_schema(part: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for media in part.get("content", {}).values():
        schema: Mapping[str, Any] | None = media.get("schema")
        if schema is not None:
            return schema
    return None


@dataclass(frozen=True, slots=True)
class _Side:
    doc: Document
    schema: Mapping[str, Any]

    def resolved(self) -> tuple[str | None, Mapping[str, Any]]:
        """The schema with ``$ref`` (and ``components/responses``) followed."""
        ref, schema, hops = None, self.schema, 0
        while "$ref" in schema and hops < 32:
            ref = schema["$ref"]
            node: Any = self.doc
            for part in ref.removeprefix("#/").split("/"):
                node = node.get(part, {}) if isinstance(node, Mapping) else {}
            schema, hops = node, hops + 1
        return ref, schema

    def at(self, schema: Mapping[str, Any]) -> _Side:
        return _Side(self.doc, schema)


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    types = {kind} if isinstance(kind, str) else set(kind)
    if "number" in types:
        types.add("integer")  # JSON Schema: every integer is a number
    return types


def _schema(
    where: str, old: _Side, new: _Side, *, request: bool, seen: set[tuple[str, str]]
) -> Iterator[Change]:
    old_ref, old_schema = old.resolved()
    new_ref, new_schema = new.resolved()
    if old_ref and new_ref:
        if (old_ref, new_ref) in seen:
            return
        seen.add((old_ref, new_ref))
    old_types, new_types = _types(old_schema), _types(new_schema)
    if old_types is not None and new_types is not None:
        lost = old_types - new_types if request else new_types - old_types
        if lost:
            side = "accepts" if request else "answers"
            was = "no longer " if request else ""
            yield Change(
                where,
                f"type changed from {sorted(old_types)} to {sorted(new_types)} "
                f"(it {was}{side} {sorted(lost)})",
            )
            return
    if "enum" in old_schema and "enum" in new_schema:
        removed = [value for value in old_schema["enum"] if value not in new_schema["enum"]]
        if removed:
            yield Change(where, f"enum values removed: {removed}")
    yield from _properties(where, old, old_schema, new, new_schema, request=request, seen=seen)
    for key in ("items", "additionalProperties"):
        old_sub, new_sub = old_schema.get(key), new_schema.get(key)
        if isinstance(old_sub, Mapping) and isinstance(new_sub, Mapping):
            yield from _schema(
                f"{where}[]", old.at(old_sub), new.at(new_sub), request=request, seen=seen
            )


def _properties(
    where: str,
    old: _Side,
    old_schema: Mapping[str, Any],
    new: _Side,
    new_schema: Mapping[str, Any],
    *,
    request: bool,
    seen: set[tuple[str, str]],
) -> Iterator[Change]:
    """Fields removed, newly required (requests) or no longer always present (answers)."""
    old_props: Mapping[str, Any] = old_schema.get("properties", {})
    new_props: Mapping[str, Any] = new_schema.get("properties", {})
    old_required = set(old_schema.get("required", []))
    new_required = set(new_schema.get("required", []))
    for name, old_prop in old_props.items():
        field = f"{where}.{name}"
        if name not in new_props:
            yield Change(field, "request field removed" if request else "response field removed")
            continue
        if not request and name in old_required and name not in new_required:
            yield Change(field, "response field no longer always present")
        yield from _schema(
            field, old.at(old_prop), new.at(new_props[name]), request=request, seen=seen
        )
    if request:
        for name in sorted(new_required - old_required):
            yield Change(f"{where}.{name}", "request field is now required")


# --- the command ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.openapi_breaking", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("check", "base"), default="check")
    parser.add_argument("--against", help="a git ref (default: the last v* tag, else HEAD~1)")
    parser.add_argument("--path", type=Path, default=ROOT / DOCUMENT, help="the new document")
    args = parser.parse_args(argv)
    ref = args.against or base_ref()
    if args.command == "base":
        if ref is None:
            return 1
        print(ref)
        return 0
    if ref is None:
        print("openapi breaking: no base commit; nothing to compare")
        return 0
    old = document_at(ref)
    if old is None:
        print(f"openapi breaking: {ref} has no {DOCUMENT}; nothing to compare")
        return 0
    new = json.loads(args.path.read_text(encoding="utf-8"))
    changes = breaking_changes(old, new)
    if changes:
        print(
            f"openapi breaking: {len(changes)} breaking change(s) against {ref}:", file=sys.stderr
        )
        for change in changes:
            print(f"  {change}", file=sys.stderr)
        print(
            "Keep the old shape (add, don't remove or rename), or version the API and "
            "say so in the release notes.",
            file=sys.stderr,
        )
        return 1
    print(f"openapi breaking: no breaking changes against {ref}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
