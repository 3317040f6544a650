"""The Broker contract, run against every implementation (SAQ-style: one class, a
parametrised fixture). `peer` is a second handle on the same deployment: another process's
broker for Redis, the same object for the in-process broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.serverproc import free_port
from threadline.broker.base import Broker, StreamEvent, parse_event_id
from threadline.broker.local import LocalBroker
from threadline.core.errors import Unavailable

REDIS_URL = os.environ.get("THREADLINE_TEST_REDIS_URI", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "THREADLINE_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _redis_available() -> bool:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception:
        return False
    return True


requires_redis = pytest.mark.skipif(not _redis_available(), reason=f"no Redis at {REDIS_URL}")


def _postgres_available() -> bool:
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
    except Exception:
        return False
    return True


requires_postgres = pytest.mark.skipif(
    not _postgres_available(), reason=f"no PostgreSQL at {POSTGRES_URL}"
)


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A fresh database for this session's broker tests, dropped afterwards."""
    import psycopg

    name = f"threadline_broker_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_URL.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _postgres_pair(uri: str) -> tuple[Broker, Broker, list[Any]]:
    from threadline.broker.postgres import PostgresBroker
    from threadline.storage.postgres.database import PostgresDatabase

    dbs = [PostgresDatabase(uri, pool_size=4), PostgresDatabase(uri, pool_size=4)]
    for db in dbs:
        await db.open()
    one, two = (PostgresBroker(db, prefix="threadline:test") for db in dbs)
    await one.start()
    await two.start()
    return one, two, dbs


async def _redis_pair() -> tuple[Broker, Broker]:
    from threadline.broker.redis import RedisBroker

    prefix = f"tl-test-{uuid.uuid4().hex[:8]}"
    one, two = RedisBroker(REDIS_URL, prefix=prefix), RedisBroker(REDIS_URL, prefix=prefix)
    await one.start()
    await two.start()
    return one, two


@pytest.fixture(
    params=[
        "local",
        pytest.param("redis", marks=requires_redis),
        pytest.param("postgres", marks=requires_postgres),
    ]
)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Broker, Broker]]:
    if request.param == "local":
        local = LocalBroker()
        await local.start()
        yield local, local
        await local.stop()
        return
    if request.param == "postgres":
        first, second, dbs = await _postgres_pair(request.getfixturevalue("postgres_uri"))
        yield first, second
        await first.stop()
        await second.stop()
        for db in dbs:
            await db.close()
        return
    one, two = await _redis_pair()
    yield one, two
    await one.stop()
    await two.stop()


@pytest.fixture
def broker(pair: tuple[Broker, Broker]) -> Broker:
    return pair[0]


@pytest.fixture
def peer(pair: tuple[Broker, Broker]) -> Broker:
    return pair[1]


def _stream() -> str:
    return f"run:{uuid.uuid4()}"


async def _collect(events: AsyncIterator[StreamEvent], timeout: float = 5.0) -> list[StreamEvent]:
    async def drain() -> list[StreamEvent]:
        return [event async for event in events]

    return await asyncio.wait_for(drain(), timeout)


async def _collect_some(events: AsyncIterator[StreamEvent], count: int) -> list[StreamEvent]:
    """The first `count` events of a stream that is never closed."""
    got: list[StreamEvent] = []

    async def take() -> None:
        async for event in events:
            got.append(event)
            if len(got) == count:
                return

    try:
        await asyncio.wait_for(take(), 5)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return got


async def _started(
    broker: Broker,
    stream: str,
    last_event_id: str | None = None,
    *,
    replay: bool = True,
    timeout: float = 5.0,
) -> tuple[asyncio.Task[list[StreamEvent]], AsyncIterator[StreamEvent]]:
    """A subscription reading in the background, attached before this returns."""
    events = broker.subscribe(stream, last_event_id, replay=replay)
    task = asyncio.create_task(_collect(events, timeout))
    for _ in range(200):
        if await broker.has_subscribers(stream):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    return task, events


