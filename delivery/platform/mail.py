"""Email that really leaves: one message (a plain-text and an HTML part) through the configured SMTP server.

`DELIVERY_SMTP_URL` is smtp://user:pass@host:port (STARTTLS whenever the server offers it) or
smtps://user:pass@host:port (TLS from the first byte). Without it nothing is sent and callers show
the link to the admin instead. Messages are written in the recipient's language where a template
exists for it, else in English.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from functools import cache
from urllib.parse import unquote, urlsplit

from jinja2 import Environment, FileSystemLoader, TemplateNotFound, select_autoescape

from delivery.platform.settings import ROOT, Settings

TEMPLATES = ROOT / "templates" / "mail"
TIMEOUT_S = 20.0
DEFAULT_LANGUAGE = "en"


class MailError(RuntimeError):
    """The message could not be handed to the SMTP server; the text says why."""


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str


@cache
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


def render(name: str, to: str, *, language: str | None = None, **context: object) -> Mail:
    """`templates/mail/<language>/<name>.{txt,html}`; the subject is the text part's first line."""
    env = _environment()
    for lang in (language or DEFAULT_LANGUAGE, DEFAULT_LANGUAGE):
        try:
            text = env.get_template(f"{lang}/{name}.txt").render(**context)
            html = env.get_template(f"{lang}/{name}.html").render(**context)
        except TemplateNotFound:
            continue
        subject, _, body = text.partition("\n")
        return Mail(to=to, subject=subject.removeprefix("Subject:").strip(), text=body.lstrip("\n"),
                    html=html)
    raise MailError(f"no mail template {name!r}")


def configured(settings: Settings) -> bool:
    return bool(settings.smtp_url)


def sender(settings: Settings) -> str:
    return settings.mail_from or f"no-reply@{urlsplit(settings.base_url).hostname or 'localhost'}"


def message(settings: Settings, mail: Mail) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender(settings)
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Message-ID"] = make_msgid(domain=sender(settings).rpartition("@")[2])
    msg.set_content(mail.text)
    msg.add_alternative(mail.html, subtype="html")
    return msg


def send(settings: Settings, mail: Mail) -> None:
    """Hand the message to the SMTP server of `settings.smtp_url`; MailError when that fails."""
    url = urlsplit(settings.smtp_url)
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise MailError("DELIVERY_SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465")
    context = ssl.create_default_context()
    try:
        if url.scheme == "smtps":
            server: smtplib.SMTP = smtplib.SMTP_SSL(url.hostname, url.port or 465, timeout=TIMEOUT_S,
                                                    context=context)
        else:
            server = smtplib.SMTP(url.hostname, url.port or 587, timeout=TIMEOUT_S)
        with server:
            server.ehlo()
            if url.scheme == "smtp" and server.has_extn("starttls"):
                server.starttls(context=context)
                server.ehlo()
            if url.username:
                server.login(unquote(url.username), unquote(url.password or ""))
            server.send_message(message(settings, mail))
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"could not send to {mail.to} through {url.hostname}: {exc}") from exc
