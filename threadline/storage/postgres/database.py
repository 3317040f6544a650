"""The scale-out backend: PostgreSQL through a psycopg 3 connection pool.

Repositories write `:name` parameters; they become psycopg's `%(name)s` here (a literal
`%` is doubled, `::type` casts and quoted text are left alone). JSON columns are jsonb,
times are timestamptz. LangGraph's Postgres saver keeps its tables in the same database;
on the loop the pool belongs to, it shares the pool.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import re
import select
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from threadline.serialization import dumps
from threadline.storage.database import (
    Connection,
    Database,
    DatabaseUnavailable,
    Params,
    Row,
    UniqueViolation,
)
from threadline.storage.postgres.checkpoints import PostgresCheckpoints

logger = logging.getLogger("threadline.storage")

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_POOL_SIZE = 10
# Held (as a session advisory lock) while one process migrates; the others wait for it.
_MIGRATION_LOCK = 0x7468726561646C6E  # "threadln"
# What LangGraph's saver expects of its connections.
CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}

# A quoted literal or identifier (copied as is, `%` doubled), a `::` cast, a `:name`
# parameter, or a lone `%`.
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|::|:([A-Za-z_][A-Za-z0-9_]*)|%""")


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """`:name` parameters to psycopg's `%(name)s`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is not None:
            return f"%({name})s"
        token = match.group(0)
        return token.replace("%", "%%")

    return _TOKENS.sub(replace, sql)


class _PostgresConnection(Connection):
    def __init__(self, conn: psycopg.AsyncConnection[DictRow]) -> None:
        self._conn = conn

    async def _execute(self, sql: str, params: Params | None) -> psycopg.AsyncCursor[DictRow]:
        try:
            return await self._conn.execute(to_pyformat(sql), params or {})
        except psycopg.errors.UniqueViolation as exc:
            raise UniqueViolation(str(exc)) from exc

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        cursor = await self._execute(sql, params)
        return await cursor.fetchone()

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        cursor = await self._execute(sql, params)
        return await cursor.fetchall()

    async def execute(self, sql: str, params: Params | None = None) -> int:
        cursor = await self._execute(sql, params)
        return max(cursor.rowcount, 0)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def _unavailable_when_unreachable() -> Iterator[None]:
    """A lost server or an exhausted pool is the deployment's fault, not the request's."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DatabaseUnavailable(f"PostgreSQL is not reachable: {_first_line(exc)}") from exc


# A caller waits this long for a pooled connection before asking whether the server answers
# at all: if it does not, the caller fails at once instead of waiting out the pool's timeout.
QUICK_WAIT_SECONDS = 1.0
PROBE_CONNECT_TIMEOUT = 2  # seconds; libpq's minimum
PROBE_FRESH_SECONDS = 0.5  # one probe's answer serves every caller this long
# The pool retries each lost connection with a doubling pause; past this it gives the
# attempt up and the next caller starts a fresh one, so a pool is never long behind a
# server that came back.
RECONNECT_TIMEOUT_SECONDS = 10.0


def _quiet_pool_warnings() -> None:
    """psycopg's pool warns at every failed attempt of every lost connection; the API's
    pool says once that the server is away, and once that it is back (unless logging of
    `psycopg.pool` was configured)."""
    pool_logger = logging.getLogger("psycopg.pool")
    if pool_logger.level == logging.NOTSET:
        pool_logger.setLevel(logging.ERROR)