class TestBroker:
    async def test_replay_from_start_then_end_with_final(
        self, broker: Broker, peer: Broker
    ) -> None:
        stream = _stream()
        ids = [await broker.publish(stream, "values", f'{{"n": {i}}}'.encode()) for i in range(5)]
        await broker.close_stream(stream, b'{"status": "success"}')
        events = await _collect(peer.subscribe(stream, "-1"))
        assert [e.id for e in events[:-1]] == ids
        assert [e.data for e in events[:-1]] == [f'{{"n": {i}}}'.encode() for i in range(5)]
        assert events[-1].is_end and events[-1].data == b'{"status": "success"}'

    async def test_ids_are_increasing_stream_ids(self, broker: Broker) -> None:
        stream = _stream()
        ids = [await broker.publish(stream, "custom", b"1") for _ in range(50)]
        parsed = [parse_event_id(i) for i in ids]
        assert parsed == sorted(parsed) and len(set(parsed)) == len(parsed)
        assert all(abs(ms - time.time() * 1000) < 60_000 for ms, _ in parsed)

    async def test_concurrent_publishers_keep_one_order(self, broker: Broker, peer: Broker) -> None:
        stream = _stream()
        task, _ = await _started(broker, stream, "-1")

        async def publish(source: Broker, tag: str) -> list[str]:
            return [await source.publish(stream, "custom", f"{tag}{i}".encode()) for i in range(30)]

        ids_a, ids_b = await asyncio.gather(publish(broker, "a"), publish(peer, "b"))
        await broker.close_stream(stream)
        events = [e for e in await task if not e.is_end]
        seen = [e.id for e in events]
        assert sorted(seen, key=parse_event_id) == seen
        assert sorted(seen) == sorted(ids_a + ids_b)
        assert [e.data for e in events if e.data.startswith(b"a")] == [
            f"a{i}".encode() for i in range(30)
        ]

    async def test_counted_appends_from_two_processes_share_no_number(
        self, broker: Broker, peer: Broker
    ) -> None:
        stream = f"protocol:{uuid.uuid4()}"
        task, _ = await _started(broker, stream, "-1")

        async def append(source: Broker, tag: str) -> list[int]:
            return [await source.append(stream, "custom", f"{tag}{i}".encode()) for i in range(20)]

        numbers = await asyncio.gather(append(broker, "a"), append(peer, "b"))
        assert sorted(numbers[0] + numbers[1]) == list(range(1, 41))
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        after = await _collect_some(peer.subscribe(stream, "0-35"), 5)
        assert [e.id for e in after] == [f"0-{n}" for n in range(36, 41)]
        replayed = await _collect_some(peer.subscribe(stream, "-1"), 40)
        assert [parse_event_id(e.id)[1] for e in replayed] == list(range(1, 41))

    async def test_publish_many_keeps_order_with_single_publishes(
        self, broker: Broker, peer: Broker
    ) -> None:
        stream = _stream()
        await broker.publish(stream, "values", b"0")
        await broker.publish_many(stream, [("custom", str(i).encode()) for i in range(1, 300)])
        await broker.publish(stream, "values", b"300")
        await broker.close_stream(stream)
        events = [e for e in await _collect(peer.subscribe(stream, "-1")) if not e.is_end]
        assert [int(e.data) for e in events] == list(range(301))
        parsed = [parse_event_id(e.id) for e in events]
        assert parsed == sorted(parsed) and len(set(parsed)) == 301

        counted = f"protocol:{uuid.uuid4()}"
        await broker.append(counted, "lifecycle", b"first")
        await broker.publish_many(counted, [("values", b"x")] * 10, counted=True)
        replayed = await _collect_some(peer.subscribe(counted, "-1"), 11)
        assert [e.id for e in replayed] == [f"0-{n}" for n in range(1, 12)]

    async def test_a_forgotten_log_starts_again(self, broker: Broker, peer: Broker) -> None:
        stream = f"protocol:{uuid.uuid4()}"
        for _ in range(3):
            await broker.append(stream, "values", b"old")
        await peer.forget(stream)
        assert await broker.append(stream, "values", b"new") == 1
        [event] = await _collect_some(peer.subscribe(stream, "-1"), 1)
        assert (event.id, event.data) == ("0-1", b"new")

    async def test_resume_after_last_event_id(self, broker: Broker, peer: Broker) -> None:
        stream = _stream()
        ids = [await broker.publish(stream, "values", str(i).encode()) for i in range(6)]
        await broker.close_stream(stream)
        events = await _collect(peer.subscribe(stream, ids[2]))
        assert [e.id for e in events if not e.is_end] == ids[3:]
        assert events[-1].is_end

    async def test_replay_then_tail_without_gap_or_repeat(
        self, broker: Broker, peer: Broker
    ) -> None:
        stream = _stream()
        early = [await broker.publish(stream, "values", b"early") for _ in range(3)]
        task, _ = await _started(peer, stream, "-1")
        late = [await broker.publish(stream, "values", b"late") for _ in range(3)]
        await broker.close_stream(stream, b"done")
        events = await task
        assert [e.id for e in events if not e.is_end] == early + late
        assert events[-1].data == b"done"

    async def test_no_replay_gives_only_new_events(self, broker: Broker, peer: Broker) -> None:
        stream = _stream()
        await broker.publish(stream, "values", b"old")
        task, _ = await _started(peer, stream, None, replay=False)
        new = await broker.publish(stream, "values", b"new")
        await broker.close_stream(stream)
        events = await task
        assert [e.id for e in events if not e.is_end] == [new]

    async def test_no_replay_on_unknown_stream_sees_its_first_event(
        self, broker: Broker, peer: Broker
    ) -> None:
        stream = _stream()
        task, _ = await _started(peer, stream, None, replay=False)
        first = await broker.publish(stream, "values", b"first")
        await broker.close_stream(stream)
        assert [e.id for e in await task if not e.is_end] == [first]

    async def test_no_replay_on_finished_stream_gives_its_end(
        self, broker: Broker, peer: Broker
    ) -> None:
        stream = _stream()
        await broker.publish(stream, "values", b"x")
        await broker.close_stream(stream, b"final")
        events = await _collect(peer.subscribe(stream, None, replay=False))
        assert len(events) == 1 and events[0].is_end and events[0].data == b"final"

    async def test_close_is_idempotent(self, broker: Broker, peer: Broker) -> None:
        stream = _stream()
        await broker.publish(stream, "values", b"x")
        await broker.close_stream(stream, b"first")
        await peer.close_stream(stream, b"second")
        events = await _collect(broker.subscribe(stream, "-1"))
        assert [e.is_end for e in events] == [False, True]
        assert events[-1].data == b"first"

    async def test_closing_an_unknown_stream_ends_its_waiters(
        self, broker: Broker, peer: Broker
    ) -> None:
        stream = _stream()
        task, _ = await _started(peer, stream, None, replay=False)
        await broker.close_stream(stream, b"cancelled")
        events = await task
        assert len(events) == 1 and events[0].data == b"cancelled"

    async def test_many_subscribers_see_the_same_events(self, broker: Broker, peer: Broker) -> None:
        stream = _stream()
        tasks = [(await _started(b, stream, "-1"))[0] for b in (broker, peer, broker, peer)]
        ids = [await broker.publish(stream, "messages", str(i).encode()) for i in range(20)]
        await broker.close_stream(stream)
        for task in tasks:
            assert [e.id for e in await task if not e.is_end] == ids

    async def test_has_subscribers_follows_subscriptions(
        self, broker: Broker, peer: Broker
    ) -> None:
        stream = f"thread:{uuid.uuid4()}"
        assert not await broker.has_subscribers(stream)
        events = peer.subscribe(stream, None, replay=False)
        task = asyncio.create_task(_collect(events, timeout=10))
        deadline = time.monotonic() + 5
        while not await broker.has_subscribers(stream):
            assert time.monotonic() < deadline, "the subscription was never seen"
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 5
        while await broker.has_subscribers(stream):
            assert time.monotonic() < deadline, "the subscription outlived its reader"
            await asyncio.sleep(0.02)

    async def test_end_subscriptions_ends_open_streams(self, broker: Broker) -> None:
        stream = _stream()
        await broker.publish(stream, "values", b"x")
        task, _ = await _started(broker, stream, "-1")
        await broker.end_subscriptions()
        events = await asyncio.wait_for(task, 5)
        assert [e.data for e in events] == [b"x", b""]
        assert events[-1].is_end

    async def test_notify_reaches_listeners_of_that_channel_only(
        self, broker: Broker, peer: Broker
    ) -> None:
        channel = f"test:{uuid.uuid4().hex}"
        got: list[str] = []
        other: list[str] = []

        async def listen(name: str, into: list[str]) -> None:
            async for message in peer.listen(name):
                into.append(message)

        tasks = [
            asyncio.create_task(listen(channel, got)),
            asyncio.create_task(listen(channel + "-other", other)),
        ]
        await asyncio.sleep(0.1)
        await broker.notify(channel, "run-1:interrupt")
        await broker.notify(channel)
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert got == ["run-1:interrupt", ""]
        assert other == []


