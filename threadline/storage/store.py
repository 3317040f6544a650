"""LangGraph's own long-term store on the deployment's database, one instance per event loop.

SQLite: `AsyncSqliteStore` on the same file, a connection of its own per loop.
PostgreSQL: `AsyncPostgresStore` on a pool (the API's own pool on its loop); semantic
search needs the pgvector extension.

Each store gets a few small corrections, made here rather than in a store of our own:
- expired items are never read: PostgreSQL filters them (`omit_expired`), SQLite deletes
  them at the start of every batch (its reads do not look at `expires_at`);
- SQLite batches run in `BEGIN IMMEDIATE` transactions (they read then write, which in a
  deferred transaction fails at once instead of waiting for the lock) and roll back on
  error instead of committing half a batch;
- `$gt`/`$gte`/`$lt`/`$lte` compare numbers as numbers and strings as strings on both
  databases (PostgreSQL compared the text of numbers: "10" < "9");
- SQLite updates keep `created_at` (the store replaced the row) and re-index an item's
  vectors; `store.index.fields` reaches the SQLite store (it reads `text_fields`);
- PostgreSQL keeps `ttl_minutes` as a float (an integer column turned a refreshed 0.5-minute
  TTL into 0);
- SQLite's vector functions come from the sqlite-vec extension where Python can load
  extensions, and from small Python functions where it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import importlib.util
import logging
import math
import re
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiosqlite
import orjson
from langgraph.store.base import Item, PutOp, SearchItem
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite.aio import AsyncSqliteStore
from langgraph.store.sqlite.base import _validate_filter_key

from threadline.settings import ConfigError, Settings

if TYPE_CHECKING:
    from threadline.storage.database import Database

logger = logging.getLogger("threadline.store")

DEFAULT_SWEEP_INTERVAL_MINUTES = 5.0
# pg_advisory_lock key serialising the store's table setup across processes
_SETUP_LOCK = 7_240_551_301
_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_STOP_TIMEOUT = 5.0
_REPLACE_ITEMS = "INSERT OR REPLACE INTO store ("
_KEEP_CREATED_AT = (
    " ON CONFLICT (prefix, key) DO UPDATE SET value = excluded.value,"
    " updated_at = excluded.updated_at, expires_at = excluded.expires_at,"
    " ttl_minutes = excluded.ttl_minutes"
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- the embedding function of store.index -------------------------------------------------
def load_embed(reference: str, base_dir: Path) -> Any:
    """The object `store.index.embed` names: `./file.py:attr` (relative to langgraph.json)
    or `package.module:attr`. Provider strings are refused by Settings beforehand."""
    module_ref, _, attr = reference.rpartition(":")
    where = f"store.index.embed {reference!r}"
    try:
        if module_ref.endswith(".py") or "/" in module_ref:
            path = (base_dir / module_ref).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"{where}: file not found: {path}")
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
            stem = re.sub(r"\W", "_", path.stem)
            name = f"threadline_embed_{stem}_{digest}"
            module = sys.modules.get(name)
            if module is None:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ConfigError(f"{where}: cannot import {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(name, None)
                    raise
        else:
            module = importlib.import_module(module_ref)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
    try:
        embed = getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"{where}: {module_ref} has no attribute {attr!r}") from exc
    if not callable(embed) and not hasattr(embed, "aembed_documents"):
        raise ConfigError(
            f"{where} is a {type(embed).__name__}, not a function taking a list of texts "
            "and returning a list of vectors (or LangChain Embeddings)"
        )
    return embed


# --- SQLite ---------------------------------------------------------------------------------
def _unpack(blob: bytes) -> tuple[float, ...]:
    return struct.unpack(f"{len(blob) // 4}f", blob)


def _cosine_distance(a: bytes | None, b: bytes | None) -> float | None:
    if a is None or b is None:
        return None
    x, y = _unpack(a), _unpack(b)
    norm = math.sqrt(sum(v * v for v in x)) * math.sqrt(sum(v * v for v in y))
    if norm == 0:
        return 1.0
    return 1.0 - sum(p * q for p, q in zip(x, y, strict=False)) / norm


def _l2_distance(a: bytes | None, b: bytes | None) -> float | None:
    if a is None or b is None:
        return None
    return math.dist(_unpack(a), _unpack(b))


def _l1_distance(a: bytes | None, b: bytes | None) -> float | None:
    if a is None or b is None:
        return None
    return sum(abs(p - q) for p, q in zip(_unpack(a), _unpack(b), strict=False))


def _sqlite_can_load_extensions() -> bool:
    import sqlite3

    return hasattr(sqlite3.Connection, "enable_load_extension")


class SqliteStore(AsyncSqliteStore):
    """`AsyncSqliteStore` with the corrections listed at the top of this module."""

    def __init__(self, conn: aiosqlite.Connection, *, refresh_on_read: bool, **kw: Any):
        super().__init__(conn, **kw)
        # The store only refreshes when its ttl config says `refresh_on_read`, even when
        # asked explicitly; the default for a read that does not say is kept here.
        self.refresh_default = refresh_on_read

    async def aget(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> Item | None:
        if refresh_ttl is None:
            refresh_ttl = self.refresh_default
        return await super().aget(namespace, key, refresh_ttl=refresh_ttl)

    async def asearch(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        if refresh_ttl is None:
            refresh_ttl = self.refresh_default
        return await super().asearch(
            namespace_prefix,
            query=query,
            filter=filter,
            limit=limit,
            offset=offset,
            refresh_ttl=refresh_ttl,
        )

    async def setup(self) -> None:
        if self.is_setup or not self.index_config or _sqlite_can_load_extensions():
            await super().setup()
            return
        # This Python cannot load sqlite-vec: the same migrations, and the three
        # distance functions the store's queries call, in Python.
        index, self.index_config = self.index_config, None
        try:
            await super().setup()
        finally:
            self.index_config = index
        for name, func in (
            ("vec_distance_cosine", _cosine_distance),
            ("vec_distance_L2", _l2_distance),
            ("vec_distance_L1", _l1_distance),
        ):
            await self.conn.create_function(name, 2, func, deterministic=True)
        await self.conn.execute(
            "CREATE TABLE IF NOT EXISTS vector_migrations (v INTEGER PRIMARY KEY)"
        )
        async with self.conn.execute(
            "SELECT v FROM vector_migrations ORDER BY v DESC LIMIT 1"
        ) as cur:
            row = await cur.fetchone()
        version = -1 if row is None else row[0]
        for v, sql in enumerate(self.VECTOR_MIGRATIONS[version + 1 :], start=version + 1):
            await self.conn.executescript(sql)
            await self.conn.execute("INSERT INTO vector_migrations (v) VALUES (?)", (v,))

    @contextlib.asynccontextmanager
    async def _cursor(self, *, transaction: bool = True) -> AsyncIterator[aiosqlite.Cursor]:
        if not self.is_setup:
            await self.setup()
        async with self.lock:
            if not transaction:
                async with self.conn.cursor() as cur:
                    yield cur
                return
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                async with self.conn.cursor() as cur:
                    await cur.execute(
                        "DELETE FROM store WHERE expires_at IS NOT NULL"
                        " AND expires_at < CURRENT_TIMESTAMP"
                    )
                    yield cur
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    def _prepare_batch_PUT_queries(
        self, put_ops: Sequence[tuple[int, PutOp]]
    ) -> tuple[list[tuple[str, Sequence[Any]]], Any]:
        # The store writes items with INSERT OR REPLACE, which resets `created_at` at
        # every update; an upsert keeps it. The replace also dropped the item's vectors
        # (ON DELETE CASCADE): they are deleted explicitly, and written again if indexed.
        queries, embedding_request = super()._prepare_batch_PUT_queries(put_ops)
        written = {(".".join(op.namespace), op.key) for _, op in put_ops if op.value is not None}
        fixed: list[tuple[str, Sequence[Any]]] = []
        for query, params in queries:
            if _REPLACE_ITEMS in query:
                if self.index_config and written:
                    rows = ", ".join("(?, ?)" for _ in written)
                    fixed.append(
                        (
                            f"DELETE FROM store_vectors WHERE (prefix, key) IN (VALUES {rows})",
                            [part for pair in sorted(written) for part in pair],
                        )
                    )
                query = query.replace(_REPLACE_ITEMS, "INSERT INTO store (") + _KEEP_CREATED_AT
            fixed.append((query, params))
        return fixed, embedding_request

    def _get_filter_condition(self, key: str, op: str, value: Any) -> tuple[str, list[Any]]:
        _validate_filter_key(key)  # it goes into the SQL text
        path = f"'$.{key}'"
        symbol = _COMPARISONS.get(op)
        if symbol is not None and _is_number(value):
            return (
                f"(json_type(value, {path}) IN ('integer', 'real')"
                f" AND json_extract(value, {path}) {symbol} ?)",
                [value],
            )
        if symbol is not None and isinstance(value, str):
            return (
                f"(json_type(value, {path}) = 'text' AND json_extract(value, {path}) {symbol} ?)",
                [value],
            )
        if op in ("$eq", "$ne") and isinstance(value, list | dict):
            # json_extract gives the JSON text of arrays and objects (the store passed
            # bytes, which never equal text)
            sign = "=" if op == "$eq" else "!="
            return f"json_extract(value, {path}) {sign} ?", [orjson.dumps(value).decode()]
        condition, params = super()._get_filter_condition(key, op, value)
        return condition, list(params)


# --- PostgreSQL -----------------------------------------------------------------------------
class PostgresStore(AsyncPostgresStore):
    """`AsyncPostgresStore` comparing numbers as numbers."""

    def _get_filter_condition(self, key: str, op: str, value: Any) -> tuple[str, list[Any]]:
        symbol = _COMPARISONS.get(op)
        if symbol is not None and _is_number(value):
            return (
                "CASE WHEN jsonb_typeof(value->%s) = 'number'"
                f" THEN (value->>%s)::numeric {symbol} %s::numeric END",
                [key, key, str(value)],
            )
        if symbol is not None and isinstance(value, str):
            return (
                "CASE WHEN jsonb_typeof(value->%s) = 'string'"
                f' THEN (value->>%s) COLLATE "C" {symbol} %s END',
                [key, key, value],
            )
        condition, params = super()._get_filter_condition(key, op, value)
        return condition, list(params)


async def _setup_postgres(store: Any, uri: str) -> None:
    """The store's tables, one process at a time. Polled like our migrations: pgvector's
    index creation would wait for a session blocked in pg_advisory_lock."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        while True:
            cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_SETUP_LOCK,))
            row = await cursor.fetchone()
            if row and row[0]:
                break
            await asyncio.sleep(0.1)
        try:
            if store.index_config:
                cursor = await conn.execute(
                    "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
                )
                if await cursor.fetchone() is None:
                    raise ConfigError(
                        "store.index (semantic search) on PostgreSQL needs the pgvector "
                        "extension, which this PostgreSQL server does not have: install "
                        "pgvector (https://github.com/pgvector/pgvector), or remove "
                        "store.index from langgraph.json"
                    )
            await store.setup()
            # The store keeps `ttl_minutes` as an integer, so a refresh of a 0.5-minute
            # TTL expired the item at once; SQLite's store keeps it as REAL.
            cursor = await conn.execute(
                "SELECT data_type FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = 'store' AND column_name = 'ttl_minutes'"
            )
            row = await cursor.fetchone()
            if row and row[0] == "integer":
                await conn.execute(
                    "ALTER TABLE store ALTER COLUMN ttl_minutes TYPE double precision"
                )
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))