async def _check_if_stirred(conn: psycopg.AsyncConnection[DictRow]) -> None:
    """Ping a pooled connection only when something happened to it while idle.

    An idle connection has nothing to read; a server that stopped or restarted has closed
    it (or said why first), which makes its socket readable. Looking costs a system call,
    where a ping on every checkout costs a round trip per statement."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        await AsyncConnectionPool.check_connection(conn)


class _Pool(AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]):
    """A pool whose failures are DatabaseUnavailable, whatever the statement that met them.

    With `fail_fast`, a caller that finds no free connection within QUICK_WAIT_SECONDS
    checks with a connection of its own whether the server answers: while it does not,
    callers fail at once (a 503, not a request hanging for the pool's whole timeout).
    Without it (the graphs' pool), a caller waits, so a run's step pauses through a short
    restart rather than failing.
    """

    def __init__(self, conninfo: str, *, fail_fast: bool, **kwargs: Any) -> None:
        super().__init__(conninfo, **kwargs)
        self.fail_fast = fail_fast
        self._probe_lock = asyncio.Lock()
        self._probed_at = -PROBE_FRESH_SECONDS
        self._unreachable: str | None = None  # why, while the server does not answer

    @asynccontextmanager
    async def connection(
        self, timeout: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
        with _unavailable_when_unreachable():
            async with super().connection(timeout) as conn:
                yield conn

    async def getconn(self, timeout: float | None = None) -> psycopg.AsyncConnection[DictRow]:
        timeout = self.timeout if timeout is None else timeout
        if not self.fail_fast or timeout <= QUICK_WAIT_SECONDS:
            return await super().getconn(timeout)
        if self._unreachable is not None:
            await self._check_reachable()
        try:
            return await super().getconn(QUICK_WAIT_SECONDS)
        except PoolTimeout:
            await self._check_reachable()  # it answers: the pool is busy, or reconnecting
        return await super().getconn(timeout - QUICK_WAIT_SECONDS)

    async def _check_reachable(self) -> None:
        """Raise DatabaseUnavailable unless the server accepts a connection (asked at most
        once per PROBE_FRESH_SECONDS, whatever the number of callers)."""
        async with self._probe_lock:
            if time.monotonic() - self._probed_at >= PROBE_FRESH_SECONDS:
                self._note(await self._probe())
                self._probed_at = time.monotonic()
        if self._unreachable is not None:
            raise DatabaseUnavailable(f"PostgreSQL is not reachable: {self._unreachable}")

    async def _probe(self) -> str | None:
        try:
            conn = await psycopg.AsyncConnection.connect(
                str(self.conninfo), connect_timeout=PROBE_CONNECT_TIMEOUT, autocommit=True
            )
        except psycopg.OperationalError as exc:
            return _first_line(exc)
        await conn.close()
        return None

    def _note(self, unreachable: str | None) -> None:
        """One line when the server stops answering and one when it is back, instead of
        the pool's warning for every connection attempt."""
        if unreachable is not None and self._unreachable is None:
            logger.warning(
                "PostgreSQL is not reachable (%s); what needs it fails at once until it is back",
                unreachable,
            )
        elif unreachable is None and self._unreachable is not None:
            logger.info("PostgreSQL is reachable again; reconnecting")
        self._unreachable = unreachable


class PostgresDatabase(Database):
    name = "postgres"

    def __init__(self, uri: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.uri = uri
        self.pool_size = max(1, pool_size)
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checkpoints = PostgresCheckpoints(self)

    # --- life cycle ------------------------------------------------------------
    async def open(self) -> None:
        await self.migrate()
        _quiet_pool_warnings()
        self._pool = await self.open_pool(fail_fast=True)
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def open_pool(
        self, max_size: int | None = None, *, fail_fast: bool = False
    ) -> AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]:
        """A new pool on the calling event loop (psycopg pools are bound to their loop);
        `fail_fast` for the API's (see _Pool)."""
        pool = _Pool(
            self.uri,
            fail_fast=fail_fast,
            min_size=1,
            max_size=max_size or self.pool_size,
            kwargs=CONNECTION_KWARGS,
            # a connection that died with a database restart is replaced, not handed out
            check=_check_if_stirred,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            open=False,
            name="threadline",
        )
        await pool.open(wait=True, timeout=30)
        return pool

    @property
    def pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    def owns_loop(self) -> bool:
        """Whether the calling event loop is the one the pool belongs to."""
        try:
            return self._loop is asyncio.get_running_loop()
        except RuntimeError:
            return False

    async def migrate(self) -> None:
        """Apply our migrations and set up LangGraph's checkpoint tables, one process at a
        time (others wait on an advisory lock)."""
        async with await psycopg.AsyncConnection.connect(
            self.uri, autocommit=True, row_factory=dict_row
        ) as conn:
            # Polled rather than waited for: LangGraph's setup creates indexes
            # CONCURRENTLY, which would wait for a session blocked in pg_advisory_lock.
            while True:
                cursor = await conn.execute(
                    "SELECT pg_try_advisory_lock(%s) AS ok", (_MIGRATION_LOCK,)
                )
                row = await cursor.fetchone()
                if row and row["ok"]:
                    break
                await asyncio.sleep(0.1)
            try:
                await self._apply_migrations(conn)
                await AsyncPostgresSaver(conn).setup()
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))

    async def _apply_migrations(self, conn: psycopg.AsyncConnection[DictRow]) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS threadline_migrations"
            " (version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT version FROM threadline_migrations")
        done = {row["version"] for row in await cursor.fetchall()}
        for migration in sorted(MIGRATIONS.glob("*.sql")):
            if migration.stem in done:
                continue
            logger.info("applying migration %s", migration.name)
            async with conn.transaction():
                # no parameters: psycopg sends the file as one multi-statement query
                await conn.execute(migration.read_text().encode())
                await conn.execute(
                    "INSERT INTO threadline_migrations (version) VALUES (%s)", (migration.stem,)
                )

    # --- connections -----------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.pool.connection() as conn, conn.transaction():
            yield _PostgresConnection(conn)

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Connection]:
        # One statement commits on its own: no BEGIN/COMMIT round trips.
        async with self.pool.connection() as conn:
            yield _PostgresConnection(conn)

    # --- dialect ---------------------------------------------------------------
    def json_param(self, value: Any) -> Any:
        return None if value is None else Jsonb(value, dumps=dumps)

    def json_value(self, raw: Any) -> Any:
        return raw  # psycopg decodes jsonb

    def time_param(self, value: datetime.datetime) -> Any:
        if value.tzinfo is None:
            raise ValueError("naive datetime for a timestamptz column")
        return value

    def time_value(self, raw: Any) -> datetime.datetime | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = datetime.datetime.fromisoformat(raw)
        return raw.astimezone(datetime.UTC)

    def json_contains(self, column: str, param: str) -> str:
        return f"{column} @> :{param}"

    def json_path(self, column: str, path_param: str) -> str:
        return f"({column} #> ARRAY(SELECT jsonb_array_elements_text(:{path_param})))"

    @property
    def skip_locked(self) -> str:
        return " FOR UPDATE SKIP LOCKED"

    @property
    def checkpoints(self) -> PostgresCheckpoints:
        return self._checkpoints

    async def healthcheck(self) -> None:
        await self.fetch_one("SELECT 1 AS ok")
