"""Wire bytes per recipient: headers, MIME structure, QP encoding, personal links and DKIM."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest

from newsletter.config import Config
from newsletter.errors import ConfigError, HeaderInjectionError, InvalidInputError
from newsletter.sending.message import MessageTemplate, Recipient, check_header_value
from newsletter.sending.render import UNSUBSCRIBE_URL_PLACEHOLDER, RenderedEmail, render_digest
from newsletter.sending.smtp import SMTPPool, relay_settings, send_single
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer
from tests.test_render import make_view

NOW = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
TOKEN = "eyJzIjo0MiwicCI6InUifQ.AbCdEf-_0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
UNSUB = f"https://liens.example.org/u/{TOKEN}"
RECIPIENT = Recipient("camille@example.net", "Camille Lefèvre", UNSUB)


@pytest.fixture
def cfg(make_config: ConfigFactory, sqlite_url: str) -> Config:
    return make_config(sqlite_url, list__reply_to="redaction@example.org")


def parse(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def wire(cfg: Config, count: int = 3, **kwargs: bool) -> bytes:
    template = MessageTemplate.prepare(cfg, render_digest(cfg, make_view(count)), **kwargs)
    return template.for_recipient(RECIPIENT, NOW)


def test_digest_parses_without_defects_with_every_list_header(cfg: Config) -> None:
    """The bytes parse with no defects and carry From, To, Subject, Date, Message-ID, Reply-To,
    List-Id, List-Unsubscribe (https + mailto) and List-Unsubscribe-Post."""
    msg = parse(wire(cfg))
    assert not msg.defects and all(not part.defects for part in msg.walk())
    assert msg["From"] == "Les liens CivicTech <liens@example.org>"
    assert msg["To"] == "Camille Lefèvre <camille@example.net>"
    assert msg["Subject"] == "Les liens CivicTech de la semaine #24"
    assert msg["Date"] == "Sun, 29 Nov 2026 07:00:00 +0000"
    assert re.fullmatch(r"<[0-9a-f]{32}@liens\.example\.org>", msg["Message-ID"])
    assert msg["Reply-To"] == "redaction@example.org"
    assert msg["List-Id"] == "Les liens CivicTech <les-liens-civictech.liens.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>, <mailto:liens@example.org?subject=unsubscribe>"


def test_list_unsubscribe_is_never_rfc2047_encoded(cfg: Config) -> None:
    """The raw List-Unsubscribe header holds the URLs literally (only whitespace-folded)."""
    raw = wire(cfg)
    header = re.search(rb"^List-Unsubscribe: (.*?)\r\n(?! )", raw, re.M | re.S)
    assert header is not None
    assert b"=?" not in header.group(1)
    assert f"<{UNSUB}>".encode() in header.group(1)


def test_text_part_first_and_every_body_line_within_76(cfg: Config) -> None:
    """multipart/alternative has text/plain then text/html, both quoted-printable, and no body
    line is longer than 76 characters; every line ends with CRLF."""
    raw = wire(cfg, 40)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))


def test_personal_links_intact_after_decoding_in_both_parts(cfg: Config) -> None:
    """The recipient's unsubscribe URL is whole in both decoded parts, even when QP would have
    folded the line it sits on; no placeholder is left."""
    long_url = "https://liens.example.org/u/" + "x" * 150
    template = MessageTemplate.prepare(cfg, render_digest(cfg, make_view(40)))
    msg = parse(template.for_recipient(Recipient("a@example.net", "", long_url), NOW))
    text, html = (p.get_content() for p in msg.iter_parts())
    assert long_url in text
    assert f'href="{long_url}"' in html
    assert "@@" not in text and "@@" not in html
    assert "https://liens.example.org/archive/24" in html
    assert len(html.encode("utf-8")) < 102 * 1024


def test_each_recipient_gets_own_link_and_message_id(cfg: Config) -> None:
    """Two recipients of one template get different unsubscribe URLs and Message-IDs."""
    template = MessageTemplate.prepare(cfg, render_digest(cfg, make_view()))
    one = parse(template.for_recipient(Recipient("a@example.net", "", UNSUB + "A"), NOW))
    two = parse(template.for_recipient(Recipient("b@example.net", "", UNSUB + "B"), NOW))
    assert one["Message-ID"] != two["Message-ID"]
    assert UNSUB + "A" in one.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert UNSUB + "B" in two.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert UNSUB + "A" not in two.as_string()


def test_french_subject_with_guillemets_and_emoji_is_rfc2047(cfg: Config) -> None:
    """A UTF-8 subject is RFC 2047-encoded on the wire and decodes back exactly."""
    subject = "Les liens de la semaine #25 : « été » à Besançon 😉 — édition spéciale, très longue"
    rendered = RenderedEmail(subject=subject, html="<p>x</p>", text="x")
    raw = MessageTemplate.prepare(cfg, rendered, test=True).for_recipient(RECIPIENT, NOW)
    raw_subject = re.search(rb"^Subject: (.*?)\r\n(?! )", raw, re.M | re.S)
    assert raw_subject is not None and raw_subject.group(1).isascii()
    assert b"=?utf-8?" in raw_subject.group(1)
    assert parse(raw)["Subject"] == f"[Aperçu] {subject}"


def test_transactional_mail_has_no_list_headers(cfg: Config) -> None:
    """With list_mail=False there is no List-Id or List-Unsubscribe and no URL is required."""
    rendered = RenderedEmail(subject="Confirmez", html="<p>ok</p>", text="ok")
    msg = parse(
        MessageTemplate.prepare(cfg, rendered, list_mail=False).for_recipient(
            Recipient("a@example.net"), NOW
        )
    )
    assert msg["List-Id"] is None and msg["List-Unsubscribe"] is None
    assert msg.get_body(("plain",)).get_content().strip() == "ok"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "a@example.net\r\nBcc: x@evil.test"), ("name", "Eve\nBcc: x@evil.test")],
)
def test_cr_lf_in_recipient_values_is_refused(cfg: Config, field: str, value: str) -> None:
    """CR or LF in a recipient's address or name raises HeaderInjectionError."""
    template = MessageTemplate.prepare(cfg, render_digest(cfg, make_view()))
    recipient = Recipient(**{"email": "a@example.net", "unsubscribe_url": UNSUB, field: value})
    with pytest.raises(HeaderInjectionError):
        template.for_recipient(recipient, NOW)


