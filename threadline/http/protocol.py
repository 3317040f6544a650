"""HTTP and WebSocket routes of the thread-centric protocol (see core/protocol).

POST /threads/{id}/commands        one command envelope in, one response envelope out
POST /threads/{id}/stream/events   a filtered SSE of the thread's protocol log
WS   /threads/{id}/stream/events   commands in-band, `subscription.subscribe` filters,
                                   events as JSON text frames
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from threadline.core.errors import ThreadlineError, Unavailable
from threadline.core.protocol.commands import failure, handle_command
from threadline.core.protocol.filters import EventFilter, parse_filter
from threadline.core.protocol.stream import thread_events
from threadline.core.services import Services
from threadline.http.errors import status_for
from threadline.http.ids import require_uuid
from threadline.http.responses import JSONResponse, json_response
from threadline.http.sse import EventStreamResponse
from threadline.storage.database import DatabaseUnavailable

router = APIRouter(tags=["Streaming"])
logger = logging.getLogger("threadline.protocol")


def _services(request: Request | WebSocket) -> Services:
    services: Services = request.app.state.services
    return services


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None


@router.post("/threads/{thread_id}/commands")
async def protocol_command(thread_id: str, request: Request) -> JSONResponse:
    thread_id = require_uuid(thread_id, "thread")
    body = await _json_body(request)
    response = await handle_command(_services(request), thread_id, body)
    malformed = response["type"] == "error" and response["id"] is None
    return json_response(response, status_code=400 if malformed else 200)


@router.post("/threads/{thread_id}/stream/events")
async def protocol_event_stream(thread_id: str, request: Request) -> EventStreamResponse:
    thread_id = require_uuid(thread_id, "thread")
    services = _services(request)
    event_filter = parse_filter(await _json_body(request))
    return EventStreamResponse(
        thread_events(services, thread_id, event_filter),
        heartbeat=services.settings.sse_heartbeat_seconds,
    )


@router.websocket("/threads/{thread_id}/stream/events")
async def protocol_websocket(websocket: WebSocket, thread_id: str) -> None:
    try:
        thread_id = require_uuid(thread_id, "thread")
    except ThreadlineError as exc:
        # A browser cannot read a refused upgrade's status: close with 4000 + status.
        await websocket.close(code=4000 + status_for(exc), reason=exc.detail[:120])
        return
    await websocket.accept()
    session = _Session(_services(websocket), thread_id, websocket)
    try:
        await session.serve()
    finally:
        await session.close()


class _Session:
    """One WebSocket: its subscriptions each forward matching events, one frame per event
    however many subscriptions match it."""

    def __init__(self, services: Services, thread_id: str, websocket: WebSocket) -> None:
        self.services = services
        self.thread_id = thread_id
        self.websocket = websocket
        self.filters: dict[str, EventFilter] = {}
        self.forwarders: dict[str, asyncio.Task[None]] = {}
        self.sent = _RecentNumbers()
        self.send_lock = asyncio.Lock()

    async def serve(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                body = orjson.loads(message.get("text") or message.get("bytes") or b"")
            except orjson.JSONDecodeError:
                await self.send(failure(None, "invalid_argument", "Frames must be JSON"))
                continue
            try:
                response = await handle_command(self.services, self.thread_id, body, self)
            except (Unavailable, DatabaseUnavailable) as exc:
                response = failure(_command_id(body), "unknown_error", str(exc))
            await self.send(response)
            if response["type"] == "success" and "subscription_id" in response["result"]:
                self._start(response["result"]["subscription_id"])

    async def subscribe(self, event_filter: EventFilter) -> str:
        subscription_id = str(uuid.uuid4())
        self.filters[subscription_id] = event_filter
        return subscription_id

    def _start(self, subscription_id: str) -> None:
        """Forwarding starts once the answer to `subscribe` is sent, so it comes first."""
        event_filter = self.filters[subscription_id]
        self.forwarders[subscription_id] = asyncio.create_task(self._forward(event_filter))

    async def unsubscribe(self, subscription_id: str) -> bool:
        self.filters.pop(subscription_id, None)
        task = self.forwarders.pop(subscription_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    async def _forward(self, event_filter: EventFilter) -> None:
        try:
            async for event in thread_events(self.services, self.thread_id, event_filter):
                if self.sent.add(int(event.id)):
                    await self.send_bytes(event.data)
        except (WebSocketDisconnect, RuntimeError):
            return  # the socket closed under us
        except (Unavailable, DatabaseUnavailable) as exc:
            await self.send(failure(None, "unknown_error", str(exc)))
        except Exception:
            logger.exception("forwarding events of thread %s failed", self.thread_id)

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_bytes(orjson.dumps(message))

    async def send_bytes(self, data: bytes) -> None:
        async with self.send_lock:
            if self.websocket.application_state == WebSocketState.CONNECTED:
                await self.websocket.send_text(data.decode())

    async def close(self) -> None:
        for task in self.forwarders.values():
            task.cancel()
        await asyncio.gather(*self.forwarders.values(), return_exceptions=True)
        if self.websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):
                await self.websocket.close(code=1000)


class _RecentNumbers:
    """The event numbers sent lately on a socket (overlapping subscriptions send once)."""

    def __init__(self, size: int = 10_000) -> None:
        self.order: collections.deque[int] = collections.deque()
        self.seen: set[int] = set()
        self.size = size

    def add(self, number: int) -> bool:
        """False when `number` was sent already."""
        if number in self.seen:
            return False
        self.seen.add(number)
        self.order.append(number)
        if len(self.order) > self.size:
            self.seen.discard(self.order.popleft())
        return True


def _command_id(body: Any) -> int | None:
    value = body.get("id") if isinstance(body, dict) else None
    return value if isinstance(value, int) else None
