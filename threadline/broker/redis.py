"""The scale-out broker: Redis Streams as the resumable event log, pub/sub for signals.

Keys, all under `prefix`:
  <prefix>:s:<stream>    a Redis Stream; entries carry `e` (event name) and `d` (data).
                         Ids are Redis stream ids (`<ms>-<seq>`), as `parse_event_id`
                         expects. Trimmed to about MAX_EVENTS_PER_STREAM entries; expires
                         RETENTION_SECONDS after the end marker, or IDLE_SECONDS after the
                         last event of a stream that is never closed (a thread's).
  <prefix>:w:<stream>    a sorted set of subscriptions following the stream (member: a
                         subscription id, score: when its claim lapses, in ms), so any
                         process can tell whether a stream is watched.
  <prefix>:c:<channel>   the pub/sub channel of `notify` / `listen`.

Redis going away: a command fails with `Unavailable` (503) once the client's own short
retries are spent; a subscription that was already streaming waits for Redis to return
and goes on from the last id it delivered; the signal listener reconnects by itself
(signals sent meanwhile are lost, which is why cancel and wake-ups are also durable in
the database and polled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from threadline.broker.base import (
    END_OF_STREAM,
    BackgroundTasks,
    Broker,
    LocalListeners,
    StreamEvent,
    parse_event_id,
)
from threadline.core.errors import Unavailable

logger = logging.getLogger("threadline.broker.redis")

RETENTION_SECONDS = 120.0  # a finished stream stays replayable this long
IDLE_SECONDS = 24 * 3600.0  # a stream nobody closes (a thread's) lives this long when idle
MAX_EVENTS_PER_STREAM = 100_000
BLOCK_MS = 5_000  # one XREAD BLOCK; the socket timeout is well above it
READ_BATCH = 500
WATCH_TTL_SECONDS = 30.0  # a subscription's watcher entry lapses unless refreshed
RECONNECT_GIVE_UP_SECONDS = 60.0  # an open subscription waits this long for Redis to return
ENDED = StreamEvent(f"{2**62}-0", END_OF_STREAM, b"")

_CONNECTION_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)

_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2], 'd', ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 or ttl > tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return id
"""

# The next number of a counted stream is one more than its last entry's (`0-<n>`), read
# and written in one script, so appends from several processes never share a number.
_APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local n = 1
if last[1] then
  n = tonumber(string.match(last[1][1], '-(%d+)$')) + 1
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-' .. n, 'e', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return n
"""

# Closing is idempotent (several processes may close a stream: the worker, and waiters
# that find the run over): nothing is added after an end marker.
_CLOSE = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then
  local fields = last[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'e' and fields[i + 1] == ARGV[2] then
      return last[1][1]
    end
  end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return id
"""

T = TypeVar("T")


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _normalise_id(event_id: str) -> str:
    ms, seq = parse_event_id(event_id)
    return f"{ms}-{seq}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _publish_args(event: str, data: bytes) -> list[Any]:
    ttl_after_end, ttl_idle = int(RETENTION_SECONDS * 1000), int(IDLE_SECONDS * 1000)
    return [MAX_EVENTS_PER_STREAM, event, data, ttl_after_end, ttl_idle]


def _append_args(event: str, data: bytes) -> list[Any]:
    return [MAX_EVENTS_PER_STREAM, event, data, int(IDLE_SECONDS * 1000)]


def _event(entry_id: Any, fields: dict[Any, Any]) -> StreamEvent:
    return StreamEvent(_text(entry_id), _text(fields.get(b"e", b"")), bytes(fields.get(b"d", b"")))


@dataclass(eq=False)
class _Subscription:
    stream: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ended: bool = False
    read: asyncio.Future[Any] | None = None

    def end(self) -> None:
        self.ended = True
        if self.read is not None:
            self.read.cancel()


