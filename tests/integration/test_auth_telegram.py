"""Telegram login, email and wallet linking for Telegram accounts, and the
referral RPCs: the auth service over real gRPC, a real MongoDB-wire server
and a real SMTP server. initData is signed here as Telegram signs it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from pymongo import AsyncMongoClient

from minequest.auth.v1 import auth_pb2
from minequest.common.v1 import common_pb2
from services.auth.store import AuthStore
from services.auth.users import insert_new_user, new_user
from tests.integration.conftest import SmtpServer, fails
from tests.integration.test_auth_service import (
    Auth,
    Clock,
    login,
    make_settings,
    register,
    start_auth,
)
from tests.unit.test_auth_telegram import BOT_TOKEN, signed_init_data

pytestmark = pytest.mark.integration

_NEXT_ID = iter(range(5_000_000_000, 6_000_000_000))


def tg_user(username: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Telegram user with an id of its own."""
    user: dict[str, Any] = {"id": next(_NEXT_ID), "first_name": "Tess", **extra}
    if username is not None:
        user["username"] = username
    return user


@pytest.fixture
async def auth(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer
) -> AsyncIterator[Auth]:
    settings = make_settings(
        tmp_path, mongodb_uri, database_name, smtp_server, TELEGRAM_BOT_TOKEN=BOT_TOKEN
    )
    async for value in start_auth(settings, Clock(), smtp_server):
        yield value


async def telegram_login(
    auth: Auth, user: dict[str, Any], **signing: Any
) -> auth_pb2.TelegramLoginResponse:
    return await auth.stub.TelegramLogin(
        auth_pb2.TelegramLoginRequest(init_data=signed_init_data(user, **signing))
    )


# --- login ----------------------------------------------------------------------


async def test_a_first_telegram_login_makes_the_account_and_the_next_logs_into_it(auth: Auth):
    user = tg_user("tess_t")
    first = await telegram_login(auth, user)
    assert first.created
    assert first.user.telegram_id == str(user["id"])
    assert first.user.username == "tess_t"
    assert (first.user.email, first.user.wallet_address, first.user.referred_by) == ("", "", "")
    assert len(first.user.referral_code) == 8
    assert first.tokens.token_type == "Bearer"
    assert first.tokens.access_token
    assert first.tokens.refresh_token
    second = await telegram_login(auth, user)
    assert not second.created
    assert second.user.id == first.user.id
    assert second.tokens.refresh_token != first.tokens.refresh_token
    refreshed = await auth.stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=second.tokens.refresh_token)
    )
    assert refreshed.tokens.access_token


async def test_telegram_accounts_need_no_wallet_and_no_email(auth: Auth):
    """The wallet index is partial: many accounts may have none."""
    users = [await telegram_login(auth, tg_user()) for _ in range(3)]
    assert len({reply.user.id for reply in users}) == 3
    assert all(reply.user.wallet_address == "" for reply in users)


async def test_a_taken_or_invalid_telegram_username_falls_back_to_a_generated_one(auth: Auth):
    await register(auth, username="Popular")
    taken = tg_user("popular")
    reply = await telegram_login(auth, taken)
    assert reply.user.username == f"tg_{taken['id']}"
    odd = tg_user("ab")
    assert (await telegram_login(auth, odd)).user.username == f"tg_{odd['id']}"


async def test_concurrent_first_logins_of_one_telegram_user_make_one_account(auth: Auth):
    user = tg_user("racer")
    replies = await asyncio.gather(*(telegram_login(auth, user) for _ in range(4)))
    assert len({reply.user.id for reply in replies}) == 1
    assert sum(reply.created for reply in replies) == 1


async def test_telegram_refusals_have_distinct_reasons(auth: Auth):
    def call(init_data: str) -> Any:
        return auth.stub.TelegramLogin(auth_pb2.TelegramLoginRequest(init_data=init_data))

    info = await fails(call("not a query string"), grpc.StatusCode.INVALID_ARGUMENT)
    assert (info.reason, info.field) == ("invalid_init_data", "initData")
    wrong_bot = signed_init_data(tg_user(), bot_token="42:someone-elses-bot")
    await fails(call(wrong_bot), grpc.StatusCode.UNAUTHENTICATED, "init_data_invalid_hash")
    old = signed_init_data(tg_user(), auth_date=datetime.now(UTC) - timedelta(days=2))
    await fails(call(old), grpc.StatusCode.UNAUTHENTICATED, "init_data_expired")


async def test_telegram_login_without_a_bot_token_says_it_is_not_configured(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer
):
    settings = make_settings(tmp_path, mongodb_uri, database_name, smtp_server)
    async for auth in start_auth(settings, Clock(), smtp_server):
        info = await fails(
            auth.stub.TelegramLogin(
                auth_pb2.TelegramLoginRequest(init_data=signed_init_data(tg_user()))
            ),
            grpc.StatusCode.UNAVAILABLE,
            "telegram_login_not_configured",
        )
        assert "TELEGRAM_BOT_TOKEN" in info.message


