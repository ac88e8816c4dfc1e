"""Cursor pagination, newest first, stable under concurrent inserts.

Lists are ordered by ``(created_at, _id)`` descending. A page token is the
position of the last item of the previous page (opaque base64url JSON), and
the next page is everything strictly older than it. Items inserted while a
client pages through land before its cursor, so they never shift a page:
nothing is seen twice and nothing that existed is skipped.

``created_at`` is kept at millisecond precision (BSON's), so the cursor
matches the stored value exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from minequest.common.v1 import common_pb2
from runtime import pages as shared

#: Sort order of every list, and the shape of the indexes that serve it.
NEWEST_FIRST = [("created_at", -1), ("_id", -1)]

Doc = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def millis(value: datetime) -> datetime:
    """``value`` truncated to milliseconds (what MongoDB stores)."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def encode_token(doc: Doc) -> str:
    created: datetime = doc["created_at"]
    stamp = (created if created.tzinfo else created.replace(tzinfo=UTC)) - _EPOCH
    raw = json.dumps([stamp // _MS, str(doc["_id"])], separators=(",", ":")).encode()
    return shared.encode_token(raw)


def older_than(token: str) -> Doc:
    """The filter for items strictly after the token's position."""
    raw = shared.decode_token(token)
    try:
        stamp, item_id = json.loads(raw)
        if not isinstance(stamp, int) or not isinstance(item_id, str):
            raise ValueError("bad token")
        created = _EPOCH + stamp * _MS
    except (ValueError, TypeError, OverflowError, OSError):
        raise shared.bad_token() from None
    return {
        "$or": [
            {"created_at": {"$lt": created}},
            {"created_at": created, "_id": {"$lt": item_id}},
        ]
    }


def page_filter(base: Doc, page: common_pb2.PageRequest) -> Doc:
    """``base`` narrowed to the items after ``page.page_token``."""
    if not page.page_token:
        return base
    return {"$and": [base, older_than(page.page_token)]}


def split_page(docs: list[Doc], size: int) -> tuple[list[Doc], common_pb2.PageResponse]:
    """Given up to ``size + 1`` docs, the page and the token of the next one."""
    if len(docs) <= size:
        return docs, common_pb2.PageResponse()
    page = docs[:size]
    return page, common_pb2.PageResponse(next_page_token=encode_token(page[-1]))
