"""Server-sent events: the reference's framing, heartbeats and disconnect handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from threadline.broker.base import StreamEvent
from threadline.core.errors import ThreadlineError
from threadline.serialization import dumps

logger = logging.getLogger("threadline.http")

HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-accel-buffering": "no",
    "connection": "keep-alive",
}
HEARTBEAT = b": heartbeat\r\n\r\n"


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    parts = [b"event: ", event.encode(), b"\r\ndata: ", data, b"\r\n"]
    if event_id is not None:
        parts += [b"id: ", event_id.encode(), b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)


class EventStreamResponse(Response):
    """Streams `events` as SSE frames until they end or the client goes away.

    When the client disconnects first, `on_disconnect` runs (to cancel the run, say).
    A comment is sent whenever `heartbeat` seconds pass without an event, so proxies and
    clients keep silent streams open.

    `ready` runs before anything is sent: what it raises (the broker is away, say) is an
    ordinary error answer. A failure of `events` once the stream is open ends it with an
    `error` event, as the reference shapes them, rather than a broken response.
    """

    def __init__(
        self,
        events: AsyncIterator[StreamEvent],
        *,
        headers: Mapping[str, str] | None = None,
        heartbeat: float = 5.0,
        on_disconnect: Callable[[], Awaitable[None]] | None = None,
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(status_code=200)
        self.events = events
        self.extra_headers = {**HEADERS, **(headers or {})}
        self.heartbeat = heartbeat
        self.on_disconnect = on_disconnect
        self.ready = ready
        self._last_id: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ready is not None:
            await self.ready()
        started = asyncio.Event()
        pump = asyncio.create_task(self._pump(send, started))
        # One turn of the loop lets the pump subscribe to the events before the client
        # learns that the stream is open: a run it starts next cannot slip by unseen.
        await asyncio.sleep(0)
        watch = asyncio.create_task(_wait_for_disconnect(receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(k.encode(), v.encode()) for k, v in self.extra_headers.items()],
                }
            )
            started.set()
            done, _ = await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.events.aclose()  # type: ignore[attr-defined]
        if pump in done:
            if (exc := pump.exception()) is not None:
                await send(self._error_frame(exc))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif self.on_disconnect is not None:
            await self.on_disconnect()

    def _error_frame(self, exc: BaseException) -> Message:
        """The last event of a stream whose events failed. It carries the id of the last
        event sent, so a client resuming from it misses nothing."""
        if isinstance(exc, ThreadlineError):
            logger.warning("stream ended early: %s", exc.detail)
            message = exc.detail
        else:
            logger.error("stream ended early", exc_info=exc)
            message = str(exc)
        data = dumps({"error": type(exc).__name__, "message": message})
        body = frame("error", data, self._last_id)
        return {"type": "http.response.body", "body": body, "more_body": True}

    async def _pump(self, send: Send, started: asyncio.Event) -> None:
        lock = asyncio.Lock()
        beat = asyncio.create_task(self._beat(send, lock, started))
        try:
            async for event in self.events:
                if event.is_end:
                    return
                await started.wait()
                async with lock:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": frame(event.event, event.data, event.id),
                            "more_body": True,
                        }
                    )
                    self._last_send = asyncio.get_running_loop().time()
                    self._last_id = event.id
        finally:
            beat.cancel()

    async def _beat(self, send: Send, lock: asyncio.Lock, started: asyncio.Event) -> None:
        await started.wait()
        loop = asyncio.get_running_loop()
        self._last_send = loop.time()
        while True:
            await asyncio.sleep(max(0.0, self._last_send + self.heartbeat - loop.time()))
            if loop.time() - self._last_send >= self.heartbeat:
                async with lock:
                    await send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
                    self._last_send = loop.time()


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
