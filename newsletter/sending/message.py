"""Wire bytes per recipient: the hot path of a send (design decision 3).

``MessageTemplate.prepare`` does everything that is the same for every recipient once: the
headers, the MIME skeleton and the quoted-printable encoding of every body line that holds no
personal value. ``for_recipient`` then only substitutes the recipient's values into the few
lines that hold placeholders, QP-encodes those lines (``binascii.b2a_qp``, in C) and joins
bytes. Substituting before encoding matters: a QP soft line break could otherwise split a
placeholder. The bytes are built here, not by ``email.generator``, so no library re-folds
``List-Unsubscribe`` into RFC 2047 words that mail providers ignore.
"""

from __future__ import annotations

import binascii
import dataclasses
import html
import os
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr

from newsletter.config import Config
from newsletter.errors import HeaderInjectionError, InvalidInputError
from newsletter.i18n import gettext
from newsletter.sending.dkim import DKIMSigner, SharedBody, dkim_signer
from newsletter.sending.render import (
    RECIPIENT_EMAIL_PLACEHOLDER,
    UNSUBSCRIBE_URL_PLACEHOLDER,
    RenderedEmail,
)
from newsletter.sending.wire import CRLF, Payload, stuff_lines


@dataclass(frozen=True)
class Recipient:
    """Who one message goes to, with their personal unsubscribe URL (``""`` for none)."""

    email: str
    name: str = ""
    unsubscribe_url: str = ""
    # The signed ``unsubscribe+TOKEN@domain`` of the mailto: List-Unsubscribe ("": the From).
    unsubscribe_mailto: str = ""


def check_header_value(value: str, field: str) -> str:
    """Return ``value``; raise ``HeaderInjectionError`` naming ``field`` if it holds CR or LF."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise HeaderInjectionError("line breaks are not allowed in an email header", field)
    return value


def encode_address(name: str, address: str, field: str) -> str:
    """``Name <address>`` with the name RFC 2047-encoded when it is not ASCII."""
    check_header_value(name, field)
    check_header_value(address, field)
    if not address or not address.isascii() or "@" not in address:
        raise InvalidInputError("not a usable email address: %(address)r", field, address=address)
    return formataddr((name, address), charset="utf-8")


def encode_subject(subject: str) -> str:
    """The Subject value, RFC 2047-encoded (UTF-8) when not ASCII, folded at 78 columns."""
    check_header_value(subject, "subject")
    charset = "us-ascii" if subject.isascii() else "utf-8"
    return Header(subject, charset, header_name="Subject").encode(linesep="\r\n")


def encode_phrase(phrase: str) -> str:
    """A display phrase for List-Id: as is, quoted, or RFC 2047-encoded when not ASCII."""
    if phrase.isascii() and all(c.isalnum() or c in " !#$%&'*+-/=?^_`{|}~" for c in phrase):
        return phrase
    if phrase.isascii():
        return '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return Header(phrase, "utf-8").encode(linesep="\r\n")


def list_slug(name: str) -> str:
    """An ASCII label for List-Id made from the list name (``les-liens-civictech``)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = "".join(c.lower() if c.isalnum() else " " for c in ascii_name).split()
    return "-".join(words) or "newsletter"


