"""Threads: the state containers runs execute on. Checkpoints live in LangGraph's tables."""

from __future__ import annotations

import datetime
from typing import Any

from threadline.storage.database import Connection, Row
from threadline.storage.repository import Repository

_JSON = ("metadata", "config", "values", "interrupts", "error", "ttl")
_TIMES = ("created_at", "updated_at", "state_updated_at", "expires_at")
SORTABLE = ("thread_id", "status", "created_at", "updated_at", "state_updated_at")


class ThreadRepository(Repository):
    json_columns = _JSON
    time_columns = _TIMES

    async def insert(self, thread: Row, conn: Connection | None = None) -> Row | None:
        """Insert a thread; returns None when the id is taken."""
        sql = (
            "INSERT INTO threads (thread_id, created_at, updated_at, state_updated_at, metadata,"
            ' status, config, "values", interrupts, error, ttl, expires_at)'
            " VALUES (:thread_id, :created_at, :updated_at, :state_updated_at, :metadata,"
            " :status, :config, :values, :interrupts, :error, :ttl, :expires_at)"
            " ON CONFLICT (thread_id) DO NOTHING RETURNING *"
        )
        defaults: dict[str, Any] = {
            "status": "idle",
            "config": {},
            "values": None,
            "interrupts": {},
            "error": None,
            "ttl": None,
            "expires_at": None,
        }
        params = self.encode({**defaults, **thread})
        if conn is not None:
            return self.decode(await conn.fetch_one(sql, params))
        return self.decode(await self.db.fetch_one(sql, params))

    async def get(self, thread_id: str, conn: Connection | None = None) -> Row | None:
        sql, params = "SELECT * FROM threads WHERE thread_id = :id", {"id": thread_id}
        row = await (conn or self.db).fetch_one(sql, params)
        return self.decode(row)

    async def update(
        self, thread_id: str, changes: dict[str, Any], conn: Connection | None = None
    ) -> Row | None:
        """Set the given columns; `metadata` is merged into the stored metadata."""
        if not changes:
            return await self.get(thread_id, conn)
        assignments = []
        for key in changes:
            column = f'"{key}"' if key == "values" else key
            if key == "metadata":
                assignments.append("metadata = :metadata")
            else:
                assignments.append(f"{column} = :{key}")
        params = self.encode(changes)
        if "metadata" in changes:
            current = await self.get(thread_id, conn)
            if current is None:
                return None
            params["metadata"] = self.db.json_param(
                {**(current["metadata"] or {}), **(changes["metadata"] or {})}
            )
        params["id"] = thread_id
        sql = f"UPDATE threads SET {', '.join(assignments)} WHERE thread_id = :id RETURNING *"
        row = await (conn or self.db).fetch_one(sql, params)
        return self.decode(row)

    async def delete(self, thread_id: str, conn: Connection | None = None) -> bool:
        sql, params = "DELETE FROM threads WHERE thread_id = :id", {"id": thread_id}
        return await (conn or self.db).execute(sql, params) > 0

    def _where(
        self,
        *,
        ids: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if ids is not None:
            names = [f"id{i}" for i in range(len(ids))]
            clauses.append(
                f"thread_id IN ({', '.join(':' + n for n in names)})" if ids else "1 = 0"
            )
            params.update(zip(names, ids, strict=True))
        if metadata:
            clause, extra = self.db.json_filter("metadata", "metadata", metadata)
            clauses.append(clause)
            params.update(extra)
        if values:
            clause, extra = self.db.json_filter('"values"', "values", values)
            clauses.append(clause)
            params.update(extra)
        if status:
            clauses.append("status = :status")
            params["status"] = status
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    async def search(
        self,
        *,
        ids: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> list[Row]:
        where, params = self._where(ids=ids, metadata=metadata, values=values, status=status)
        order = "ASC" if sort_order == "asc" else "DESC"
        column = sort_by if sort_by in SORTABLE else "created_at"
        rows = await self.db.fetch_all(
            f"SELECT * FROM threads{where} ORDER BY {column} {order}, thread_id {order}"
            " LIMIT :limit OFFSET :offset",
            {**params, "limit": limit, "offset": offset},
        )
        return [r for r in map(self.decode, rows) if r is not None]

    async def count(
        self,
        *,
        ids: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> int:
        where, params = self._where(ids=ids, metadata=metadata, values=values, status=status)
        row = await self.db.fetch_one(f"SELECT COUNT(*) AS n FROM threads{where}", params)
        return int(row["n"]) if row else 0

    async def expired(self, now: datetime.datetime, limit: int = 100) -> list[str]:
        rows = await self.db.fetch_all(
            "SELECT thread_id FROM threads WHERE expires_at IS NOT NULL AND expires_at <= :now"
            " LIMIT :limit",
            {"now": self.db.time_param(now), "limit": limit},
        )
        return [r["thread_id"] for r in rows]

    async def delete_many(self, thread_ids: list[str]) -> list[str]:
        """Delete the given threads; returns the ids that existed."""
        if not thread_ids:
            return []
        names = [f"id{i}" for i in range(len(thread_ids))]
        rows = await self.db.fetch_all(
            f"DELETE FROM threads WHERE thread_id IN ({', '.join(':' + n for n in names)})"
            " RETURNING thread_id",
            dict(zip(names, thread_ids, strict=True)),
        )
        return [r["thread_id"] for r in rows]

    # --- LangGraph's checkpoint tables ---------------------------------------------
    # The checkpointer (LangGraph's own saver) shares this database; the backend's
    # `db.checkpoints` knows its tables.

    async def copy(self, thread: Row, source_id: str) -> Row | None:
        """Insert `thread` with copies of every checkpoint and pending write of `source_id`.

        Returns None (and copies nothing) when the new id is taken."""
        async with self.db.transaction() as conn:
            row = await self.insert(thread, conn)
            if row is None:
                return None
            await self.db.checkpoints.copy_thread(conn, source_id, thread["thread_id"])
        return row

    async def prune_checkpoints(self, thread_id: str) -> None:
        """Keep only the latest checkpoint of each namespace of a thread (and its pending
        writes); the kept checkpoint becomes a root.

        Not for graphs that use LangGraph's beta `DeltaChannel`, whose values are
        rebuilt from ancestor checkpoints."""
        await self.db.checkpoints.keep_latest(thread_id)
