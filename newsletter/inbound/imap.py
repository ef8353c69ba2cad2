"""The IMAP bounce mailbox, for operators whose bounces land in a hosted mailbox.

Only what the poll needs: open the folder (its UIDVALIDITY), list UIDs above the last one
read, fetch one message without marking it read, and move one to another folder. Nothing here
ever deletes a message except as the second half of a move.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from dataclasses import dataclass
from types import TracebackType

from newsletter.config import Config
from newsletter.errors import MailboxError

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCHED_UID = re.compile(rb"UID (\d+)")


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    tls: str  # none, starttls, tls
    user: str
    password: str
    folder: str
    processed_folder: str
    timeout: float = 30.0

    @property
    def name(self) -> str:
        """Identifies the polled folder (the key of its cursor)."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"[:500]


def imap_settings(config: Config) -> ImapSettings | None:
    """The ``[bounces] imap_*`` settings, or None when no IMAP host is set."""
    host = str(config.get("bounces", "imap_host"))
    if not host:
        return None
    return ImapSettings(
        host=host,
        port=int(config.get("bounces", "imap_port")),
        tls=str(config.get("bounces", "imap_tls")),
        user=str(config.get("bounces", "imap_user")),
        password=str(config.get("bounces", "imap_password")),
        folder=str(config.get("bounces", "imap_folder")) or "INBOX",
        processed_folder=str(config.get("bounces", "imap_processed_folder")) or "Processed",
    )


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailbox:
    """One logged-in IMAP connection with ``settings.folder`` selected (a context manager)."""

    def __init__(self, settings: ImapSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.client: imaplib.IMAP4 | None = None
        self.uidvalidity = 0
        self.capabilities: set[bytes] = set()

    def __enter__(self) -> Mailbox:
        s = self.settings
        try:
            if s.tls == "tls":
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    s.host, s.port, ssl_context=self.ssl_context, timeout=s.timeout
                )
            else:
                client = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
                if s.tls == "starttls":
                    client.starttls(self.ssl_context)
            self.client = client
            client.login(s.user, s.password)
            # The capabilities before login are not those after (MOVE, UIDPLUS).
            typ, data = client.capability()
            self.capabilities = set(b" ".join(d for d in data if isinstance(d, bytes)).split())
            typ, data = client.select(_quote(s.folder))
            self._check(typ, data, "select")
            self.uidvalidity = self._uidvalidity()
        except (imaplib.IMAP4.error, OSError) as exc:
            self.close()
            raise MailboxError("cannot read the IMAP mailbox: %(error)s", error=str(exc)) from None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.client is None:
            return
        with contextlib.suppress(imaplib.IMAP4.error, OSError):  # going away anyway
            self.client.logout()
        self.client = None

    def _imap(self) -> imaplib.IMAP4:
        assert self.client is not None, "use Mailbox as a context manager"
        return self.client

    @staticmethod
    def _check(typ: str, data: object, what: str) -> None:
        if typ != "OK":
            raise MailboxError("IMAP %(what)s failed: %(data)s", what=what, data=str(data)[:200])

    def _uidvalidity(self) -> int:
        typ, data = self._imap().response("UIDVALIDITY")
        if typ == "UIDVALIDITY" and data and data[0]:
            return int(data[0])
        typ, data = self._imap().status(_quote(self.settings.folder), "(UIDVALIDITY)")
        match = _UIDVALIDITY.search(b" ".join(d for d in data if isinstance(d, bytes)))
        return int(match.group(1)) if match else 0

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs of the messages above ``last_uid``, in order."""
        try:
            typ, data = self._imap().uid("SEARCH", f"UID {last_uid + 1}:*")
        except (imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError("IMAP search failed: %(error)s", error=str(exc)) from None
        self._check(typ, data, "search")
        found = b" ".join(d for d in data if isinstance(d, bytes)).split()
        # "n:*" always matches the highest UID, even one below n.
        return sorted(uid for uid in map(int, found) if uid > last_uid)

    def fetch(self, uid: int) -> bytes | None:
        """The whole message ``uid`` (left unread), or None when it is gone."""
        try:
            typ, data = self._imap().uid("FETCH", str(uid), "(BODY.PEEK[])")
        except (imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError("IMAP fetch failed: %(error)s", error=str(exc)) from None
        self._check(typ, data, "fetch")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return bytes(item[1])
        return None

    def move(self, uid: int, folder: str) -> None:
        """Move message ``uid`` to ``folder`` (created when missing)."""
        client = self._imap()
        try:
            client.create(_quote(folder))  # fails harmlessly when it exists
            if b"MOVE" in self.capabilities:
                typ, data = client.uid("MOVE", str(uid), _quote(folder))
                self._check(typ, data, "move")
                return
            # RFC 6851's fallback: copy, flag, then expunge only that message (UIDPLUS).
            typ, data = client.uid("COPY", str(uid), _quote(folder))
            self._check(typ, data, "copy")
            client.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
            if b"UIDPLUS" in self.capabilities:
                client.uid("EXPUNGE", str(uid))
            else:
                client.expunge()
        except (imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError("IMAP move failed: %(error)s", error=str(exc)) from None