# --- Redis only ----------------------------------------------------------------------------


@requires_redis
async def test_redis_stream_expires_after_close_and_is_trimmed() -> None:
    from threadline.broker import redis as redis_broker

    one, two = await _redis_pair()
    try:
        assert isinstance(one, redis_broker.RedisBroker)
        stream = _stream()
        key = one._stream_key(stream)
        await one.publish(stream, "values", b"x")
        ttl = await one.redis.pttl(key)
        assert ttl > redis_broker.RETENTION_SECONDS * 1000  # the idle expiry, not the final one
        await one.close_stream(stream)
        assert 0 < await one.redis.pttl(key) <= redis_broker.RETENTION_SECONDS * 1000
        info = await one.redis.xinfo_stream(key)
        assert info["length"] == 2
    finally:
        await one.stop()
        await two.stop()


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop and start at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while not self._accepting():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def _accepting(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True
        )
        deadline = time.monotonic() + 10
        while self._accepting():
            assert time.monotonic() < deadline, "redis-server did not stop"
            time.sleep(0.05)


@pytest.fixture
def private_redis() -> Any:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


async def test_redis_restart_errors_then_recovers(private_redis: PrivateRedis) -> None:
    from threadline.broker.redis import RedisBroker

    one = RedisBroker(private_redis.url, prefix="fault")
    two = RedisBroker(private_redis.url, prefix="fault")
    await one.start()
    await two.start()
    try:
        stream = _stream()
        first = await one.publish(stream, "values", b"before")
        task, _ = await _started(two, stream, "-1", timeout=30)
        got: list[str] = []

        async def listen() -> None:
            async for message in two.listen("wake"):
                got.append(message)

        listener = asyncio.create_task(listen())
        private_redis.stop()
        with pytest.raises(Unavailable):
            await one.publish(stream, "values", b"while down")
        await one.notify("wake", "lost")  # fire and forget: no error
        private_redis.start()
        # The open subscription goes on; the listener is back after reconnecting.
        second = await one.publish(stream, "values", b"after")
        deadline = time.monotonic() + 10
        while "again" not in got:
            assert time.monotonic() < deadline, "the listener did not come back"
            await one.notify("wake", "again")
            await asyncio.sleep(0.2)
        await one.close_stream(stream, b"end")
        events = await asyncio.wait_for(task, 10)
        assert [e.id for e in events if not e.is_end] == [first, second]
        assert events[-1].data == b"end"
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    finally:
        await one.stop()
        await two.stop()


