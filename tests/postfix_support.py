"""A throwaway Postfix on loopback (Debian's ``postfix`` package, already installed for
``smtp-sink``): its own ``config_directory``, queue and log in a temp folder, ``master -d`` in
the foreground. It relays everything to ``relay_port`` and delivers the bounce domain's mail
(the DSNs its own ``bounce`` service writes) over LMTP to ``lmtp_port``.

Postfix's master must run as root (it drops to the ``postfix`` user itself).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness import free_port

DAEMONS = Path("/usr/lib/postfix/sbin")
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixUnavailable(RuntimeError):
    pass


class Postfix:
    """``master -d`` with a config of its own, listening on 127.0.0.1:``port``."""

    def __init__(self, relay_port: int, lmtp_port: int, bounce_domain: str) -> None:
        if os.geteuid() != 0:
            raise PostfixUnavailable("Postfix's master must run as root")
        if not (DAEMONS / "master").exists():
            raise PostfixUnavailable("postfix is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="postfix-", dir="/tmp"))
        os.chmod(self.dir, 0o755)  # the postfix user must reach its queue
        self.port = free_port()
        self.relay_port, self.lmtp_port, self.domain = relay_port, lmtp_port, bounce_domain
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.dir / "conf"

    @property
    def maillog(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def _write_config(self) -> None:
        for sub in ("conf", "queue", "data"):
            (self.dir / sub).mkdir()
        for name in ("postfix-files", "dynamicmaps.cf"):
            shutil.copy(Path("/etc/postfix") / name, self.conf / name)
        for name in ("postfix-files.d", "dynamicmaps.cf.d"):
            if (Path("/etc/postfix") / name).is_dir():
                shutil.copytree(Path("/etc/postfix") / name, self.conf / name)
        d = self.dir
        (self.conf / "main.cf").write_text(
            f"""compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = {DAEMONS}
meta_directory = {d}/conf
shlib_directory = no
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test.localhost
mydomain = test.localhost
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{self.relay_port}
transport_maps = inline:{{ {self.domain}=lmtp:inet:127.0.0.1:{self.lmtp_port} }}
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
smtputf8_enable = no
biff = no
alias_maps =
alias_database =
local_transport = error:no local delivery
delay_warning_time = 0h
# A 4xx bounces at once (Action: failed, Status: 4.x.x) instead of waiting days; a DSN the
# intake answers 451 is retried (within seconds) like any deferred mail.
maximal_queue_lifetime = 0
bounce_queue_lifetime = 1h
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""
        )
        (self.conf / "master.cf").write_text(MASTER_CF.format(port=self.port))

    def start(self) -> Postfix:
        self._write_config()
        env = dict(os.environ, MAIL_CONFIG=str(self.conf))
        install = subprocess.run(
            [
                str(DAEMONS / "post-install"),
                f"config_directory={self.conf}",
                f"daemon_directory={DAEMONS}",
                "command_directory=/usr/sbin",
                f"queue_directory={self.dir}/queue",
                f"data_directory={self.dir}/data",
                f"meta_directory={self.conf}",
                "mail_owner=postfix",
                "setgid_group=postdrop",
                "create-missing",
            ],
            env=env,
            capture_output=True,
            timeout=60,
        )
        if install.returncode != 0:
            raise PostfixUnavailable(f"post-install failed: {install.stderr.decode()[-300:]}")
        shutil.chown(self.dir / "data", "postfix")
        os.chmod(self.dir / "data", 0o700)
        self.process = subprocess.Popen(
            [str(DAEMONS / "master"), "-d", "-c", str(self.conf)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostfixUnavailable(f"postfix master exited: {self.maillog[-500:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
            ):
                if sock.recv(100).startswith(b"220"):
                    return self
            time.sleep(0.05)
        raise PostfixUnavailable(f"postfix did not listen in time: {self.maillog[-500:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