def qp(text: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends, lines at most 76 characters."""
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", CRLF)


@dataclass(frozen=True)
class StaticRun:
    """Body lines that are the same for every recipient, QP-encoded once, as they are and
    dot-stuffed for the wire."""

    plain: bytes
    wire: bytes

    @classmethod
    def of(cls, data: bytes) -> StaticRun:
        return cls(data, stuff_lines(data))


# A body part is a sequence of pre-encoded runs and lines still holding placeholders.
Chunk = StaticRun | str


def compile_body(text: str) -> tuple[Chunk, ...]:
    """Split a body into QP-encoded static runs and (unencoded) lines with placeholders."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    chunks: list[Chunk] = []
    static: list[str] = []
    for line in text.splitlines(keepends=True):
        if UNSUBSCRIBE_URL_PLACEHOLDER in line or RECIPIENT_EMAIL_PLACEHOLDER in line:
            if static:
                chunks.append(StaticRun.of(qp("".join(static))))
                static = []
            chunks.append(line)
        else:
            static.append(line)
    if static:
        chunks.append(StaticRun.of(qp("".join(static))))
    return tuple(chunks)


def _personalise(chunks: tuple[Chunk, ...], values: dict[str, str]) -> list[StaticRun | bytes]:
    out: list[StaticRun | bytes] = []
    for chunk in chunks:
        if isinstance(chunk, StaticRun):
            out.append(chunk)
            continue
        for placeholder, value in values.items():
            chunk = chunk.replace(placeholder, value)
        out.append(qp(chunk))
    return out


@dataclass(frozen=True)
class MessageTemplate:
    """A rendered message with everything common to all recipients prepared once."""

    id_domain: str
    head_from: bytes  # From, and Subject after To
    head_subject: bytes
    head_list: bytes  # Reply-To, List-Id
    head_tail: bytes  # List-Unsubscribe-Post, MIME-Version, Content-Type, blank line
    mailto: str  # the mailto: List-Unsubscribe URI, e.g. <mailto:a@b?subject=unsubscribe>
    list_mail: bool
    text_chunks: tuple[Chunk, ...]
    html_chunks: tuple[Chunk, ...]
    text_open: StaticRun
    html_open: StaticRun
    close: StaticRun
    signer: DKIMSigner | None = None
    # The hash of the body's leading parts that hold nothing personal (text before the first
    # personal line: a third of a digest), computed once for every signature.
    shared_body: SharedBody | None = None

    @classmethod
    def prepare(
        cls, config: Config, rendered: RenderedEmail, *, list_mail: bool = True, test: bool = False
    ) -> MessageTemplate:
        """Build the shared parts. ``list_mail`` adds List-Id and List-Unsubscribe (digests and
        notices; not confirmations). ``test`` marks the subject as a preview. Raises
        ``HeaderInjectionError``/``InvalidInputError`` for a bad header value."""
        language = config.language
        subject = rendered.subject
        if test:
            _ = gettext(language)
            subject = _("[Preview]") + " " + subject
        from_address = str(config.get("list", "from_address"))
        list_name = check_header_value(str(config.get("list", "name")), "[list] name")
        from_name = str(config.get("list", "from_name")) or list_name
        reply_to = str(config.get("list", "reply_to"))
        id_domain = check_header_value(str(config.get("list", "id_domain")), "[list] id_domain")
        mailto = from_address
        boundary = "=_sunday_" + os.urandom(12).hex()

        def line(name: str, value: str) -> bytes:
            return f"{name}: {value}".encode("ascii") + CRLF

        head_list = b""
        if reply_to:
            head_list += line("Reply-To", encode_address("", reply_to, "[list] reply_to"))
        tail = b""
        if list_mail:
            head_list += line(
                "List-Id", f"{encode_phrase(list_name)} <{list_slug(list_name)}.{id_domain}>"
            )
            tail += line("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        tail += line("MIME-Version", "1.0")
        tail += line("Content-Type", f'multipart/alternative; boundary="{boundary}"') + CRLF
        part = (
            "Content-Type: text/{}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        template = cls(
            id_domain=id_domain,
            head_from=line("From", encode_address(from_name, from_address, "[list] from_address")),
            head_subject=line("Subject", encode_subject(subject)),
            head_list=head_list,
            head_tail=tail,
            mailto=f"<mailto:{mailto}?subject=unsubscribe>",
            list_mail=list_mail,
            text_chunks=compile_body(rendered.text),
            html_chunks=compile_body(rendered.html),
            text_open=StaticRun.of(f"--{boundary}\r\n{part.format('plain')}".encode("ascii")),
            html_open=StaticRun.of(f"\r\n--{boundary}\r\n{part.format('html')}".encode("ascii")),
            close=StaticRun.of(f"\r\n--{boundary}--\r\n".encode("ascii")),
            signer=dkim_signer(config),
        )
        if template.signer is None:
            return template
        skeleton: list[Chunk] = [template.text_open, *template.text_chunks, template.html_open]
        skeleton += [*template.html_chunks, template.close]
        shared: list[bytes] = []
        for piece in skeleton:
            if not isinstance(piece, StaticRun):
                break
            shared.append(piece.plain)
        return dataclasses.replace(template, shared_body=SharedBody.of(shared))

    def for_recipient(self, recipient: Recipient, now: datetime) -> bytes:
        """The full wire bytes (CRLF) of this message for ``recipient``, dated ``now``.

        Raises ``HeaderInjectionError`` for CR/LF in the recipient's values and
        ``InvalidInputError`` for an unusable address or a list mail without unsubscribe URL.
        """
        head, body = self._parts(recipient, now)
        message = head + b"".join([p.plain if isinstance(p, StaticRun) else p for p in body])
        if self.signer is not None:
            message = self.signer.sign(message) + message
        return message

    def payload_for_recipient(self, recipient: Recipient, now: datetime) -> Payload:
        """What ``for_recipient`` returns, as the DATA payload (``Payload``): the shared
        body runs were dot-stuffed once, so only this recipient's lines are. Raises as
        ``for_recipient`` does."""
        head, body = self._parts(recipient, now)
        signature = b""
        if self.signer is not None:
            plain = [p.plain if isinstance(p, StaticRun) else p for p in body]
            signature = stuff_lines(self.signer.sign_parts(head, plain, self.shared_body))
        wire = [p.wire if isinstance(p, StaticRun) else stuff_lines(p) for p in body]
        return Payload(b"".join([signature, stuff_lines(head), *wire, b".\r\n"]))

    def _parts(self, recipient: Recipient, now: datetime) -> tuple[bytes, list[StaticRun | bytes]]:
        """The header block (with its blank line) and the body's parts for ``recipient``."""
        to = encode_address(recipient.name, recipient.email, "recipient")
        url = check_header_value(recipient.unsubscribe_url, "unsubscribe URL")
        if self.list_mail and not url:
            raise InvalidInputError("a list message needs an unsubscribe URL", "recipient")
        message_id = f"<{os.urandom(16).hex()}@{self.id_domain}>"
        head = [
            self.head_from,
            b"To: " + to.encode("ascii") + CRLF,
            self.head_subject,
            b"Date: " + format_datetime(now).encode("ascii") + CRLF,
            b"Message-ID: " + message_id.encode("ascii") + CRLF,
            self.head_list,
        ]
        if self.list_mail:
            mailto = self.mailto
            if recipient.unsubscribe_mailto:
                address = check_header_value(recipient.unsubscribe_mailto, "unsubscribe mailto")
                mailto = f"<mailto:{address}?subject=unsubscribe>"
            head.append(f"List-Unsubscribe: <{url}>,\r\n {mailto}\r\n".encode())
        head.append(self.head_tail)
        body: list[StaticRun | bytes] = [self.text_open]
        plain = {UNSUBSCRIBE_URL_PLACEHOLDER: url, RECIPIENT_EMAIL_PLACEHOLDER: recipient.email}
        body += _personalise(self.text_chunks, plain)
        body.append(self.html_open)
        escaped = {key: html.escape(value, quote=True) for key, value in plain.items()}
        body += _personalise(self.html_chunks, escaped)
        body.append(self.close)
        return b"".join(head), body