async def test_redis_start_fails_clearly_when_unreachable() -> None:
    from threadline.broker.redis import RedisBroker

    broker = RedisBroker(f"redis://:secret@127.0.0.1:{free_port()}/0", prefix="x")
    with pytest.raises(Unavailable) as info:
        await broker.start()
    assert "not reachable" in info.value.detail and "secret" not in info.value.detail


@requires_postgres
async def test_postgres_reaps_ended_streams(
    postgres_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadline.broker import postgres as pg_broker

    one, two, dbs = await _postgres_pair(postgres_uri)
    try:
        assert isinstance(one, pg_broker.PostgresBroker)
        ended, running = _stream(), _stream()
        await one.publish(ended, "values", b"x")
        await one.close_stream(ended)
        await one.publish(running, "values", b"y")
        monkeypatch.setattr(pg_broker, "RETENTION_SECONDS", 0.0)
        await asyncio.sleep(0.01)
        await one.reap()
        rows = await dbs[0].fetch_all(
            "SELECT stream FROM stream_events WHERE stream IN (:a, :b)",
            {"a": ended, "b": running},
        )
        assert [r["stream"] for r in rows] == [running]
    finally:
        await one.stop()
        await two.stop()
        for db in dbs:
            await db.close()


def test_local_streams_are_dropped_when_ended_or_idle_and_unwatched() -> None:
    import asyncio as _asyncio

    from threadline.broker import local

    now = time.monotonic()
    ended = local._Stream(closed_at=now - local.RETENTION_SECONDS - 1)
    idle = local._Stream(touched_at=now - local.IDLE_SECONDS - 1)
    fresh = local._Stream(touched_at=now - 1)
    watched = local._Stream(touched_at=now - local.IDLE_SECONDS - 1)
    watched.subscribers.add(_asyncio.Queue())
    assert local._expired(ended, now) and local._expired(idle, now)
    assert not local._expired(fresh, now) and not local._expired(watched, now)
