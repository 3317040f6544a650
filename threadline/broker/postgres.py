"""The broker of the PostgreSQL deployment without Redis: an event table plus LISTEN/NOTIFY.

Slower than Redis (a database round trip per event) but with the same contract:
  stream_heads     per stream, the last id handed out (ids `<ms>-<seq>` increase within a
                   stream whichever process publishes: the head row is locked by the
                   statement that appends) and when the end marker was written;
  stream_events    the events; deleted RETENTION_SECONDS after the end marker, or
                   IDLE_SECONDS after the last event of a stream nobody ends;
  stream_watchers  who follows which stream now, from any process.
Every append notifies `<events channel>` with the stream's name, so tails wake at once;
signals (`notify`/`listen`) travel on `<signals channel>` as `<channel>\\n<message>`. Each
process holds one LISTEN connection of its own (outside the pool) and reconnects it when
the database comes back; tails also poll every POLL_SECONDS, so a lost notification only
delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import sql as pgsql

from threadline.broker.base import (
    END_OF_STREAM,
    BackgroundTasks,
    Broker,
    LocalListeners,
    StreamEvent,
    parse_event_id,
)
from threadline.core.errors import Unavailable
from threadline.storage.database import DatabaseUnavailable
from threadline.storage.postgres.database import PostgresDatabase

logger = logging.getLogger("threadline.broker.postgres")

RETENTION_SECONDS = 120.0
IDLE_SECONDS = 24 * 3600.0
POLL_SECONDS = 2.0  # a tail looks at the table this often even without a notification
READ_BATCH = 500
WATCH_TTL_SECONDS = 30.0
REAP_SECONDS = 30.0
RECONNECT_GIVE_UP_SECONDS = 60.0
ENDED = StreamEvent(f"{2**62}-0", END_OF_STREAM, b"")

_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    OSError,
    Unavailable,
    DatabaseUnavailable,
)

T = TypeVar("T")

# One statement appends and moves the head, so a reader that sees the head sees the event,
# and appends to one stream commit in id order (the head row is locked until commit).
_APPEND = """
WITH head AS (
    INSERT INTO stream_heads AS h (stream, last_ms, last_seq, closed_at, updated_at)
    {move_head}
    RETURNING last_ms, last_seq
), appended AS (
    INSERT INTO stream_events (stream, ms, seq, event, data)
    SELECT :stream, last_ms, last_seq, :event, :data FROM head
    RETURNING ms, seq
)
SELECT ms, seq, pg_notify(:channel, :stream) AS notified FROM appended
"""
# Ids `<ms>-<seq>`: the time, then a count within the millisecond.
_TIMED_HEAD = """
    VALUES (:stream, :now_ms, 0, {closed}, now())
    ON CONFLICT (stream) DO UPDATE SET
        last_ms = GREATEST(h.last_ms, EXCLUDED.last_ms),
        last_seq = CASE WHEN EXCLUDED.last_ms > h.last_ms THEN 0 ELSE h.last_seq + 1 END,
        closed_at = COALESCE(h.closed_at, EXCLUDED.closed_at),
        updated_at = now()
    {only_open}"""
_PUBLISH = _APPEND.format(move_head=_TIMED_HEAD.format(closed="NULL", only_open=""))
# Closing is idempotent: a closed stream's head is left alone and nothing is appended.
_CLOSE = _APPEND.format(
    move_head=_TIMED_HEAD.format(closed="now()", only_open="WHERE h.closed_at IS NULL")
)
# A counted stream's numbers live in its head row: `last_seq` counts, `last_ms` stays 0.
_APPEND_COUNTED = _APPEND.format(
    move_head="""
    VALUES (:stream, 0, 1, NULL, now())
    ON CONFLICT (stream) DO UPDATE SET last_seq = h.last_seq + 1, updated_at = now()"""
)


def _channel_name(prefix: str, kind: str) -> str:
    name = f"{prefix}:{kind}"
    if len(name.encode()) <= 63:  # longer identifiers are truncated by PostgreSQL
        return name
    return f"threadline:{hashlib.sha1(name.encode()).hexdigest()[:16]}:{kind}"


def _event(row: dict[str, Any]) -> StreamEvent:
    return StreamEvent(f"{row['ms']}-{row['seq']}", row["event"], bytes(row["data"]))


@dataclass(eq=False)
class _Subscription:
    stream: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ended: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def end(self) -> None:
        self.ended = True
        self.wake.set()


class PostgresBroker(Broker):
    def __init__(self, db: PostgresDatabase, *, prefix: str = "threadline") -> None:
        self.db = db
        self.prefix = prefix
        self.events_channel = _channel_name(prefix, "events")
        self.signals_channel = _channel_name(prefix, "signals")
        self._subscriptions: dict[str, _Subscription] = {}
        self._by_stream: dict[str, set[_Subscription]] = defaultdict(set)
        self._listeners = LocalListeners()
        self._background = BackgroundTasks()
        self._listening = asyncio.Event()

    # --- life cycle -----------------------------------------------------------------
    async def start(self) -> None:
        self._background.loops = [
            asyncio.create_task(self._listen_forever(), name="pg-broker-listen"),
            asyncio.create_task(self._refresh_watchers_forever(), name="pg-broker-watchers"),
            asyncio.create_task(self._reap_forever(), name="pg-broker-reaper"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 5)

    async def stop(self) -> None:
        await self.end_subscriptions()
        await self._background.stop()

    async def end_subscriptions(self) -> None:
        for subscription in list(self._subscriptions.values()):
            subscription.end()

    async def _call(self, what: str, command: Callable[[], Awaitable[T]]) -> T:
        try:
            return await command()
        except Unavailable:
            raise
        except _DATABASE_ERRORS as exc:
            raise Unavailable(f"the database is not reachable ({what}): {exc}") from exc

    # --- streams ------------------------------------------------------------------------
    async def _append(self, sql: str, stream: str, event: str, data: bytes) -> str | None:
        row = await self._append_row(sql, stream, event, data)
        return None if row is None else f"{row['ms']}-{row['seq']}"

    async def _append_row(
        self, sql: str, stream: str, event: str, data: bytes
    ) -> dict[str, Any] | None:
        return await self._call(
            "publish",
            lambda: self.db.fetch_one(
                sql,
                {
                    "stream": stream,
                    "now_ms": int(time.time() * 1000),
                    "event": event,
                    "data": data,
                    "channel": self.events_channel,
                },
            ),
        )

    async def publish(self, stream: str, event: str, data: bytes) -> str:
        event_id = await self._append(_PUBLISH, stream, event, data)
        assert event_id is not None
        return event_id

    async def append(self, stream: str, event: str, data: bytes) -> int:
        row = await self._append_row(_APPEND_COUNTED, stream, event, data)
        assert row is not None
        return int(row["seq"])

    async def forget(self, stream: str) -> None:
        async def delete() -> None:
            async with self.db.transaction() as conn:
                await conn.execute("DELETE FROM stream_heads WHERE stream = :s", {"s": stream})
                await conn.execute("DELETE FROM stream_events WHERE stream = :s", {"s": stream})

        await self._call("forget", delete)

    async def close_stream(self, stream: str, final: bytes = b"") -> None:
        await self._append(_CLOSE, stream, END_OF_STREAM, final)

    def subscribe(
        self, stream: str, last_event_id: str | None = None, *, replay: bool = True
    ) -> AsyncIterator[StreamEvent]:
        return self._follow(_Subscription(stream), last_event_id, replay)

    async def _follow(
        self, subscription: _Subscription, last_event_id: str | None, replay: bool
    ) -> AsyncIterator[StreamEvent]:
        watched = False
        # registered once reading starts (a generator never started has nothing to undo)
        self._subscriptions[subscription.id] = subscription
        self._by_stream[subscription.stream].add(subscription)
        try:
            cursor, ended_already = await self._attach(subscription, last_event_id, replay)
            watched = True
            if ended_already is not None:
                yield ended_already
                return
            while True:
                rows = await self._read(subscription, cursor)
                if rows is None:
                    yield ENDED
                    return
                for row in rows:
                    event = _event(row)
                    cursor = (row["ms"], row["seq"])
                    yield event
                    if event.is_end:
                        return
        finally:
            self._subscriptions.pop(subscription.id, None)
            followers = self._by_stream.get(subscription.stream)
            if followers is not None:
                followers.discard(subscription)
                if not followers:
                    del self._by_stream[subscription.stream]
            if watched:
                self._background.spawn(self._unwatch(subscription))

    async def _attach(
        self, subscription: _Subscription, last_event_id: str | None, replay: bool
    ) -> tuple[tuple[int, int], StreamEvent | None]:
        async def attach() -> tuple[tuple[int, int], StreamEvent | None]:
            async with self.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO stream_watchers (stream, watcher, expires_at)"
                    " VALUES (:stream, :watcher, now() + :ttl * interval '1 second')"
                    " ON CONFLICT (stream, watcher) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                    {
                        "stream": subscription.stream,
                        "watcher": subscription.id,
                        "ttl": WATCH_TTL_SECONDS,
                    },
                )
                if last_event_id is not None and last_event_id != "-1":
                    return parse_event_id(last_event_id), None
                if last_event_id is not None or replay:
                    return (-1, -1), None
                # Only what comes after the current head; a finished stream gives its end.
                head = await conn.fetch_one(
                    "SELECT last_ms, last_seq, closed_at FROM stream_heads WHERE stream = :stream",
                    {"stream": subscription.stream},
                )
                if head is None:
                    return (-1, -1), None
                if head["closed_at"] is not None:
                    end = await conn.fetch_one(
                        "SELECT ms, seq, event, data FROM stream_events"
                        " WHERE stream = :stream AND event = :end ORDER BY ms DESC, seq DESC"
                        " LIMIT 1",
                        {"stream": subscription.stream, "end": END_OF_STREAM},
                    )
                    if end is not None:
                        return (end["ms"], end["seq"]), _event(end)
                return (head["last_ms"], head["last_seq"]), None

        return await self._call("subscribe", attach)

    async def _read(
        self, subscription: _Subscription, cursor: tuple[int, int]
    ) -> list[dict[str, Any]] | None:
        """The next events after `cursor`, waiting for some; None once ended. Waits for the
        database to come back if it goes away."""
        down_since: float | None = None
        delay = 0.1
        while not subscription.ended:
            # Cleared before looking, so a notification that lands meanwhile is not lost.
            subscription.wake.clear()
            try:
                rows = await self.db.fetch_all(
                    "SELECT ms, seq, event, data FROM stream_events"
                    " WHERE stream = :stream AND (ms, seq) > (:ms, :seq)"
                    " ORDER BY ms, seq LIMIT :limit",
                    {
                        "stream": subscription.stream,
                        "ms": cursor[0],
                        "seq": cursor[1],
                        "limit": READ_BATCH,
                    },
                )
            except _DATABASE_ERRORS as exc:
                now = time.monotonic()
                if down_since is None:
                    down_since = now
                    logger.warning(
                        "the database went away while following %s (%s); waiting for it",
                        subscription.stream,
                        exc,
                    )
                elif now - down_since > RECONNECT_GIVE_UP_SECONDS:
                    raise Unavailable(f"the database is not reachable (stream): {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            down_since = None
            if rows:
                return rows
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscription.wake.wait(), POLL_SECONDS)
        return None

    async def _unwatch(self, subscription: _Subscription) -> None:
        with contextlib.suppress(*_DATABASE_ERRORS):
            await self.db.execute(
                "DELETE FROM stream_watchers WHERE stream = :stream AND watcher = :watcher",
                {"stream": subscription.stream, "watcher": subscription.id},
            )

    async def has_subscribers(self, stream: str) -> bool:
        row = await self._call(
            "watchers",
            lambda: self.db.fetch_one(
                "SELECT EXISTS (SELECT 1 FROM stream_watchers WHERE stream = :stream"
                " AND expires_at > now()) AS watched",
                {"stream": stream},
            ),
        )
        return bool(row and row["watched"])

    async def _refresh_watchers_forever(self) -> None:
        while True:
            await asyncio.sleep(WATCH_TTL_SECONDS / 3)
            ids = list(self._subscriptions)
            if not ids:
                continue
            try:
                await self.db.execute(
                    "UPDATE stream_watchers SET expires_at = now() + :ttl * interval '1 second'"
                    " WHERE watcher = ANY(:ids)",
                    {"ttl": WATCH_TTL_SECONDS, "ids": ids},
                )
            except _DATABASE_ERRORS as exc:
                logger.warning("refreshing stream watchers failed: %s", exc)

    async def _reap_forever(self) -> None:
        while True:
            try:
                await self.reap()
            except _DATABASE_ERRORS as exc:
                logger.warning("deleting old stream events failed: %s", exc)
            except Exception:
                logger.exception("deleting old stream events failed")
            await asyncio.sleep(REAP_SECONDS)

    async def reap(self) -> None:
        """Delete streams ended RETENTION_SECONDS ago or idle IDLE_SECONDS, and lapsed
        watchers (any process may do this; it is idempotent)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "WITH gone AS (DELETE FROM stream_heads"
                " WHERE closed_at < now() - :retention * interval '1 second'"
                " OR updated_at < now() - :idle * interval '1 second' RETURNING stream)"
                " DELETE FROM stream_events e USING gone WHERE e.stream = gone.stream",
                {"retention": RETENTION_SECONDS, "idle": IDLE_SECONDS},
            )
            await conn.execute(
                "DELETE FROM stream_watchers WHERE expires_at < now() - interval '1 minute'"
            )

    # --- signals and wake-ups ---------------------------------------------------------
    async def notify(self, channel: str, message: str = "") -> None:
        # Fire and forget, as on Redis: the state a signal announces is in the database.
        try:
            await self.db.execute(
                "SELECT pg_notify(:channel, :payload)",
                {"channel": self.signals_channel, "payload": f"{channel}\n{message}"},
            )
        except _DATABASE_ERRORS as exc:
            logger.warning("signal %s not sent, the database is not reachable: %s", channel, exc)

    def listen(self, channel: str) -> AsyncIterator[str]:
        return self._listeners.listen(channel)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == self.events_channel:
            for subscription in self._by_stream.get(payload, ()):
                subscription.wake.set()
        elif channel == self.signals_channel:
            name, _, message = payload.partition("\n")
            self._listeners.deliver(name, message)

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.db.uri, autocommit=True, connect_timeout=5
                ) as conn:
                    for channel in (self.events_channel, self.signals_channel):
                        await conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(channel)))
                    self._listening.set()
                    if delay > 0.1:
                        logger.info("the database is back; listening for signals again")
                        # whatever was appended meanwhile: tails look now
                        for subscription in list(self._subscriptions.values()):
                            subscription.wake.set()
                    delay = 0.1
                    while True:
                        async for notice in conn.notifies(timeout=10.0):
                            self._dispatch(notice.channel, notice.payload)
                        await conn.execute("SELECT 1")  # finds a dead connection
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if delay == 0.1:
                    logger.warning(
                        "the broker's LISTEN connection was lost; signals are delayed until "
                        "the database is back: %s",
                        exc,
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