async def test_the_old_wallet_index_unique_on_every_account_is_made_partial(
    tmp_path: Path,
    mongodb_uri: str,
    database_name: str,
    smtp_server: SmtpServer,
    mongo: AsyncMongoClient[dict[str, Any]],
):
    users = mongo[database_name]["users"]
    await users.create_index("wallet_address", unique=True)
    settings = make_settings(
        tmp_path, mongodb_uri, database_name, smtp_server, TELEGRAM_BOT_TOKEN=BOT_TOKEN
    )
    async for auth in start_auth(settings, Clock(), smtp_server):
        await telegram_login(auth, tg_user())
        await telegram_login(auth, tg_user())
        await register(auth)
        await fails(
            auth.stub.Register(
                auth_pb2.RegisterRequest(
                    wallet_address="0x52908400098527886e0f7030069857d2e4169ee7",
                    email="other@example.com",
                )
            ),
            grpc.StatusCode.ALREADY_EXISTS,
            "wallet_taken",
        )
    index = (await users.index_information())["wallet_address_1"]
    assert index["unique"]
    assert "partialFilterExpression" in index


# --- referrals on the first login ------------------------------------------------


async def test_start_param_links_the_inviter_on_the_first_login_only(auth: Auth):
    inviter = (await telegram_login(auth, tg_user())).user
    other = (await telegram_login(auth, tg_user())).user
    user = tg_user()
    first = await telegram_login(auth, user, start_param=inviter.referral_code.lower())
    assert (first.user.referred_by, first.referral_error) == (inviter.id, "")
    again = await telegram_login(auth, user, start_param=other.referral_code)
    assert not again.created
    assert (again.user.referred_by, again.referral_error) == (inviter.id, "")


@pytest.mark.parametrize("start_param", ["AAAAAAAA", "promo_summer"])
async def test_an_unknown_start_param_makes_the_account_without_an_inviter_and_says_so(
    auth: Auth, start_param: str
):
    reply = await telegram_login(auth, tg_user(), start_param=start_param)
    assert reply.created
    assert (reply.user.referred_by, reply.referral_error) == ("", "invalid_referral_code")


async def test_an_invitee_can_never_become_its_inviters_ancestor(auth: Auth):
    """referred_by is fixed when an account is made: no RPC links it later."""
    inviter_tg = tg_user()
    inviter = (await telegram_login(auth, inviter_tg)).user
    invitee = (await telegram_login(auth, tg_user(), start_param=inviter.referral_code)).user
    relogin = await telegram_login(auth, inviter_tg, start_param=invitee.referral_code)
    assert relogin.user.referred_by == ""
    renamed = await auth.stub.UpdateProfile(
        auth_pb2.UpdateProfileRequest(user_id=invitee.id, username="renamed_one")
    )
    assert renamed.user.referred_by == inviter.id
    chain = await auth.stub.GetReferrers(auth_pb2.GetReferrersRequest(user_ids=[inviter.id]))
    assert chain.referrers[0].inviter_id == ""


# --- linking an email -----------------------------------------------------------


async def request_link(auth: Auth, user_id: str, email: str) -> auth_pb2.RequestEmailLinkResponse:
    return await auth.stub.RequestEmailLink(
        auth_pb2.RequestEmailLinkRequest(user_id=user_id, email=email)
    )


