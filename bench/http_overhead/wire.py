"""One uvicorn worker's HTTP protocol driven without sockets: the served path, deterministically.

``instructions.py --served`` counts a real worker under wrk load; on a loaded machine how many
requests each turn of the event loop serves varies, and with it the loop's share per request
(about +-10,000 instructions from run to run). This drives the same protocol (Bastion's for
Bastion's apps, stock httptools for the bare ones, as ``bench.serve`` picks), the same uvicorn
configuration and the app after its lifespan startup, on a real event loop, but through an
in-memory transport: one keep-alive connection, one request at a time, each answer awaited.
Parsing, the app, the response start (header validation included) and the writes are all
there; only the sockets and the kernel are not. The event loop's clock is the driver's: it
advances by :data:`STEP` per request, so timers (the app's background jobs, uvicorn's keep-alive
timeout) fire as they would at that rate, whatever the speed of the run (on the wall clock, a
slower valgrind run gave them a larger share per request, +-20,000 instructions). uvicorn's
``Date`` header is absent (the server's tick sets it).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.lifespan.on import LifespanOn
from uvicorn.server import ServerState

from bench.serve import protocol_for

#: Loop time per request, in seconds: about the rate a served worker reaches.
STEP = 1 / 8000
REQUEST = b"GET /bench HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"


class _Transport(asyncio.Transport):
    """Records that something was written; the bytes are dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: Any) -> None:  # noqa: ARG002 - only counted
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Wire:
    """A started app behind one protocol instance; :meth:`requests` serves ``n`` requests."""

    def __init__(self, app: str) -> None:
        kind = "bastion" if app.startswith("bastion") else "stock"
        self.config = uvicorn.Config(
            f"bench.http_overhead.apps:{app}",
            factory=True,
            http=protocol_for(kind),
            log_level="warning",
            access_log=False,
            server_header=False,
        )
        self.config.load()
        self.lifespan = LifespanOn(self.config)
        self.transport = _Transport()
        self.protocol: Any = None
        self.now = 0.0

    def _time(self) -> float:
        return self.now

    async def start(self) -> None:
        await self.lifespan.startup()
        # The driver's clock from here to stop() (start-up and shutdown may wait on timers).
        loop = asyncio.get_running_loop()
        self.now = loop.time()
        loop.time = self._time  # type: ignore[method-assign]
        self.protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=ServerState(),
            app_state=self.lifespan.state,
        )
        self.protocol.connection_made(self.transport)

    async def requests(self, n: int) -> None:
        transport, protocol = self.transport, self.protocol
        for _ in range(n):
            before = transport.writes
            self.now += STEP
            protocol.data_received(REQUEST)
            # One turn of the loop per poll, as a socket's next readiness would give.
            while transport.writes == before or (  # noqa: ASYNC110 - loop turns, not a wait
                protocol.cycle is not None and not protocol.cycle.response_complete
            ):
                await asyncio.sleep(0)
        if transport.closing:
            raise RuntimeError("the connection was closed")

    async def stop(self) -> None:
        del asyncio.get_running_loop().time  # the loop's own clock again
        await self.lifespan.shutdown()
