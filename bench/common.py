"""Shared pieces of the benchmarks: Postfix's smtp-sink and smtp-source on loopback, the data
(a 40-link French issue, N subscribers inserted in bulk), child processes measured from the
outside (peak RSS via ``wait4``), and a throwaway PostgreSQL cluster (from ``tests.harness``).

Everything listens on 127.0.0.1 only. Nothing here touches port 25.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POSTFIX_HELP = (
    "Postfix's smtp-sink/smtp-source are not installed. On Debian/Ubuntu install them without\n"
    "configuring a running MTA:\n"
    "  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections\n"
    "  DEBIAN_FRONTEND=noninteractive apt-get install -y postfix\n"
    "(`No configuration` leaves no MTA listening on port 25.)"
)
BENCH_SECRET = "bench-secret-key-not-for-production-0123456789abcdef"


def find_postfix_tool(name: str) -> str | None:
    """The path of smtp-sink / smtp-source, or None when Postfix is not installed."""
    return shutil.which(name) or next(
        (
            p
            for p in (f"/usr/sbin/{name}", f"/usr/lib/postfix/sbin/{name}")
            if os.access(p, os.X_OK)
        ),
        None,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state on this machine (from ``ss -ltn``)."""
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=False).stdout
    ports: set[int] = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            ports.add(int(fields[3].rsplit(":", 1)[1]))
    return ports


# --- smtp-sink / smtp-source -------------------------------------------------------------------

_COUNTER = re.compile(rb"mesg=(\d+)")


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:<free port>, counting messages (``-c``) into a file.

    The counter is read from the file's tail, so reading it costs the measured run nothing.
    """

    def __init__(self, max_connections: int = 256) -> None:
        tool = find_postfix_tool("smtp-sink")
        if tool is None:
            raise FileNotFoundError(POSTFIX_HELP)
        self.tool = tool
        self.port = free_port()
        self.max_connections = max_connections
        self.dir = Path(tempfile.mkdtemp(prefix="bench-sink-"))
        self.out_path = self.dir / "counter.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SmtpSink:
        argv = [self.tool, "-c", "-m", str(self.max_connections)]
        if os.geteuid() == 0:  # smtp-sink refuses to run as root without dropping privileges
            argv += ["-u", "nobody"]
        argv += [f"127.0.0.1:{self.port}", "1024"]
        out = self.out_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"smtp-sink exited: {self.out_path.read_text()}") from None
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start listening")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def messages(self) -> int:
        """Messages accepted so far (the last ``mesg=`` the sink printed)."""
        with self.out_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            found = _COUNTER.findall(fh.read())
        return int(found[-1]) if found else 0

    def wait_for(self, count: int, timeout: float = 10.0) -> int:
        """Wait until the sink counted at least ``count`` messages; return the count."""
        deadline = time.monotonic() + timeout
        seen = self.messages()
        while seen < count and time.monotonic() < deadline:
            time.sleep(0.05)
            seen = self.messages()
        return seen


@dataclass(frozen=True)
class Measured:
    """One measured phase: messages, seconds, and the sender's peak RSS when known."""

    name: str
    messages: int
    seconds: float
    peak_rss_kb: int = 0
    note: str = ""
    # CPU time (user + system) of the measured process(es), from ``wait4``; 0 when unknown.
    cpu_seconds: float = 0.0

    @property
    def cpu_us_per_message(self) -> float:
        return self.cpu_seconds / self.messages * 1e6 if self.messages else 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def run_smtp_source(sink: SmtpSink, *, count: int, size: int, sessions: int) -> Measured:
    """smtp-source with persistent sessions (``-d``) and ``size`` payload bytes per message."""
    tool = find_postfix_tool("smtp-source")
    if tool is None:
        raise FileNotFoundError(POSTFIX_HELP)
    before = sink.messages()
    argv = [tool, "-d", "-l", str(size), "-m", str(count), "-s", str(sessions), "-N"]
    argv += ["-f", "bench@example.org", "-t", "reader@example.org", f"127.0.0.1:{sink.port}"]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=3600)
    seconds = time.perf_counter() - started
    got = sink.wait_for(before + count) - before
    return Measured("smtp-source", got, seconds, note=f"{sessions} persistent sessions")


