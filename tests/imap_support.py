"""A throwaway Dovecot IMAP server on loopback for the IMAP poll tests (Debian's
``dovecot-imapd``, installed by ``.ci/run``): its own config, users and Maildirs in a temp
folder, one user ``bounces`` with a plain password; no TLS, or with ``tls=True`` a self-signed
certificate for 127.0.0.1 (made with ``openssl``) offered by STARTTLS on ``port`` and by
implicit TLS on ``tls_port``."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import IN_CI, free_port

USER, PASSWORD = "bounces", "imap-test-password"


class DovecotUnavailable(RuntimeError):
    pass


def _dovecot() -> str:
    for candidate in (shutil.which("dovecot"), "/usr/sbin/dovecot"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise DovecotUnavailable("dovecot is not installed (apt-get install dovecot-imapd)")


class Dovecot:
    """``dovecot -F`` with a config in a temp folder, listening on 127.0.0.1:``port`` (and on
    127.0.0.2, an address its certificate does not name)."""

    def __init__(self, *, tls: bool = False) -> None:
        self.binary = _dovecot()
        self.dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def cert(self) -> Path:
        """The server's self-signed certificate (PEM), to trust in a client's SSL context."""
        return self.dir / "cert.pem"

    def _make_certificate(self) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise DovecotUnavailable("openssl is not installed: no certificate for TLS")
        key = self.dir / "key.pem"
        subprocess.run(
            [
                openssl,
                *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-keyout", str(key), "-out", str(self.cert), "-subj", "/CN=127.0.0.1"),
                *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        key.chmod(0o600)

    def _ssl_settings(self) -> str:
        if not self.tls:
            return "ssl = no"
        self._make_certificate()
        return (
            f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{self.dir / 'key.pem'}\n"
            "ssl_min_protocol = TLSv1.2"
        )

    def _identities(self) -> tuple[str, str, int, int]:
        """(internal user, login user, mail uid, mail gid): Dovecot's own users when run as
        root, the current user otherwise."""
        if os.geteuid() == 0:
            internal = pwd.getpwnam("dovecot")
            login = pwd.getpwnam("dovenull").pw_name
            return internal.pw_name, login, internal.pw_uid, internal.pw_gid
        me = pwd.getpwuid(os.geteuid())
        return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid

    def start(self) -> Dovecot:
        try:
            internal, login, uid, gid = self._identities()
        except KeyError as exc:
            raise DovecotUnavailable(f"no dovecot system user: {exc}") from None
        for sub in ("run", "state", "mail"):
            (self.dir / sub).mkdir()
        (self.dir / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        os.chmod(self.dir, 0o755)
        os.chown(self.dir / "mail", uid, gid)
        config = self.dir / "dovecot.conf"
        config.write_text(
            f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
listen = 127.0.0.1, 127.0.0.2
protocols = imap
{self._ssl_settings()}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {min(uid, 100) or 1}
mail_location = maildir:{self.dir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1, 127.0.0.2
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1, 127.0.0.2
    port = {self.tls_port}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
        )
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise DovecotUnavailable(f"dovecot exited: {err.strip()[:500]} {self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
            ):
                if sock.recv(100).startswith(b"* OK"):
                    return self
            time.sleep(0.05)
        raise DovecotUnavailable(f"dovecot did not listen in time: {self.log()}")

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace")[-1000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def running_dovecot(*, tls: bool = False) -> Iterator[Dovecot]:
    """A started ``Dovecot`` for a fixture to yield from, stopped afterwards; a test fails in
    CI when it cannot start, and is skipped with the reason elsewhere."""
    server = Dovecot(tls=tls)
    what = "Dovecot with TLS" if tls else "Dovecot"
    try:
        server.start()
    except (DovecotUnavailable, OSError) as exc:
        server.stop()
        if IN_CI:
            pytest.fail(f"{what} is required in CI but could not start: {exc}")
        pytest.skip(f"IMAP tests skipped: {what} could not start ({exc})")
    yield server
    server.stop()
