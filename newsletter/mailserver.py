"""An aiosmtpd protocol (SMTP or LMTP) served in the running asyncio loop.

The embedded mail catcher and the LMTP bounce intake both listen on loopback inside the
``serve`` process; this is their one way of starting, learning the port and stopping.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod

from aiosmtpd.smtp import SMTP


class LoopServer(ABC):
    """Serves ``make_protocol()`` on ``host``:``port`` (0 picks a free port, read back after
    ``start``) in the running loop. Subclasses say which protocol, with which handler."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server: asyncio.Server | None = None

    @abstractmethod
    def make_protocol(self, loop: asyncio.AbstractEventLoop) -> SMTP:
        """The protocol for one connection (an ``SMTP`` or ``LMTP`` with its handler)."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        factory = functools.partial(self.make_protocol, loop)
        self.server = await loop.create_server(factory, host=self.host, port=self.port)
        sockets = self.server.sockets
        if sockets and self.port == 0:
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
