"""The embedded backend: one SQLite file, shared with LangGraph's SQLite checkpointer."""

from __future__ import annotations

import asyncio
import datetime
import functools
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from threadline.serialization import dumps
from threadline.storage.database import (
    Connection,
    Database,
    Filter,
    Params,
    Row,
    UniqueViolation,
)
from threadline.storage.json_match import contains
from threadline.storage.sqlite.checkpoints import SqliteCheckpoints

MIGRATIONS = Path(__file__).parent / "migrations"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


@functools.lru_cache(maxsize=256)
def _parsed_needle(needle: str) -> Any:
    # One search compares the same needle with every row: parse it once.
    return orjson.loads(needle)


def _json_contains(doc: str | None, needle: str | None) -> int:
    if doc is None or needle is None:
        return 0
    return int(contains(orjson.loads(doc), _parsed_needle(needle)))


def _json_path(doc: str | None, path: str) -> str | None:
    if doc is None:
        return None
    value: Any = orjson.loads(doc)
    for key in orjson.loads(path):
        if isinstance(value, dict) and isinstance(key, str):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return None
    return orjson.dumps(value).decode()


@contextmanager
def _unique_violations() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "UNIQUE constraint failed" in str(exc):
            raise UniqueViolation(str(exc)) from exc
        raise


class _SqliteConnection(Connection):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        with _unique_violations():
            async with self._conn.execute(sql, params or {}) as cursor:
                row = await cursor.fetchone()
        return dict(row) if row is not None else None

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        with _unique_violations():
            async with self._conn.execute(sql, params or {}) as cursor:
                rows = await cursor.fetchall()
        return [dict(row) for row in rows]

    async def execute(self, sql: str, params: Params | None = None) -> int:
        with _unique_violations():
            async with self._conn.execute(sql, params or {}) as cursor:
                return cursor.rowcount


class SqliteDatabase(Database):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        # One connection serves every coroutine; the lock keeps transactions whole.
        self._lock = asyncio.Lock()
        self._checkpoints = SqliteCheckpoints(self)

    @property
    def checkpoints(self) -> SqliteCheckpoints:
        return self._checkpoints

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=30000",
            "PRAGMA foreign_keys=ON",
        ):
            await conn.execute(pragma)
        await conn.create_function("json_contains", 2, _json_contains, deterministic=True)
        await conn.create_function("json_at", 2, _json_path, deterministic=True)
        self._conn = conn
        await self._migrate()

    async def _migrate(self) -> None:
        assert self._conn is not None
        await self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY)"
        )
        async with self._conn.execute("SELECT version FROM schema_migrations") as cursor:
            done = {row[0] for row in await cursor.fetchall()}
        for migration in sorted(MIGRATIONS.glob("*.sql")):
            if migration.stem in done:
                continue
            await self._conn.executescript(
                "BEGIN;\n"
                + migration.read_text()
                + f"\nINSERT INTO schema_migrations VALUES ('{migration.stem}');\nCOMMIT;"
            )

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        conn = self._conn
        if conn is None:
            raise RuntimeError("database is not open")
        async with self._lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteConnection(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Connection]:
        # A single statement needs no BEGIN/COMMIT round trips; it only must not
        # land inside another coroutine's open transaction.
        if self._conn is None:
            raise RuntimeError("database is not open")
        async with self._lock:
            yield _SqliteConnection(self._conn)

    def json_param(self, value: Any) -> Any:
        return None if value is None else dumps(value).decode()

    def json_value(self, raw: Any) -> Any:
        return None if raw is None else orjson.loads(raw)

    def time_param(self, value: datetime.datetime) -> Any:
        return value.astimezone(datetime.UTC).strftime(_TS_FORMAT)

    def time_value(self, raw: Any) -> datetime.datetime | None:
        return None if raw is None else datetime.datetime.fromisoformat(raw)

    def json_contains(self, column: str, param: str) -> str:
        return f"json_contains({column}, :{param})"

    def json_filter(self, column: str, name: str, needle: dict[str, Any]) -> Filter:
        """Top-level text and number values are compared first by SQLite's own
        json_extract, so the exact (Python) containment test only sees the rows that pass:
        a metadata search then scans 100,000 threads in C instead of in Python."""
        sql, params = super().json_filter(column, name, needle)
        quick: list[str] = []
        for i, (key, value) in enumerate(needle.items()):
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                if '"' in key or "\\" in key:
                    continue
                quick.append(f"json_extract({column}, :{name}_k{i}) = :{name}_v{i}")
                params[f"{name}_k{i}"] = f'$."{key}"'
                params[f"{name}_v{i}"] = value
        return " AND ".join([*quick, sql]), params

    def json_path(self, column: str, path_param: str) -> str:
        return f"json_at({column}, :{path_param})"

    async def healthcheck(self) -> None:
        await self.fetch_one("SELECT 1 AS ok")
