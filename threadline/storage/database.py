"""The connector every repository talks to: one small interface, one implementation per backend.

Repositories write their SQL once, with `:name` parameters; a backend supplies the few
fragments that differ between dialects (JSON access and containment, row locking), the
encoding of JSON and timestamps, and the maintenance of LangGraph's checkpoint tables.
"""

from __future__ import annotations

import abc
import datetime
import logging
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threadline.storage.checkpoints import CheckpointMaintenance

Row = dict[str, Any]
Params = Mapping[str, Any]


class DatabaseUnavailable(Exception):
    """The database cannot be reached right now (a restart, a network fault)."""


class Outage:
    """How a background loop lives through failures of what it needs (the database being
    restarted, say): one line when they start, one when they stop, and a growing pause
    between attempts instead of a log line (or a traceback) at each."""

    def __init__(
        self, logger: logging.Logger, what: str, *, first: float = 0.5, longest: float = 10.0
    ) -> None:
        self.logger = logger
        self.what = what
        self.first = first
        self.longest = longest
        self.since: float | None = None
        self.delay = first

    def failed(self, exc: BaseException) -> float:
        """Note a failure; returns how long to wait before the next attempt."""
        if self.since is None:
            self.since = time.monotonic()
            self.delay = self.first
            # an unexpected error deserves its traceback, once
            expected = isinstance(exc, DatabaseUnavailable)
            self.logger.warning(
                "%s failed: %s; retrying", self.what, exc, exc_info=None if expected else exc
            )
        else:
            self.delay = min(self.delay * 2, self.longest)
        return self.delay

    def succeeded(self) -> None:
        if self.since is not None:
            self.logger.info(
                "%s works again (after %.1fs)", self.what, time.monotonic() - self.since
            )
            self.since = None


Filter = tuple[str, dict[str, Any]]


class UniqueViolation(Exception):
    """A statement broke a unique constraint (whatever the backend's own exception)."""


class Connection(abc.ABC):
    """One connection inside a transaction (or in autocommit)."""

    @abc.abstractmethod
    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None: ...

    @abc.abstractmethod
    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]: ...

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run a statement; returns the number of rows it changed."""


class Database(abc.ABC):
    """A pool of connections plus the dialect's SQL fragments."""

    name: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and bring Threadline's schema up to date."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A connection whose statements commit together, or roll back on error."""

    @abc.abstractmethod
    def autocommit(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for one statement that commits on its own (no BEGIN/COMMIT)."""

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        async with self.autocommit() as conn:
            return await conn.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        async with self.autocommit() as conn:
            return await conn.fetch_all(sql, params)

    async def execute(self, sql: str, params: Params | None = None) -> int:
        async with self.autocommit() as conn:
            return await conn.execute(sql, params)

    # --- dialect -------------------------------------------------------------
    @abc.abstractmethod
    def json_param(self, value: Any) -> Any:
        """Encode a Python value for a JSON column."""

    @abc.abstractmethod
    def json_value(self, raw: Any) -> Any:
        """Decode a JSON column as read back."""

    @abc.abstractmethod
    def time_param(self, value: datetime.datetime) -> Any: ...

    @abc.abstractmethod
    def time_value(self, raw: Any) -> datetime.datetime | None: ...

    @abc.abstractmethod
    def json_contains(self, column: str, param: str) -> str:
        """SQL that is true when JSON `column` contains the JSON object in `:param`."""

    def json_filter(self, column: str, name: str, needle: dict[str, Any]) -> Filter:
        """A WHERE condition true when JSON `column` contains `needle`, with its parameters
        (named after `name`)."""
        return self.json_contains(column, name), {name: self.json_param(needle)}

    @abc.abstractmethod
    def json_path(self, column: str, path_param: str) -> str:
        """SQL for the JSON value at the key path given as a JSON array in `:path_param`."""

    @property
    def skip_locked(self) -> str:
        """Suffix of a SELECT that takes the rows it returns and skips rows others hold."""
        return ""

    @property
    @abc.abstractmethod
    def checkpoints(self) -> CheckpointMaintenance:
        """What LangGraph's saver for this backend does not offer on its tables."""

    @abc.abstractmethod
    async def healthcheck(self) -> None: ...
