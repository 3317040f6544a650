"""Moving run events and control signals between the processes of a deployment."""

from __future__ import annotations

import abc
import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

END_OF_STREAM = "__end__"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a run's (or a thread's) stream: its id, its SSE name and JSON bytes."""

    id: str
    event: str
    data: bytes

    @property
    def is_end(self) -> bool:
        return self.event == END_OF_STREAM


def parse_event_id(event_id: str) -> tuple[int, int]:
    """Ids are `<unix-ms>-<seq>` like Redis stream ids; they compare as integer pairs."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class Broker(abc.ABC):
    """Publishes and replays event streams, and wakes workers and waiters.

    A stream is keyed by a name (`run:<id>` or `thread:<id>`). Subscribers first attach,
    then replay the log after `last_event_id`, then tail live events, so nothing published
    in between is lost or repeated.
    """

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def end_subscriptions(self) -> None:
        """End every open subscription of this process, so streaming responses finish
        and shutdown is not held up; clients reconnect with Last-Event-ID."""

    @abc.abstractmethod
    async def publish(self, stream: str, event: str, data: bytes) -> str:
        """Append an event; returns its id."""

    @abc.abstractmethod
    async def append(self, stream: str, event: str, data: bytes) -> int:
        """Append an event numbered by the stream itself: its id is `0-<n>`, n counting
        from 1 whichever process appends (a thread's protocol log, whose readers resume
        `since` a number). Returns n. A stream is written with `publish` or with `append`,
        never both."""

    async def publish_many(
        self, stream: str, events: Sequence[tuple[str, bytes]], *, counted: bool = False
    ) -> None:
        """`publish` (or, `counted`, `append`) several events in order; a broker that can
        send them in one round trip does."""
        for event, data in events:
            if counted:
                await self.append(stream, event, data)
            else:
                await self.publish(stream, event, data)

    @abc.abstractmethod
    async def forget(self, stream: str) -> None:
        """Delete a stream's events (a deleted thread's log), so a thread created again
        under the same id starts a log of its own. Its followers are not ended: like
        followers of a thread that does not exist yet, they wait."""

    @abc.abstractmethod
    async def close_stream(self, stream: str, final: bytes = b"") -> None:
        """Mark the stream finished: subscribers end after the last event.

        `final` rides on the end marker, so a waiter learns the outcome even when the
        run's rows are gone by then (a stateless run deletes its thread)."""

    @abc.abstractmethod
    def subscribe(
        self, stream: str, last_event_id: str | None = None, *, replay: bool = True
    ) -> AsyncIterator[StreamEvent]:
        """Events after `last_event_id` (all with "-1"), then live ones, then the end marker.

        Without `last_event_id`, `replay=False` gives only events published from now on.
        """

    async def check(self) -> None:
        """Raise `Unavailable` unless a subscription could start now: a stream is refused
        before its response starts rather than broken after. By default it always can (an
        in-process broker; PostgreSQL's, which fails with the database)."""
        return None

    @abc.abstractmethod
    async def has_subscribers(self, stream: str) -> bool:
        """Whether anyone follows `stream` now (thread streams are only fed when watched)."""

    @abc.abstractmethod
    async def notify(self, channel: str, message: str = "") -> None:
        """Fire-and-forget signal to every listener of `channel`."""

    @abc.abstractmethod
    def listen(self, channel: str) -> AsyncIterator[str]:
        """Signals sent to `channel` from now on."""


class LocalListeners:
    """This process's listeners of signals, by channel; every broker fans signals out here."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[str]]] = defaultdict(set)

    def deliver(self, channel: str, message: str) -> None:
        for queue in self._queues.get(channel, ()):
            queue.put_nowait(message)

    async def listen(self, channel: str) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues[channel].add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues[channel].discard(queue)


class BackgroundTasks:
    """A broker's long-running loops and its fire-and-forget chores."""

    def __init__(self) -> None:
        self.loops: list[asyncio.Task[None]] = []
        self._chores: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def stop(self) -> None:
        for task in self.loops:
            task.cancel()
        await asyncio.gather(*self.loops, return_exceptions=True)
        if self._chores:
            await asyncio.wait(self._chores, timeout=2)
