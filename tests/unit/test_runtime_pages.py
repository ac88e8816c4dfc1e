"""Page sizes and page tokens, as every list reads them."""

from __future__ import annotations

import pytest

from minequest.common.v1 import common_pb2
from runtime import pages


def test_page_size_defaults_caps_and_refuses_negative() -> None:
    assert pages.page_size(common_pb2.PageRequest()) == pages.DEFAULT_PAGE_SIZE
    assert pages.page_size(common_pb2.PageRequest(page_size=7)) == 7
    assert pages.page_size(common_pb2.PageRequest(page_size=10_000)) == pages.MAX_PAGE_SIZE
    with pytest.raises(pages.InvalidPageToken) as caught:
        pages.page_size(common_pb2.PageRequest(page_size=-1))
    assert (caught.value.reason, caught.value.field) == ("invalid_page_token", "page.page_size")


def test_tokens_round_trip_without_padding_and_refuse_garbage() -> None:
    token = pages.encode_token(b"quest-1")
    assert "=" not in token
    assert pages.decode_token(token) == b"quest-1"
    for garbage in ("a", "abcde", "é"):  # a length base64 cannot have; not ASCII
        with pytest.raises(pages.InvalidPageToken) as caught:
            pages.decode_token(garbage)
        assert caught.value.field == "page.page_token"