async def test_an_email_is_linked_once_its_code_proves_it_then_it_logs_in(auth: Auth):
    account = (await telegram_login(auth, tg_user())).user
    challenge = await request_link(auth, account.id, "Tess@Example.com")
    mail = await auth.smtp.mailbox.arrival("tess@example.com")
    assert "add this email to your Minequest account" in mail.get_content()
    code = auth.smtp.mailbox.code_in(mail)
    linked = await auth.stub.VerifyEmailLink(
        auth_pb2.VerifyEmailLinkRequest(
            user_id=account.id, challenge_id=challenge.challenge_id, code=code
        )
    )
    assert linked.user.email == "tess@example.com"
    assert linked.user.telegram_id == account.telegram_id
    logged_in = await login(auth, "tess@example.com", nth_mail=2)
    assert logged_in.user.id == account.id
    await fails(
        request_link(auth, account.id, "second@example.com"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "email_already_linked",
    )


async def test_a_link_code_neither_logs_in_nor_serves_another_account(auth: Auth):
    account = (await telegram_login(auth, tg_user())).user
    intruder = (await telegram_login(auth, tg_user())).user
    challenge = await request_link(auth, account.id, "mine@example.com")
    code = auth.smtp.mailbox.code_in(await auth.smtp.mailbox.arrival("mine@example.com"))
    await fails(
        auth.stub.VerifyOtp(
            auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=code)
        ),
        grpc.StatusCode.NOT_FOUND,
        "challenge_not_found",
    )
    await fails(
        auth.stub.VerifyEmailLink(
            auth_pb2.VerifyEmailLinkRequest(
                user_id=intruder.id, challenge_id=challenge.challenge_id, code=code
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "challenge_not_found",
    )
    wrong = "000000" if code != "000000" else "111111"
    await fails(
        auth.stub.VerifyEmailLink(
            auth_pb2.VerifyEmailLinkRequest(
                user_id=account.id, challenge_id=challenge.challenge_id, code=wrong
            )
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid_code",
    )


async def test_link_codes_have_a_resend_cooldown_of_their_own(auth: Auth):
    account = (await telegram_login(auth, tg_user())).user
    await request_link(auth, account.id, "slow@example.com")
    info = await fails(
        request_link(auth, account.id, "slow@example.com"),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "otp_cooldown",
    )
    assert info.retry_after is not None
    # the login's cooldown is another one
    await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="slow@example.com"))


async def test_a_taken_email_is_refused_before_and_after_the_code(auth: Auth):
    await register(auth, email="owner@example.com")
    account = (await telegram_login(auth, tg_user())).user
    await fails(
        request_link(auth, account.id, "owner@example.com"),
        grpc.StatusCode.ALREADY_EXISTS,
        "email_taken",
    )
    challenge = await request_link(auth, account.id, "late@example.com")
    code = auth.smtp.mailbox.code_in(await auth.smtp.mailbox.arrival("late@example.com"))
    await register(
        auth, wallet="0xde709f2102306220921060314715629080e2fb77", email="late@example.com"
    )
    await fails(
        auth.stub.VerifyEmailLink(
            auth_pb2.VerifyEmailLinkRequest(
                user_id=account.id, challenge_id=challenge.challenge_id, code=code
            )
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "email_taken",
    )


# --- linking a wallet -----------------------------------------------------------


async def test_a_telegram_account_proves_a_wallet_which_then_becomes_its_own(auth: Auth):
    account = (await telegram_login(auth, tg_user())).user
    await fails(
        auth.stub.CreateWalletChallenge(auth_pb2.CreateWalletChallengeRequest(user_id=account.id)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_wallet_address",
    )
    owner = Account.create()
    challenge = await auth.stub.CreateWalletChallenge(
        auth_pb2.CreateWalletChallengeRequest(
            user_id=account.id, wallet_address=owner.address.lower()
        )
    )
    assert owner.address in challenge.message
    signature = "0x" + owner.sign_message(encode_defunct(text=challenge.message)).signature.hex()
    proved = await auth.stub.VerifyWallet(
        auth_pb2.VerifyWalletRequest(
            user_id=account.id, message=challenge.message, signature=signature
        )
    )
    assert (proved.user.wallet_address, proved.user.wallet_verified) == (owner.address, True)
    profile = await auth.stub.GetPublicProfile(
        auth_pb2.GetPublicProfileRequest(wallet_address=owner.address)
    )
    assert profile.profile.user_id == account.id
    await fails(
        auth.stub.CreateWalletChallenge(
            auth_pb2.CreateWalletChallengeRequest(
                user_id=account.id, wallet_address=Account.create().address
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "wallet_mismatch",
    )
    newcomer = (await telegram_login(auth, tg_user())).user
    await fails(
        auth.stub.CreateWalletChallenge(
            auth_pb2.CreateWalletChallengeRequest(user_id=newcomer.id, wallet_address=owner.address)
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "wallet_taken",
    )


async def test_two_accounts_racing_for_one_wallet_leave_it_to_the_first(auth: Auth):
    owner = Account.create()
    first, second = [(await telegram_login(auth, tg_user())).user for _ in range(2)]
    challenges = [
        await auth.stub.CreateWalletChallenge(
            auth_pb2.CreateWalletChallengeRequest(user_id=user.id, wallet_address=owner.address)
        )
        for user in (first, second)
    ]

    def verify(user: auth_pb2.User, challenge: auth_pb2.CreateWalletChallengeResponse) -> Any:
        signed = owner.sign_message(encode_defunct(text=challenge.message)).signature.hex()
        return auth.stub.VerifyWallet(
            auth_pb2.VerifyWalletRequest(
                user_id=user.id, message=challenge.message, signature="0x" + signed
            )
        )

    assert (await verify(first, challenges[0])).user.wallet_address == owner.address
    await fails(verify(second, challenges[1]), grpc.StatusCode.ALREADY_EXISTS, "wallet_taken")


# --- the referral RPCs ----------------------------------------------------------


async def invite_chain(auth: Auth, length: int) -> list[auth_pb2.User]:
    """``length`` accounts, each invited by the one before."""
    chain = [(await telegram_login(auth, tg_user())).user]
    for _ in range(length - 1):
        reply = await telegram_login(auth, tg_user(), start_param=chain[-1].referral_code)
        chain.append(reply.user)
    return chain


async def test_get_referrers_answers_two_levels_and_leaves_unknown_ids_out(auth: Auth):
    top, middle, bottom = await invite_chain(auth, 3)
    registered = await register(auth, referral_code=bottom.referral_code)
    reply = await auth.stub.GetReferrers(
        auth_pb2.GetReferrersRequest(
            user_ids=[registered.id, bottom.id, "nobody", middle.id, top.id, bottom.id]
        )
    )
    assert [(r.user_id, r.inviter_id, r.second_inviter_id) for r in reply.referrers] == [
        (registered.id, bottom.id, middle.id),
        (bottom.id, middle.id, top.id),
        (middle.id, top.id, ""),
        (top.id, "", ""),
    ]
    empty = await auth.stub.GetReferrers(auth_pb2.GetReferrersRequest())
    assert list(empty.referrers) == []


async def test_get_referrers_takes_at_most_a_thousand_ids(auth: Auth):
    ids = [f"user-{n}" for n in range(1001)]
    await fails(
        auth.stub.GetReferrers(auth_pb2.GetReferrersRequest(user_ids=ids)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "too_many_user_ids",
    )
    reply = await auth.stub.GetReferrers(auth_pb2.GetReferrersRequest(user_ids=ids[:1000]))
    assert list(reply.referrers) == []


async def test_the_summary_counts_both_levels(auth: Auth):
    top, middle, _ = await invite_chain(auth, 3)
    for _ in range(2):
        await telegram_login(auth, tg_user(), start_param=top.referral_code)
    await telegram_login(auth, tg_user(), start_param=middle.referral_code)
    summary = await auth.stub.GetReferralSummary(auth_pb2.GetReferralSummaryRequest(user_id=top.id))
    assert (summary.referral_code, summary.invited, summary.second_level_invited) == (
        top.referral_code,
        3,
        2,
    )
    await fails(
        auth.stub.GetReferralSummary(auth_pb2.GetReferralSummaryRequest(user_id="nobody")),
        grpc.StatusCode.NOT_FOUND,
        "user_not_found",
    )


async def test_invitees_are_listed_newest_first_page_by_page(auth: Auth):
    inviter = (await telegram_login(auth, tg_user())).user
    invitees = []
    for _ in range(5):
        reply = await telegram_login(auth, tg_user(), start_param=inviter.referral_code)
        invitees.append(reply.user)
        auth.clock.offset += timedelta(seconds=1)
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = await auth.stub.ListInvitees(
            auth_pb2.ListInviteesRequest(
                user_id=inviter.id, page=common_pb2.PageRequest(page_size=2, page_token=token)
            )
        )
        seen += [invitee.user_id for invitee in page.invitees]
        assert all(invitee.joined_at.seconds > 0 for invitee in page.invitees)
        token = page.page.next_page_token
        if not token:
            break
    assert seen == [user.id for user in reversed(invitees)]
    first = await auth.stub.ListInvitees(auth_pb2.ListInviteesRequest(user_id=inviter.id))
    assert first.invitees[0].username == invitees[-1].username
    await fails(
        auth.stub.ListInvitees(
            auth_pb2.ListInviteesRequest(
                user_id=inviter.id, page=common_pb2.PageRequest(page_token="bm90LWpzb24")
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_page_token",
    )


async def test_invitees_made_in_the_same_millisecond_are_all_listed_once(
    auth: Auth, mongo: AsyncMongoClient[dict[str, Any]]
):
    inviter = (await telegram_login(auth, tg_user())).user
    same = datetime.now(UTC).replace(microsecond=0)
    store = AuthStore(mongo, auth.settings.service.mongodb_database)
    made = set()
    for n in range(4):
        doc = new_user(
            wallet=None,
            email=None,
            phone=None,
            username=f"twin_{n}",
            role="user",
            referred_by=inviter.id,
            now=same,
            telegram_id=str(next(_NEXT_ID)),
        )
        await insert_new_user(store, doc)
        made.add(doc["_id"])
    seen: list[str] = []
    token = ""
    for _ in range(10):
        page = await auth.stub.ListInvitees(
            auth_pb2.ListInviteesRequest(
                user_id=inviter.id, page=common_pb2.PageRequest(page_size=1, page_token=token)
            )
        )
        seen += [invitee.user_id for invitee in page.invitees]
        token = page.page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(made)
