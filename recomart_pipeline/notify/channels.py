"""The channels: SMTP email (plain, STARTTLS or SSL) and Slack incoming webhooks.

Each send is retried briefly and then given up with a logged warning: a notifier that is
down must never fail or block the pipeline.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from typing import TYPE_CHECKING

from recomart_pipeline.notify.message import RunNotice

if TYPE_CHECKING:
    from recomart_pipeline.config.schema import EmailSettings, SlackSettings

log = logging.getLogger("recomart.notify")
SEND_ATTEMPTS = 3
SEND_TIMEOUT_SECONDS = 10.0


def with_retries(what: str, send: Callable[[], None], redact: Callable[[str], str]) -> bool:
    """Try ``send`` a few times with a short backoff; True if it went through."""
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            send()
            return True
        except (OSError, smtplib.SMTPException, urllib.error.URLError) as exc:
            log.warning(redact(f"{what}: attempt {attempt}/{SEND_ATTEMPTS} failed: {exc}"))
            if attempt < SEND_ATTEMPTS:
                time.sleep(0.5 * 2 ** (attempt - 1))  # backoff between real send attempts
    log.error(f"{what}: giving up; the pipeline run is not affected")
    return False


def send_email(settings: EmailSettings, notice: RunNotice) -> None:
    message = EmailMessage()
    message["Subject"] = notice.subject
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message.set_content(notice.text())
    context = ssl.create_default_context(cafile=settings.ca_file)
    smtp: smtplib.SMTP
    if settings.security == "ssl":
        smtp = smtplib.SMTP_SSL(
            settings.smtp_server, settings.smtp_port, timeout=SEND_TIMEOUT_SECONDS, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_server, settings.smtp_port, timeout=SEND_TIMEOUT_SECONDS)
    with smtp:
        if settings.security == "starttls":
            smtp.starttls(context=context)
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else ""
            smtp.login(settings.username, password)
        smtp.send_message(message)


def slack_payload(settings: SlackSettings, notice: RunNotice) -> dict[str, object]:
    icon = ":white_check_mark:" if notice.succeeded else ":red_circle:"
    body = notice.text()
    payload: dict[str, object] = {
        "text": f"{icon} {notice.subject}\n<{notice.run_url}|Open the run in Dagster>",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{notice.subject}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{body}```"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{notice.run_url}|Open the run in Dagster>"},
            },
        ],
    }
    if settings.channel:
        payload["channel"] = settings.channel
    return payload


def send_slack(settings: SlackSettings, notice: RunNotice) -> None:
    if settings.webhook_url is None:
        raise OSError("slack webhook_url is not set")
    request = urllib.request.Request(
        settings.webhook_url.get_secret_value(),
        data=json.dumps(slack_payload(settings, notice)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS) as response:
        if response.status >= 300:
            raise OSError(f"webhook answered HTTP {response.status}")
