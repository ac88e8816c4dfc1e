"""Delivery of one-time codes.

Email goes through SMTP with aiosmtplib. ``SMTP_SECURITY`` says how the
connection is protected, and nothing is left to chance: ``starttls`` (the
default) *requires* the server to offer STARTTLS, or the send fails before
anything is sent; ``tls`` is implicit TLS (the default on port 465); ``none``
is plaintext and must be chosen explicitly. There is no SMS provider yet: a
phone login works only with the dev fallback, which is documented as
dev-only.

A send runs in the background (:mod:`services.auth.delivery`), never on the
request path, so it raises :class:`DeliveryFailed` instead of answering the
caller.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from services.auth.settings import SmtpSettings


class DeliveryFailed(Exception):
    """A code could not be delivered; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CodeMail:
    """What one code mail says, and to whom."""

    channel: str
    contact: str
    code: str
    key: str
    link: str | None
    ttl_seconds: int
    #: ``login``, or ``link_email`` (the code proves an email to add to an account).
    purpose: str = "login"


class CodeSender(Protocol):
    def can_send(self, channel: str) -> bool: ...

    async def send(self, mail: CodeMail) -> None:
        """Deliver ``mail`` or raise :class:`DeliveryFailed`."""
        ...


def email_message(mail: CodeMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.contact
    message["Subject"] = f"Your Minequest code: {mail.code}"
    if mail.purpose == "link_email":
        message.set_content(
            f"Your code to add this email to your Minequest account is {mail.code}.\n\n"
            f"Or paste this key instead of the code:\nlink key: {mail.key}\n\n"
            f"They expire in {max(1, mail.ttl_seconds // 60)} minutes and work once. "
            "If you did not ask for it, ignore this email: nothing changes without the code.\n"
        )
        return message
    link = f"Or open this link to log in:\n{mail.link}\n\n" if mail.link else ""
    message.set_content(
        f"Your Minequest login code is {mail.code}.\n\n"
        f"{link}"
        f"Or paste this login key instead of the code:\nlogin key: {mail.key}\n\n"
        f"They expire in {max(1, mail.ttl_seconds // 60)} minutes and work once. "
        "Only this, the latest mail, is valid. "
        "If you did not ask for it, ignore this email.\n"
    )
    return message


class SmtpCodeSender:
    """Sends codes by email; reports that it cannot reach phones."""

    def __init__(self, settings: SmtpSettings | None) -> None:
        self.settings = settings

    def can_send(self, channel: str) -> bool:
        return channel == "email" and self.settings is not None

    async def send(self, mail: CodeMail) -> None:
        smtp = self.settings
        if mail.channel != "email" or smtp is None:
            raise DeliveryFailed("not_configured", f"no delivery configured for {mail.channel}")
        try:
            await aiosmtplib.send(
                email_message(mail, smtp.sender),
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.user,
                password=smtp.password,
                use_tls=smtp.security == "tls",
                start_tls=smtp.security == "starttls",
                cert_bundle=smtp.ca_file,
                timeout=smtp.timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(failure_reason(error), type(error).__name__) from None


def failure_reason(error: BaseException) -> str:
    """``tls`` (no STARTTLS offered, or the handshake or certificate failed),
    ``connection`` (refused, unreachable, dropped, timed out) or ``smtp`` (the
    server refused: login, sender, recipients)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 5:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if any(isinstance(e, ssl.SSLError) for e in chain) or "STARTTLS" in str(error):
        return "tls"
    if any(isinstance(e, (ConnectionError, TimeoutError)) for e in chain):
        return "connection"
    return "smtp" if isinstance(error, aiosmtplib.SMTPException) else "connection"
