"""What every list shares: the page size asked for, and opaque page tokens.

A token is base64url of whatever position the list keeps (the wallet a JSON
cursor, the quests catalogue the last id); decoding one that this suite did
not give out is ``invalid_page_token``, never a 500.
"""

from __future__ import annotations

import base64
import binascii

from minequest.common.v1 import common_pb2
from runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class InvalidPageToken(InvalidArgument):
    reason = "invalid_page_token"


def page_size(page: common_pb2.PageRequest) -> int:
    """The size asked for: the default when unset, at most the maximum."""
    if page.page_size < 0:
        raise InvalidPageToken("page.pageSize must not be negative", field="page.page_size")
    return min(page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def bad_token() -> InvalidPageToken:
    return InvalidPageToken(
        "page.pageToken is not a token this list gave out", field="page.page_token"
    )


def encode_token(position: bytes) -> str:
    return base64.urlsafe_b64encode(position).decode().rstrip("=")


def decode_token(token: str) -> bytes:
    """The position a token holds; :func:`bad_token` if it is not base64url."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise bad_token() from None
