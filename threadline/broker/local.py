"""The in-process broker of the embedded deployment: bounded logs and asyncio queues."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from threadline.broker.base import (
    END_OF_STREAM,
    Broker,
    LocalListeners,
    StreamEvent,
    parse_event_id,
)

# A finished stream stays replayable this long (the reference keeps 120 s).
RETENTION_SECONDS = 120.0
IDLE_SECONDS = 3600.0  # a stream nobody closes (a thread's) is dropped once this idle (memory)
MAX_EVENTS_PER_STREAM = 100_000


@dataclass
class _Stream:
    log: deque[StreamEvent] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS_PER_STREAM))
    subscribers: set[asyncio.Queue[StreamEvent]] = field(default_factory=set)
    last_ms: int = 0
    seq: int = 0
    closed_at: float | None = None
    touched_at: float = field(default_factory=time.monotonic)

    def next_id(self) -> str:
        now = int(time.time() * 1000)
        self.last_ms = max(self.last_ms, now)
        self.seq += 1
        return f"{self.last_ms}-{self.seq}"


def _expired(stream: _Stream, now: float) -> bool:
    if stream.subscribers:
        return False
    if stream.closed_at is not None:
        return stream.closed_at < now - RETENTION_SECONDS
    return stream.touched_at < now - IDLE_SECONDS


class LocalBroker(Broker):
    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._listeners = LocalListeners()
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever())

    async def stop(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        await self.end_subscriptions()

    async def end_subscriptions(self) -> None:
        for state in self._streams.values():
            for queue in state.subscribers:
                queue.put_nowait(StreamEvent(f"{2**62}-0", END_OF_STREAM, b""))

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(10)
            now = time.monotonic()
            for name in [n for n, s in self._streams.items() if _expired(s, now)]:
                del self._streams[name]

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream()
        return stream

    async def publish(self, stream: str, event: str, data: bytes) -> str:
        return self.publish_nowait(stream, event, data)

    def publish_nowait(self, stream: str, event: str, data: bytes) -> str:
        state = self._stream(stream)
        return self._add(state, StreamEvent(state.next_id(), event, data))

    async def append(self, stream: str, event: str, data: bytes) -> int:
        state = self._stream(stream)
        state.seq += 1
        self._add(state, StreamEvent(f"0-{state.seq}", event, data))
        return state.seq

    def _add(self, state: _Stream, item: StreamEvent) -> str:
        state.touched_at = time.monotonic()
        state.log.append(item)
        for queue in state.subscribers:
            queue.put_nowait(item)
        return item.id

    async def forget(self, stream: str) -> None:
        state = self._streams.pop(stream, None)
        if state is not None and state.subscribers:
            # its followers stay attached, as on Redis: they get what is numbered past
            # the last event they saw
            self._streams[stream] = _Stream(subscribers=state.subscribers)

    async def close_stream(self, stream: str, final: bytes = b"") -> None:
        state = self._stream(stream)
        if state.closed_at is not None:
            return
        state.closed_at = time.monotonic()
        end = StreamEvent(state.next_id(), END_OF_STREAM, final)
        state.log.append(end)
        for queue in state.subscribers:
            queue.put_nowait(end)

    async def subscribe(
        self, stream: str, last_event_id: str | None = None, *, replay: bool = True
    ) -> AsyncIterator[StreamEvent]:
        state = self._stream(stream)
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue()
        state.subscribers.add(queue)
        try:
            if last_event_id is not None or replay:
                after = (
                    parse_event_id(last_event_id)
                    if last_event_id is not None and last_event_id != "-1"
                    else (-1, -1)
                )
                backlog = [e for e in state.log if parse_event_id(e.id) > after]
            else:
                backlog = [e for e in state.log if e.is_end]
            last_seen = (-1, -1)
            for item in backlog:
                last_seen = parse_event_id(item.id)
                yield item
                if item.is_end:
                    return
            while True:
                item = await queue.get()
                if parse_event_id(item.id) <= last_seen:
                    continue
                yield item
                if item.is_end:
                    return
        finally:
            state.subscribers.discard(queue)

    async def has_subscribers(self, stream: str) -> bool:
        state = self._streams.get(stream)
        return bool(state and state.subscribers)

    async def notify(self, channel: str, message: str = "") -> None:
        self._listeners.deliver(channel, message)

    def listen(self, channel: str) -> AsyncIterator[str]:
        return self._listeners.listen(channel)
