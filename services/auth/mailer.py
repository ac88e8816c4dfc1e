"""Delivery of one-time codes.

Email goes through SMTP with aiosmtplib (STARTTLS whenever the server offers
it; implicit TLS on port 465). There is no SMS provider yet: a phone login
works only with the dev fallback, which is documented as dev-only.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from services.auth.errors import DeliveryUnavailable
from services.auth.settings import SmtpSettings

log = logging.getLogger(__name__)


class CodeSender(Protocol):
    def can_send(self, channel: str) -> bool: ...

    async def send(self, channel: str, contact: str, code: str, ttl_seconds: int) -> None: ...


class SmtpCodeSender:
    """Sends codes by email; reports that it cannot reach phones."""

    def __init__(self, settings: SmtpSettings | None) -> None:
        self.settings = settings

    def can_send(self, channel: str) -> bool:
        return channel == "email" and self.settings is not None

    async def send(self, channel: str, contact: str, code: str, ttl_seconds: int) -> None:
        smtp = self.settings
        if channel != "email" or smtp is None:
            raise DeliveryUnavailable(f"no delivery configured for {channel}")
        message = EmailMessage()
        message["From"] = smtp.sender
        message["To"] = contact
        message["Subject"] = f"Your Minequest code: {code}"
        message.set_content(
            f"Your Minequest login code is {code}.\n\n"
            f"It expires in {max(1, ttl_seconds // 60)} minutes. "
            "If you did not ask for it, ignore this email.\n"
        )
        try:
            await aiosmtplib.send(
                message,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.user,
                password=smtp.password,
                use_tls=smtp.port == 465,
                start_tls=None if smtp.port != 465 else False,
                cert_bundle=smtp.ca_file,
                timeout=smtp.timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            log.warning(
                "otp email failed", extra={"error": type(error).__name__, "smtp_host": smtp.host}
            )
            raise DeliveryUnavailable(
                "could not send the code; try again later", reason="delivery_failed"
            ) from None