# --- opening --------------------------------------------------------------------------------
@dataclass
class OpenedStore:
    store: Any
    close: Callable[[], Awaitable[None]]


class StoreOpener:
    """Opens the deployment's store on the calling event loop, as langgraph.json configures
    it. Built at start-up, so that a bad `store` section stops the server with a message."""

    def __init__(self, settings: Settings, embed: Any = None) -> None:
        self.settings = settings
        config = settings.config.store
        self.index = config.index if config else None
        self.ttl = config.ttl if config else None
        self.embed = embed
        self._set_up = False

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreOpener:
        config = settings.config.store
        embed = None
        if config and config.index:
            embed = load_embed(config.index.embed, settings.base_dir)
        return cls(settings, embed)

    @property
    def refresh_on_read(self) -> bool:
        return self.ttl.refresh_on_read if self.ttl else True

    @property
    def sweep_interval_minutes(self) -> float:
        interval = self.ttl.sweep_interval_minutes if self.ttl else None
        return interval or DEFAULT_SWEEP_INTERVAL_MINUTES

    def index_config(self) -> dict[str, Any] | None:
        if self.index is None:
            return None
        extra = {k: v for k, v in (self.index.model_extra or {}).items() if v is not None}
        config: dict[str, Any] = {**extra, "dims": self.index.dims, "embed": self.embed}
        if self.index.fields is not None:
            # AsyncSqliteStore reads `text_fields`, AsyncPostgresStore `fields`
            config["fields"] = config["text_fields"] = self.index.fields
        return config

    def ttl_config(self, *, refresh_on_read: bool) -> dict[str, Any]:
        return {
            "refresh_on_read": refresh_on_read,
            "default_ttl": self.ttl.default_ttl if self.ttl else None,
            "sweep_interval_minutes": self.sweep_interval_minutes,
            "omit_expired": True,
        }

    async def open(self, db: Database, *, sweep: bool = False) -> OpenedStore:
        """A store bound to the calling loop; `sweep` starts its TTL sweeper there."""
        if self.settings.backend == "postgres":
            opened = await self._open_postgres(db)
        else:
            opened = await self._open_sqlite(db)
        store = opened.store
        if not sweep:
            return opened
        await store.start_ttl_sweeper(self.sweep_interval_minutes)
        close_connection = opened.close

        async def close() -> None:
            with contextlib.suppress(Exception):
                await store.stop_ttl_sweeper(timeout=_STOP_TIMEOUT)
            await close_connection()

        return OpenedStore(store, close)

    async def _open_sqlite(self, db: Database) -> OpenedStore:
        from threadline.storage.sqlite.database import SqliteDatabase

        assert isinstance(db, SqliteDatabase)
        conn = await aiosqlite.connect(db.path, isolation_level=None)
        try:
            for pragma in (
                "PRAGMA busy_timeout=30000",
                "PRAGMA synchronous=NORMAL",
                # store_vectors rows go with their item (ON DELETE CASCADE)
                "PRAGMA foreign_keys=ON",
            ):
                await conn.execute(pragma)
            store = SqliteStore(
                conn,
                refresh_on_read=self.refresh_on_read,
                index=self.index_config(),
                # the store refreshes only when this says so; the default is kept apart
                ttl=self.ttl_config(refresh_on_read=True),
            )
            await store.setup()
        except BaseException:
            await conn.close()
            raise

        async def close() -> None:
            _cancel_batcher(store)
            await conn.close()

        return OpenedStore(store, close)

    async def _open_postgres(self, db: Database) -> OpenedStore:
        from threadline.storage.postgres.database import PostgresDatabase

        assert isinstance(db, PostgresDatabase)
        own_pool = None
        if db.owns_loop():
            conn: Any = db.pool
        else:
            # store batches run one at a time per instance
            own_pool = conn = await db.open_pool(max_size=2)
        try:
            store = PostgresStore(
                conn,
                index=cast(Any, self.index_config()),
                ttl=cast(Any, self.ttl_config(refresh_on_read=self.refresh_on_read)),
            )
            if not self._set_up:
                await _setup_postgres(store, db.uri)
                self._set_up = True
        except BaseException:
            if own_pool is not None:
                await own_pool.close()
            raise

        async def close() -> None:
            _cancel_batcher(store)
            if own_pool is not None:
                await own_pool.close()

        return OpenedStore(store, close)


def _cancel_batcher(store: Any) -> None:
    """Stop the task through which the store batches operations (it waits forever)."""
    task = getattr(store, "_task", None)
    if task is not None and not task.done():
        task.cancel()
