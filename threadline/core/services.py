"""The composition root: every long-lived component of a server process, built from Settings."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from threadline.broker.base import Broker
from threadline.broker.local import LocalBroker
from threadline.graphs import GraphRegistry
from threadline.settings import Settings
from threadline.storage.assistants import AssistantRepository
from threadline.storage.database import Database
from threadline.storage.runs import RunRepository
from threadline.storage.sqlite.database import SqliteDatabase
from threadline.storage.threads import ThreadRepository

logger = logging.getLogger("threadline")


@dataclass
class Services:
    settings: Settings
    graphs: GraphRegistry
    db: Database
    broker: Broker
    assistants: AssistantRepository
    threads: ThreadRepository
    runs: RunRepository
    checkpointer: Any = None
    store: Any = None
    worker: Any = None
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    _closers: list[Any] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, graphs: GraphRegistry) -> Services:
        db = SqliteDatabase(settings.sqlite_path)
        return cls(
            settings=settings,
            graphs=graphs,
            db=db,
            broker=LocalBroker(),
            assistants=AssistantRepository(db),
            threads=ThreadRepository(db),
            runs=RunRepository(db),
        )

    async def open_checkpointer(self) -> AsyncSqliteSaver:
        """A checkpointer bound to the calling event loop, over the same database file."""
        assert isinstance(self.db, SqliteDatabase)
        conn = await aiosqlite.connect(self.db.path, isolation_level=None)
        await conn.execute("PRAGMA busy_timeout=30000")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        self._closers.append(conn)
        return saver

    async def start(self) -> None:
        await self.db.open()
        await self.broker.start()
        self.checkpointer = await self.open_checkpointer()

    async def stop(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.broker.stop()
        for closer in reversed(self._closers):
            await closer.close()
        await self.db.close()
