"""A real HTTP server on loopback serving the pages and feeds the link-intake tests read.

It listens on 127.0.0.2 (any 127/8 address is loopback on Linux), so a test can allow exactly
that address through ``[intake] allow_networks`` and still see a redirect to 127.0.0.1 refused.
Routes are a dict the test may change between two requests (a feed that gains items).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.2"
BIG_BYTES = 5 * 1024 * 1024


@dataclass
class Reply:
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow site)
    etag: str = ""  # answer 304 to a matching If-None-Match


Route = Callable[["Handler"], Reply]


class Handler(BaseHTTPRequestHandler):
    server: PageServer

    def do_GET(self) -> None:
        self.server.requests.append(
            (self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        )
        route = self.server.routes.get(self.path.split("?", 1)[0])
        reply = route(self) if route else Reply(404, "text/html", b"<h1>Not found</h1>")
        time.sleep(reply.delay)
        if reply.etag and self.headers.get("If-None-Match") == reply.etag:
            self.send_response(304)
            self.send_header("ETag", reply.etag)
            self.end_headers()
            return
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        if reply.etag:
            self.send_header("ETag", reply.etag)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        # The fetcher may stop reading at its cap.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def page(
        self,
        path: str,
        body: bytes | str,
        content_type: str = "text/html; charset=utf-8",
        **kw: object,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = lambda _h: Reply(content_type=content_type, body=data, **kw)  # type: ignore[arg-type]

    def redirect(self, path: str, location: str) -> None:
        self.routes[path] = lambda _h: Reply(302, "text/html", b"", {"Location": location})


@contextmanager
def page_server() -> Iterator[PageServer]:
    server = PageServer(HOST)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        install_pages(server)
        yield server
    finally:
        server.shutdown()
        server.server_close()


PAGES = Path(__file__).resolve().parent / "pages"
OG_PAGE = (PAGES / "opengraph.html").read_bytes()
JSONLD_PAGE = (PAGES / "jsonld.html").read_bytes()
TITLE_ONLY_PAGE = (PAGES / "title_only.html").read_bytes()
LATIN1_PAGE = (PAGES / "latin1.html").read_bytes()  # Latin-1 bytes, no charset anywhere


def big_page() -> bytes:
    head = (
        '<html><head><meta charset="utf-8">'
        '<meta property="og:title" content="Un très long rapport">'
        '<meta property="og:description" content="Le rapport annuel, en entier."></head><body>'
    ).encode()
    filler = b"<p>" + b"x" * 1000 + b"</p>\n"
    return head + filler * (BIG_BYTES // len(filler) + 1) + b"</body></html>"


def install_pages(server: PageServer) -> None:
    server.page("/og", OG_PAGE)
    server.page("/jsonld", JSONLD_PAGE)
    server.page("/title-only", TITLE_ONLY_PAGE, "text/html")
    server.page("/latin1", LATIN1_PAGE, "text/html")
    server.page("/big", big_page())
    server.page("/pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n", "application/pdf")
    server.routes["/slow"] = lambda _h: Reply(body=OG_PAGE, delay=3.0)
    server.routes["/host"] = lambda h: Reply(
        body=f"<title>{h.headers.get('Host')}</title>".encode()
    )
    for hop in range(1, 7):
        target = f"/hop/{hop - 1}" if hop > 1 else "/og"
        server.redirect(f"/hop/{hop}", target)
    server.redirect("/to-loopback", f"http://127.0.0.1:{server.server_address[1]}/og")
    server.redirect("/to-file", "file:///etc/passwd")
    server.redirect("/tracked", "/og?utm_source=newsletter&utm_medium=email&fbclid=abc&id=7")