# --- child processes measured from outside -----------------------------------------------------


def spawn(argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def reap(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, int, bytes, float]:
    """Wait for ``proc`` (killing it after ``timeout`` s); return (exit status, peak RSS in KB
    from ``wait4``'s rusage of that very process, its output, its CPU seconds: user + system,
    the steadier measure on a shared machine)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    output = bytearray()
    os.set_blocking(proc.stdout.fileno(), False)
    while True:
        chunk = proc.stdout.read()
        if chunk:
            output += chunk
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            output += b"\n[bench] killed after timeout\n"
            break
        time.sleep(0.05)
    rest = proc.stdout.read()
    if rest:
        output += rest
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = float(usage.ru_utime + usage.ru_stime)
    return proc.returncode, int(usage.ru_maxrss), bytes(output), cpu


# --- PostgreSQL --------------------------------------------------------------------------------


def start_postgres() -> Any:
    """A throwaway cluster on a free loopback port (the test harness's), or raise."""
    from tests.harness import PostgresCluster

    cluster = PostgresCluster()
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


# --- data --------------------------------------------------------------------------------------

_TITLES = [
    ("« Civic Tech » : des applis pour doper la démocratie locale", "Le Monde"),
    ("200 candidats, 50 000 électeurs : LaPrimaire.org poursuit sa route", "We Demain"),
    ("Politique : la révolution citoyenne qui vient", "Contrepoints"),
    ("Budget participatif : Paris ouvre le vote aux collégiens", "Le Parisien"),
    ("Open data : les communes à la traîne, malgré la loi Lemaire", "La Gazette des communes"),
    ("Décider ensemble : ce que change la pétition en ligne", "Libération"),
    ("Des « hackathons » citoyens pour réécrire la loi", "Usbek & Rica"),
    ("Votation numérique : l'Estonie, modèle ou exception ?", "Rue89"),
    ("Quand les élus découvrent le débat sur Twitter 🐦", "L'Obs"),
    ("Transparence : le registre des lobbies enfin accessible", "Mediapart"),
]
_SENTENCES = [
    "Elles s'appellent Fluicity, Vooter ou Neocity : ces jeunes pousses veulent rendre la parole "
    "aux habitants entre deux élections, sans attendre le prochain conseil de quartier.",
    "À Bougival, la mairie teste depuis l'automne une application où chacun signale un "
    "lampadaire éteint, propose un banc ou vote pour le prochain aménagement de la place.",
    "Les fondateurs assument un pari : « un citoyen qui donne son avis une fois par semaine "
    "vote plus volontiers en mars », résume l'une des porteuses du projet.",
    "Reste une question que personne n'a tranchée : qui paie l'outil, et à qui appartiennent "
    "les données ainsi récoltées ? Les collectivités hésitent encore. 🤔",
    "Le texte, amendé plus de 600 fois en ligne, a été remis au ministère avec un tableau de "
    "suivi : chaque contribution reçoit une réponse, même négative.",
    "Dans les quartiers où la participation électorale est la plus faible, l'outil n'a séduit "
    "qu'une poignée d'habitants ; l'équipe mise désormais sur des ateliers en présentiel.",
    "Côté élus, l'enthousiasme est réel mais prudent : « on ne gouverne pas à coups de "
    "sondages », rappelle un adjoint au maire, qui reconnaît pourtant avoir changé d'avis.",
    "Le code source est publié sous licence libre, ce qui permet à d'autres villes — Grenoble, "
    "Nantes, Strasbourg — de reprendre la plateforme sans repartir de zéro. ✨",
    "Les chercheurs interrogés notent un biais tenace : les contributeurs sont plus âgés, plus "
    "diplômés et plus masculins que la moyenne des électeurs.",
    "Prochaine étape annoncée pour septembre : un « jury citoyen » tiré au sort qui devra "
    "trancher entre les trois projets arrivés en tête du vote.",
]


def issue_links(count: int = 40) -> list[dict[str, Any]]:
    """``count`` links in French (accents, « guillemets », emoji) with excerpts of 2-3
    sentences, each distinct (title numbered, excerpt combining different sentences)."""
    links: list[dict[str, Any]] = []
    for i in range(count):
        title, source = _TITLES[i % len(_TITLES)]
        if i >= len(_TITLES):
            title = f"{title} (suite n° {i // len(_TITLES) + 1})"
        picks = [_SENTENCES[(i + k * 3) % len(_SENTENCES)] for k in range(2 + i % 2)]
        links.append(
            {
                "url": f"https://www.example-presse.fr/{2026 - i % 3}/article-{i + 1}-civic-tech",
                "title": title,
                "source": source,
                "excerpt": " ".join(picks),
                "tags": ("civictech", "démocratie") if i % 2 else ("open data",),
            }
        )
    return links


ISSUE_INTRO = (
    "Bonjour à toutes et à tous ! Les liens de la semaine arrivent un peu en retard — l'été, "
    "les vacances… 😉 Voici donc les liens des trois dernières semaines. Le rythme sera "
    "probablement perturbé jusqu'en septembre : merci de votre patience."
)


def insert_subscribers(
    engine: Any, n: int, *, chunk: int = 20_000, first: int = 0, status: str = "active"
) -> None:
    """Insert ``n`` subscribers (active by default) in bulk (Core executemany, chunks of
    ``chunk``), their addresses numbered from ``first``."""
    from sqlalchemy import insert

    from subscribers.models import Subscriber, SubscriberStatus

    now = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    table = Subscriber.__table__
    for start in range(first, first + n, chunk):
        rows = [
            {
                "email": f"lecteur.{i:07d}@example.org",
                "email_key": f"lecteur.{i:07d}@example.org",
                "name": f"Lectrice n°{i}" if i % 2 else "",
                "status": SubscriberStatus(status),
                "source": "bench",
                "language": "fr",
                "created_at": now,
                "confirmed_at": now,
                "soft_bounces": 0,
            }
            for i in range(start, min(first + n, start + chunk))
        ]
        with engine.begin() as conn:
            conn.execute(insert(table), rows)


def write_dkim_key(folder: Path) -> Path:
    """A fresh 2048-bit RSA private key (PEM, unencrypted), as an operator would configure."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def write_config(
    folder: Path,
    *,
    db_url: str,
    smtp_port: int,
    max_connections: int,
    dkim_key: Path | None = None,
) -> Path:
    """A ``newsletter.toml`` for the bench: relay = the sink, no rate limit, no TLS; every
    message DKIM-signed with ``dkim_key`` when given."""
    from newsletter.config import render_config_file

    values = {
        "list": {
            "name": "Les liens CivicTech",
            "id_domain": "liens.example.org",
            "from_address": "liens@example.org",
            "from_name": "Les liens CivicTech",
            "postal_address": "12 rue de la Paix, 75002 Paris, France",
        },
        "web": {"base_url": "https://liens.example.org", "secret_key": BENCH_SECRET},
        "database": {"url": db_url},
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp_port,
            "tls": "none",
            "timeout": 30.0,
            "max_connections": max_connections,
            "rate": 0.0,
        },
        "schedule": {"enabled": False},
    }
    if dkim_key is not None:
        values["smtp"] |= {"dkim_key_file": str(dkim_key), "dkim_selector": "bench"}
    path = folder / "newsletter.toml"
    path.write_text(render_config_file(values), encoding="utf-8")
    return path


def clean_env(config_path: Path) -> dict[str, str]:
    """The environment for a child: our config, no stray NEWSLETTER_* overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_CONFIG"] = str(config_path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env