def test_cr_lf_in_subject_or_config_is_refused(
    cfg: Config, make_config: ConfigFactory, sqlite_url: str
) -> None:
    """A subject with a line break is refused, and so is a list mail without unsubscribe URL."""
    bad = RenderedEmail(subject="Hello\r\nBcc: x@evil.test", html="<p>x</p>", text="x")
    with pytest.raises(HeaderInjectionError, match="subject"):
        MessageTemplate.prepare(cfg, bad)
    with pytest.raises(HeaderInjectionError, match="field"):
        check_header_value("a\nb", "field")
    good = RenderedEmail(subject="ok", html="<p>x</p>", text="x")
    with pytest.raises(InvalidInputError, match="unsubscribe"):
        MessageTemplate.prepare(cfg, good).for_recipient(Recipient("a@example.net"), NOW)


def _rsa_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key, base64.b64encode(der)


def test_dkim_signature_verifies_and_covers_list_headers(
    make_config: ConfigFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """With a DKIM key configured, the message verifies with dkimpy and the signature names
    From, To, Subject, Date, Message-ID, List-Id, List-Unsubscribe and List-Unsubscribe-Post."""
    key, public = _rsa_key(tmp_path)
    cfg = make_config(sqlite_url, smtp__dkim_key_file=str(key), smtp__dkim_selector="sunday")
    raw = wire(cfg)
    assert raw.startswith(b"DKIM-Signature:")
    signed = parse(raw)["DKIM-Signature"].replace(" ", "").lower()
    headers = re.search(r"h=([^;]+)", signed)
    assert headers is not None
    for name in (
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ):
        assert name in headers.group(1).split(":")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"sunday._domainkey.example.org."
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(raw, dnsfunc=dns)
    tampered = raw.replace(TOKEN.encode(), b"forged-token", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_bytes_arrive_unchanged_at_a_real_smtp_server(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> None:
    """Sent with send_single, the bytes the SMTP server records are the bytes we built (dot
    stuffing undone), and the message still parses without defects."""
    cfg = make_config(sqlite_url, smtp_port=smtp_server.port)
    raw = wire(cfg, 5)
    asyncio.run(send_single(cfg, "liens@example.org", [RECIPIENT.email], raw))
    received = smtp_server.wait_for(1)[0]
    assert received.rcpt_tos == [RECIPIENT.email]
    assert received.data.rstrip(b"\r\n") == raw.rstrip(b"\r\n")
    assert not received.parsed().defects


def test_prepared_payload_arrives_as_the_message_and_its_dkim_signature_verifies(
    make_config: ConfigFactory, sqlite_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """The DATA payload built from parts dot-stuffed once per run reaches a real SMTP server
    as the message itself: lines starting with "." in shared and personal lines intact, the
    body that of ``for_recipient``, and the DKIM signature verifies with dkimpy."""
    key, public = _rsa_key(tmp_path)
    cfg = make_config(
        sqlite_url,
        smtp_port=smtp_server.port,
        smtp__dkim_key_file=str(key),
        smtp__dkim_selector="sunday",
    )
    rendered = RenderedEmail(
        subject="Points",
        text=f".shared dot\n..two dots\n.{UNSUBSCRIBE_URL_PLACEHOLDER}\nend\n",
        html=f'<p>a</p>\n.<a href="{UNSUBSCRIBE_URL_PLACEHOLDER}">u</a>\n.end\n',
    )
    template = MessageTemplate.prepare(cfg, rendered)
    payload = template.payload_for_recipient(RECIPIENT, NOW)

    async def send() -> None:
        pool = SMTPPool(relay_settings(cfg), 1)
        try:
            assert await pool.send("liens@example.org", RECIPIENT.email, payload)
        finally:
            await pool.close()

    asyncio.run(send())
    received = smtp_server.wait_for(1)[0].data
    assert received == payload.message()
    expected = template.for_recipient(RECIPIENT, NOW)
    assert received.partition(b"\r\n\r\n")[2] == expected.partition(b"\r\n\r\n")[2]
    text = parse(received).get_body(("plain",))
    assert text is not None
    assert text.get_content().splitlines()[:3] == [".shared dot", "..two dots", "." + UNSUB]

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(received, dnsfunc=dns)


def test_unusable_dkim_key_names_the_setting(
    make_config: ConfigFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """A DKIM key file that is missing or not a PEM key stops with a ConfigError naming it."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key", encoding="utf-8")
    rendered = RenderedEmail(subject="s", html="<p>x</p>", text="x")
    for path in (bad, tmp_path / "missing.pem"):
        cfg = make_config(sqlite_url, smtp__dkim_key_file=str(path), smtp__dkim_selector="s")
        with pytest.raises(ConfigError, match=r"\[smtp\] dkim_key_file"):
            MessageTemplate.prepare(cfg, rendered)
