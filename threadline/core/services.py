"""The composition root: every long-lived component of a server process, built from Settings.

The embedded and the scale-out deployment differ only here: SQLite + the in-process
broker, or PostgreSQL + Redis (or PostgreSQL alone, its broker on LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from threadline.broker.base import Broker
from threadline.broker.local import LocalBroker
from threadline.graphs import GraphRegistry
from threadline.settings import Settings
from threadline.storage.assistants import AssistantRepository
from threadline.storage.crons import CronRepository
from threadline.storage.database import Database
from threadline.storage.runs import RunRepository
from threadline.storage.store import StoreOpener
from threadline.storage.threads import ThreadRepository

logger = logging.getLogger("threadline")

_CLOSE_TIMEOUT = 5.0


def build_database(settings: Settings) -> Database:
    if settings.backend == "postgres":
        from threadline.storage.postgres.database import PostgresDatabase

        return PostgresDatabase(settings.database_uri, pool_size=settings.db_pool_size)
    from threadline.storage.sqlite.database import SqliteDatabase

    return SqliteDatabase(settings.sqlite_path)


def build_broker(settings: Settings, db: Database) -> Broker:
    if settings.backend != "postgres":
        return LocalBroker()
    if settings.redis_uri:
        from threadline.broker.redis import RedisBroker

        return RedisBroker(settings.redis_uri, prefix=settings.redis_prefix)
    from threadline.broker.postgres import PostgresBroker
    from threadline.storage.postgres.database import PostgresDatabase

    assert isinstance(db, PostgresDatabase)
    return PostgresBroker(db, prefix=settings.redis_prefix)


@dataclass
class _Closer:
    """Something to close on the event loop that opened it."""

    loop: asyncio.AbstractEventLoop
    close: Callable[[], Awaitable[Any]]


@dataclass
class Services:
    settings: Settings
    graphs: GraphRegistry
    db: Database
    broker: Broker
    assistants: AssistantRepository
    threads: ThreadRepository
    runs: RunRepository
    crons: CronRepository
    checkpointer: Any = None
    store: Any = None
    stores: StoreOpener | None = None
    worker: Any = None
    cron_scheduler: Any = None
    webhooks: Any = None  # the WebhookDeliverer of this process, once started
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    _closers: list[_Closer] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, graphs: GraphRegistry) -> Services:
        db = build_database(settings)
        return cls(
            settings=settings,
            graphs=graphs,
            db=db,
            broker=build_broker(settings, db),
            assistants=AssistantRepository(db),
            threads=ThreadRepository(db),
            runs=RunRepository(db),
            crons=CronRepository(db),
            stores=StoreOpener.from_settings(settings),
        )

    async def open_checkpointer(self) -> Any:
        """LangGraph's saver for this backend, bound to the calling event loop (called once
        for the API loop and once for the graph loop)."""
        loop = asyncio.get_running_loop()
        if self.settings.backend == "postgres":
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

            from threadline.storage.postgres.database import PostgresDatabase

            assert isinstance(self.db, PostgresDatabase)
            if self.db.owns_loop():
                pool = self.db.pool
            else:
                # The saver takes one connection at a time (it holds a lock per call).
                pool = await self.db.open_pool(max_size=2)
                self._closers.append(_Closer(loop, pool.close))
            saver: Any = AsyncPostgresSaver(pool)
        else:
            import aiosqlite
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            from threadline.storage.sqlite.database import SqliteDatabase

            assert isinstance(self.db, SqliteDatabase)
            conn = await aiosqlite.connect(self.db.path, isolation_level=None)
            await conn.execute("PRAGMA busy_timeout=30000")
            await conn.execute("PRAGMA synchronous=NORMAL")
            saver = AsyncSqliteSaver(conn)
            self._closers.append(_Closer(loop, conn.close))
        await saver.setup()
        return saver

    async def open_store(self, *, sweep: bool = False) -> Any:
        """LangGraph's store for this backend, bound to the calling event loop (called once
        for the API loop, which sweeps expired items, and once for the graph loop)."""
        if self.stores is None:
            self.stores = StoreOpener.from_settings(self.settings)
        opened = await self.stores.open(self.db, sweep=sweep)
        self._closers.append(_Closer(asyncio.get_running_loop(), opened.close))
        return opened.store

    async def start(self) -> None:
        await self.db.open()
        await self.broker.start()
        self.checkpointer = await self.open_checkpointer()
        self.store = await self.open_store(sweep=True)

    def wake_webhooks(self) -> None:
        """A delivery was just written: send it now rather than at the next poll."""
        if self.webhooks is not None:
            self.webhooks.wake()

    async def stop(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.broker.stop()
        for closer in reversed(self._closers):
            try:
                await _close_on_its_loop(closer)
            except Exception:
                logger.warning("closing a checkpointer connection failed", exc_info=True)
        self._closers.clear()
        await self.db.close()


async def _close_on_its_loop(closer: _Closer) -> None:
    loop = closer.loop
    if loop is asyncio.get_running_loop():
        await closer.close()
    elif loop.is_running():
        future = asyncio.run_coroutine_threadsafe(_awaited(closer.close), loop)
        await asyncio.wait_for(asyncio.wrap_future(future), _CLOSE_TIMEOUT)
    elif not loop.is_closed():
        # The graph loop has stopped: run it once more, from a thread of its own.
        await asyncio.wait_for(
            asyncio.to_thread(loop.run_until_complete, _awaited(closer.close)), _CLOSE_TIMEOUT
        )


async def _awaited(close: Callable[[], Awaitable[Any]]) -> Any:
    return await close()