class RedisBroker(Broker):
    def __init__(self, url: str, *, prefix: str = "threadline") -> None:
        self.url = url
        self.prefix = prefix
        self._redis: Redis | None = None
        self._subscriptions: dict[str, _Subscription] = {}
        self._listeners = LocalListeners()
        self._background = BackgroundTasks()
        self._publish_script: Any = None
        self._close_script: Any = None
        self._append_script: Any = None
        self._listening = asyncio.Event()

    # --- keys -------------------------------------------------------------------
    def _stream_key(self, stream: str) -> str:
        return f"{self.prefix}:s:{stream}"

    def _watch_key(self, stream: str) -> str:
        return f"{self.prefix}:w:{stream}"

    def _channel(self, channel: str) -> str:
        return f"{self.prefix}:c:{channel}"

    # --- life cycle ---------------------------------------------------------------
    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("the Redis broker is not started")
        return self._redis

    async def start(self) -> None:
        self._redis = Redis.from_url(
            self.url,
            protocol=2,
            socket_connect_timeout=5,
            socket_timeout=BLOCK_MS / 1000 + 10,
            socket_keepalive=True,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3),
        )
        self._publish_script = self._redis.register_script(_PUBLISH)
        self._close_script = self._redis.register_script(_CLOSE)
        self._append_script = self._redis.register_script(_APPEND)
        try:
            await self._redis.ping()
        except _CONNECTION_ERRORS as exc:
            await self._redis.aclose()
            self._redis = None
            raise Unavailable(f"Redis at {redacted(self.url)} is not reachable: {exc}") from exc
        self._background.loops = [
            asyncio.create_task(self._signals_forever(), name="redis-signals"),
            asyncio.create_task(self._refresh_watchers_forever(), name="redis-watchers"),
        ]
        # Signals sent from now on reach this process's listeners.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 5)

    async def stop(self) -> None:
        await self.end_subscriptions()
        await self._background.stop()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def end_subscriptions(self) -> None:
        for subscription in list(self._subscriptions.values()):
            subscription.end()

    async def _call(self, what: str, command: Callable[[], Awaitable[T]]) -> T:
        try:
            return await command()
        except _CONNECTION_ERRORS as exc:
            raise Unavailable(f"Redis is not reachable ({what}): {exc}") from exc

    # --- streams --------------------------------------------------------------------
    async def publish(self, stream: str, event: str, data: bytes) -> str:
        entry_id = await self._call(
            "publish",
            lambda: self._publish_script(
                keys=[self._stream_key(stream)], args=_publish_args(event, data)
            ),
        )
        return _text(entry_id)

    async def append(self, stream: str, event: str, data: bytes) -> int:
        number = await self._call(
            "append",
            lambda: self._append_script(
                keys=[self._stream_key(stream)], args=_append_args(event, data)
            ),
        )
        return int(number)

    async def publish_many(
        self, stream: str, events: Sequence[tuple[str, bytes]], *, counted: bool = False
    ) -> None:
        """One round trip (a pipeline of the same scripts, run in order)."""
        script = self._append_script if counted else self._publish_script
        arguments = _append_args if counted else _publish_args
        keys = [self._stream_key(stream)]

        async def send() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for event, data in events:
                await script(keys=keys, args=arguments(event, data), client=pipe)
            await pipe.execute()

        await self._call("publish", send)

    async def forget(self, stream: str) -> None:
        await self._call("forget", lambda: self.redis.delete(self._stream_key(stream)))

    async def close_stream(self, stream: str, final: bytes = b"") -> None:
        await self._call(
            "close stream",
            lambda: self._close_script(
                keys=[self._stream_key(stream)],
                args=[MAX_EVENTS_PER_STREAM, END_OF_STREAM, final, int(RETENTION_SECONDS * 1000)],
            ),
        )

    def subscribe(
        self, stream: str, last_event_id: str | None = None, *, replay: bool = True
    ) -> AsyncIterator[StreamEvent]:
        return self._follow(_Subscription(stream), last_event_id, replay)

    async def _follow(
        self, subscription: _Subscription, last_event_id: str | None, replay: bool
    ) -> AsyncIterator[StreamEvent]:
        stream = subscription.stream
        key = self._stream_key(stream)
        watched = False
        # registered once reading starts (a generator never started has nothing to undo)
        self._subscriptions[subscription.id] = subscription
        try:
            cursor, ended_already = await self._attach(subscription, last_event_id, replay)
            watched = True
            if ended_already is not None:
                yield ended_already
                return
            while True:
                entries = await self._read(subscription, key, cursor)
                if entries is None:  # end_subscriptions()
                    yield ENDED
                    return
                for entry_id, fields in entries:
                    event = _event(entry_id, fields)
                    cursor = event.id
                    yield event
                    if event.is_end:
                        return
        finally:
            self._subscriptions.pop(subscription.id, None)
            if watched:
                self._background.spawn(self._unwatch(stream, subscription.id))

    async def _attach(
        self, subscription: _Subscription, last_event_id: str | None, replay: bool
    ) -> tuple[str, StreamEvent | None]:
        """Registers the watcher and finds where to read from, in one round trip."""
        key = self._stream_key(subscription.stream)
        watch_key = self._watch_key(subscription.stream)
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(watch_key, {subscription.id: now_ms + int(WATCH_TTL_SECONDS * 1000)})
        pipe.zremrangebyscore(watch_key, "-inf", now_ms)
        pipe.pexpire(watch_key, int(WATCH_TTL_SECONDS * 1000))
        pipe.xrevrange(key, "+", "-", count=1)
        results = await self._call("subscribe", pipe.execute)
        if last_event_id is not None and last_event_id != "-1":
            return _normalise_id(last_event_id), None
        if last_event_id is not None or replay:
            return "0-0", None
        # Only what comes after the current last entry; a finished stream gives its end.
        last = results[-1]
        if not last:
            return "0-0", None
        event = _event(*last[0])
        return event.id, event if event.is_end else None

    async def _read(
        self, subscription: _Subscription, key: str, cursor: str
    ) -> list[tuple[Any, dict[Any, Any]]] | None:
        """The next entries after `cursor` (blocking until there are some); None once the
        subscription is ended. Waits for Redis to come back if it goes away."""
        down_since: float | None = None
        delay = 0.1
        while not subscription.ended:
            read = asyncio.ensure_future(
                self.redis.xread({key: cursor}, count=READ_BATCH, block=BLOCK_MS)
            )
            subscription.read = read
            try:
                await asyncio.wait({read})
            except asyncio.CancelledError:
                read.cancel()
                raise
            finally:
                subscription.read = None
            if read.cancelled():
                continue  # ended meanwhile
            exc = read.exception()
            if exc is None:
                if down_since is not None:
                    logger.info("Redis is back; stream %s goes on", subscription.stream)
                result: Any = read.result()  # RESP2: [[key, [(id, fields), ...]]]
                if result:
                    entries: list[tuple[Any, dict[Any, Any]]] = result[0][1]
                    return entries
                down_since = None
                continue
            if not isinstance(exc, _CONNECTION_ERRORS):
                raise exc
            now = time.monotonic()
            if down_since is None:
                down_since = now
                logger.warning(
                    "Redis went away while following %s (%s); waiting for it",
                    subscription.stream,
                    exc,
                )
            elif now - down_since > RECONNECT_GIVE_UP_SECONDS:
                raise Unavailable(f"Redis is not reachable (stream): {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return None

    async def _unwatch(self, stream: str, subscription_id: str) -> None:
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await self.redis.zrem(self._watch_key(stream), subscription_id)

    async def _refresh_watchers_forever(self) -> None:
        while True:
            await asyncio.sleep(WATCH_TTL_SECONDS / 3)
            subscriptions = list(self._subscriptions.values())
            if not subscriptions:
                continue
            expires = int((time.time() + WATCH_TTL_SECONDS) * 1000)
            pipe = self.redis.pipeline(transaction=False)
            for subscription in subscriptions:
                watch_key = self._watch_key(subscription.stream)
                # XX: only renews; a subscription not yet (or no longer) attached stays out
                pipe.zadd(watch_key, {subscription.id: expires}, xx=True)
                pipe.pexpire(watch_key, int(WATCH_TTL_SECONDS * 1000))
            try:
                await pipe.execute()
            except _CONNECTION_ERRORS as exc:
                logger.warning("refreshing stream watchers failed: %s", exc)

    async def check(self) -> None:
        await self._call("ping", self.redis.ping)

    async def has_subscribers(self, stream: str) -> bool:
        now_ms = int(time.time() * 1000)
        count = await self._call(
            "watchers", lambda: self.redis.zcount(self._watch_key(stream), now_ms, "+inf")
        )
        return int(count) > 0

    # --- signals ----------------------------------------------------------------------
    async def notify(self, channel: str, message: str = "") -> None:
        # Fire and forget: every signal is backed by state in the database that workers
        # and waiters also poll, so a lost one only delays.
        try:
            await self.redis.publish(self._channel(channel), message)
        except _CONNECTION_ERRORS as exc:
            logger.warning("signal %s not sent, Redis is not reachable: %s", channel, exc)

    def listen(self, channel: str) -> AsyncIterator[str]:
        return self._listeners.listen(channel)

    async def _signals_forever(self) -> None:
        """One pattern subscription per process fans signals out to local listeners."""
        pattern = self._channel("*")
        offset = len(self._channel(""))
        delay = 0.1
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                self._listening.set()
                if delay > 0.1:
                    logger.info("Redis is back; listening for signals again")
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=10.0)
                    if message is None:
                        await pubsub.ping()  # finds a dead connection
                        continue
                    if message.get("type") != "pmessage":
                        continue
                    channel = _text(message["channel"])[offset:]
                    data = _text(message["data"])
                    self._listeners.deliver(channel, data)
            except _CONNECTION_ERRORS as exc:
                if delay == 0.1:
                    logger.warning("Redis went away; signals are lost until it is back: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("listening for signals failed")
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
