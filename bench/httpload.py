"""A lean HTTP/1.1 load generator: raw keep-alive connections on asyncio, no HTTP library.

httpx tops out near 200 requests/s on the benchmark machine, so with it a benchmark measures
its client. This one writes each request as bytes and parses only the status line and
``Content-Length`` of the answer (about 20 µs of CPU per request), on uvloop when installed.

Two ways to drive it:
- closed loop (``rate=0``): each of C connections sends its next request as soon as the
  previous answer arrived: the server's maximum rate;
- open loop (``rate=R``): requests are due at a fixed rate, whatever the server does, and each
  latency counts from the moment the request was due (no coordinated omission).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    paths_ok: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class HTTPError(RuntimeError):
    pass


class Connection:
    """One keep-alive connection: send a request, read one response (status, body skipped)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise HTTPError("chunked answers are not supported by this client")
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def post_request(host: str, port: int, path: str, body: bytes, content_type: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench-httpload\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("ascii") + body


async def run_load(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    body: bytes,
    content_type: str = "application/x-www-form-urlencoded",
    connections: int = 32,
    rate: float = 0.0,
    max_seconds: float = 60.0,
    until: Callable[[], bool] | None = None,
) -> LoadResult:
    """POST ``body`` once to each of ``paths`` over ``connections`` keep-alive connections.

    Stops when the paths run out, after ``max_seconds``, or when ``until()`` turns true
    (checked between requests). ``rate`` > 0 makes it open-loop at that many requests/s."""
    result = LoadResult()
    jobs: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()
    pending = deque(paths)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stop_at = started + max_seconds

    def stopping() -> bool:
        return loop.time() >= stop_at or (until is not None and until())

    async def pace() -> None:
        """Open loop: make one request due every 1/rate s; workers take them in order."""
        due = loop.time()
        while pending and not stopping():
            jobs.put_nowait((pending.popleft(), due))
            due += 1.0 / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
        for _ in range(connections):
            jobs.put_nowait(None)

    async def next_job() -> tuple[str, float] | None:
        if rate > 0:
            return await jobs.get()
        if pending and not stopping():
            return pending.popleft(), loop.time()
        return None

    async def worker() -> None:
        connection = await Connection.open(host, port)
        try:
            while (job := await next_job()) is not None:
                path, due = job
                status = await connection.request(
                    post_request(host, port, path, body, content_type)
                )
                result.latencies.append(loop.time() - due)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.paths_ok.append(path)
        finally:
            connection.close()

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    if rate > 0:
        tasks.append(asyncio.create_task(pace()))
    await asyncio.gather(*tasks)
    result.elapsed = loop.time() - started
    return result


def run(coroutine_factory: Callable[[], object]) -> LoadResult:
    """Run a load on uvloop when it is installed (less client CPU), else on asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine_factory())  # type: ignore[arg-type]
    return uvloop.run(coroutine_factory())  # type: ignore[arg-type,no-any-return]
