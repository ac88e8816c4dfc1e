"""Referrals: who invited whom (GetReferrers, for the mining worker's
shares), a user's counts (GetReferralSummary) and invitees (ListInvitees).

Every account has its own ``referral_code``; ``referred_by`` is the inviter's
user id, fixed when the account is made (Register's ``referral_code``,
TelegramLogin's ``start_param``) and changed by nothing after. So the
relation is a forest: an inviter is always older than its invitees, no
account is its own inviter, no chain loops.

GetReferrers costs one MongoDB query per level (``$in`` over the ids, then
over their inviters). The invitee lists read the index on (``referred_by``,
``created_at`` desc, ``_id`` desc), newest first; a page token is the last
invitee's position, so pages stay stable while new invitees arrive.
"""

from __future__ import annotations

import json
from datetime import datetime

from minequest.auth.v1 import auth_pb2
from minequest.common.v1 import common_pb2
from runtime import pages
from runtime.errors import required
from runtime.timestamps import aware, to_timestamp
from services.auth.errors import TooManyUserIds, UserNotFound
from services.auth.store import AuthStore, Doc

#: Most user ids one GetReferrers call may ask about.
MAX_REFERRER_IDS = 1000


def _token(doc: Doc) -> str:
    position = {"at": aware(doc["created_at"]).isoformat(), "id": doc["_id"]}
    return pages.encode_token(json.dumps(position, separators=(",", ":")).encode())


def _position(token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        position = json.loads(pages.decode_token(token))
        at, last_id = position["at"], position["id"]
        if not isinstance(at, str) or not isinstance(last_id, str):
            raise pages.bad_token()
        return aware(datetime.fromisoformat(at)), last_id
    except (ValueError, TypeError, KeyError):
        raise pages.bad_token() from None


class Referrals:
    def __init__(self, store: AuthStore) -> None:
        self.store = store

    async def referrers(
        self, request: auth_pb2.GetReferrersRequest
    ) -> auth_pb2.GetReferrersResponse:
        ids = list(dict.fromkeys(request.user_ids))
        if len(ids) > MAX_REFERRER_IDS:
            raise TooManyUserIds(f"at most {MAX_REFERRER_IDS} user ids per call", field="user_ids")
        first = await self.store.inviters_of(ids)
        second = await self.store.inviters_of(sorted({i for i in first.values() if i}))
        return auth_pb2.GetReferrersResponse(
            referrers=[
                auth_pb2.Referrers(
                    user_id=user_id,
                    inviter_id=first[user_id],
                    second_inviter_id=second.get(first[user_id], ""),
                )
                for user_id in ids
                if user_id in first
            ]
        )

    async def _user(self, user_id: str) -> Doc:
        user = await self.store.user(required(user_id, "user_id"))
        if user is None:
            raise UserNotFound("no such user")
        return user

    async def summary(
        self, request: auth_pb2.GetReferralSummaryRequest
    ) -> auth_pb2.GetReferralSummaryResponse:
        user = await self._user(request.user_id)
        return auth_pb2.GetReferralSummaryResponse(
            referral_code=user["referral_code"],
            invited=await self.store.count_invitees(user["_id"]),
            second_level_invited=await self.store.count_second_level(user["_id"]),
        )

    async def invitees(
        self, request: auth_pb2.ListInviteesRequest
    ) -> auth_pb2.ListInviteesResponse:
        user_id = required(request.user_id, "user_id")
        size = pages.page_size(request.page)
        after = _position(request.page.page_token)
        found = await self.store.invitees(user_id, after, size + 1)
        more, shown = len(found) > size, found[:size]
        return auth_pb2.ListInviteesResponse(
            invitees=[
                auth_pb2.Invitee(
                    user_id=doc["_id"],
                    username=doc.get("username") or "",
                    joined_at=to_timestamp(doc.get("created_at")),
                )
                for doc in shown
            ],
            page=common_pb2.PageResponse(next_page_token=_token(shown[-1]) if more else ""),
        )
