"""Assistants and their versions."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from threadline.storage.database import Connection, Row
from threadline.storage.repository import Repository

_FIELDS = ("graph_id", "config", "context", "metadata", "name", "description")
_JSON = ("config", "context", "metadata")
SORTABLE = ("assistant_id", "created_at", "updated_at", "name", "graph_id")


class AssistantRepository(Repository):
    json_columns = _JSON
    time_columns = ("created_at", "updated_at")

    async def insert(self, assistant: Row) -> Row | None:
        """Insert version 1; returns None when the id is taken."""
        params = self.encode(assistant)
        async with self.db.transaction() as conn:
            inserted = await conn.fetch_one(
                "INSERT INTO assistants (assistant_id, graph_id, config, context, metadata,"
                " name, description, version, created_at, updated_at)"
                " VALUES (:assistant_id, :graph_id, :config, :context, :metadata, :name,"
                " :description, 1, :created_at, :updated_at)"
                " ON CONFLICT (assistant_id) DO NOTHING RETURNING *",
                params,
            )
            if inserted is None:
                return None
            await self._insert_version(conn, params, 1)
        return self.decode(inserted)

    async def upsert_system(self, assistant: Row) -> None:
        """Create a graph's system assistant unless it is already there."""
        await self.insert(assistant)

    async def _insert_version(self, conn: Connection, params: dict[str, Any], version: int) -> None:
        await conn.execute(
            "INSERT INTO assistant_versions (assistant_id, version, graph_id, config, context,"
            " metadata, name, description, created_at)"
            " VALUES (:assistant_id, :version, :graph_id, :config, :context, :metadata, :name,"
            " :description, :created_at)",
            {**params, "version": version},
        )

    async def get(self, assistant_id: str) -> Row | None:
        row = await self.db.fetch_one(
            "SELECT * FROM assistants WHERE assistant_id = :id", {"id": assistant_id}
        )
        return self.decode(row)

    async def add_version(
        self,
        assistant_id: str,
        changes: Callable[[Row], dict[str, Any]],
        now: datetime.datetime,
    ) -> Row | None:
        """Write a new version from the current one plus `changes(current)`, and make it current.

        `changes` runs inside the transaction, so it sees the row it updates. The
        `metadata` it returns is merged (shallowly) into the current metadata; every other
        key replaces the current value. Returns None when the assistant does not exist.
        """
        async with self.db.transaction() as conn:
            current = self.decode(
                await conn.fetch_one(
                    "SELECT * FROM assistants WHERE assistant_id = :id", {"id": assistant_id}
                )
            )
            if current is None:
                return None
            latest = await conn.fetch_one(
                "SELECT MAX(version) AS v FROM assistant_versions WHERE assistant_id = :id",
                {"id": assistant_id},
            )
            version = int(latest["v"] if latest and latest["v"] else current["version"]) + 1
            merged = {key: current[key] for key in _FIELDS}
            for key, value in changes(current).items():
                if key == "metadata":
                    merged["metadata"] = {**(current["metadata"] or {}), **(value or {})}
                elif key in _FIELDS:
                    merged[key] = value
            params = self.encode(
                {**merged, "assistant_id": assistant_id, "created_at": now, "updated_at": now}
            )
            await self._insert_version(conn, params, version)
            updated = await conn.fetch_one(
                "UPDATE assistants SET graph_id = :graph_id, config = :config,"
                " context = :context, metadata = :metadata, name = :name,"
                " description = :description, version = :version, updated_at = :updated_at"
                " WHERE assistant_id = :assistant_id RETURNING *",
                {**params, "version": version},
            )
        return self.decode(updated)

    async def set_latest(
        self, assistant_id: str, version: int, now: datetime.datetime
    ) -> Row | None:
        """Make a stored version current again, every field of it (context included).

        Returns None when that version does not exist.
        """
        async with self.db.transaction() as conn:
            chosen = await conn.fetch_one(
                "SELECT * FROM assistant_versions WHERE assistant_id = :id AND version = :v",
                {"id": assistant_id, "v": version},
            )
            if chosen is None:
                return None
            # decoded and encoded again: a backend may read JSON back as Python values
            decoded = self.decode(chosen)
            assert decoded is not None
            params = self.encode({**decoded, "updated_at": now})
            updated = await conn.fetch_one(
                "UPDATE assistants SET graph_id = :graph_id, config = :config,"
                " context = :context, metadata = :metadata, name = :name,"
                " description = :description, version = :version, updated_at = :updated_at"
                " WHERE assistant_id = :assistant_id RETURNING *",
                params,
            )
        return self.decode(updated)

    async def delete(self, assistant_id: str) -> bool:
        return (
            await self.db.execute(
                "DELETE FROM assistants WHERE assistant_id = :id", {"id": assistant_id}
            )
            > 0
        )

    def _where(
        self, graph_id: str | None, metadata: dict[str, Any] | None, name: str | None
    ) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if graph_id:
            clauses.append("graph_id = :graph_id")
            params["graph_id"] = graph_id
        if metadata:
            clause, extra = self.db.json_filter("metadata", "metadata", metadata)
            clauses.append(clause)
            params.update(extra)
        if name:
            # A case-insensitive substring match, `%` and `_` taken literally.
            clauses.append("LOWER(name) LIKE LOWER(:name) ESCAPE '\\'")
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["name"] = f"%{escaped}%"
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    async def search(
        self,
        *,
        graph_id: str | None,
        metadata: dict[str, Any] | None,
        name: str | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> list[Row]:
        where, params = self._where(graph_id, metadata, name)
        order = "DESC" if sort_order == "desc" else "ASC"
        column = sort_by if sort_by in SORTABLE else "created_at"
        if column == "name":
            column = "LOWER(name)"  # the reference sorts names case-insensitively
        rows = await self.db.fetch_all(
            f"SELECT * FROM assistants{where} ORDER BY {column} {order}, assistant_id {order}"
            " LIMIT :limit OFFSET :offset",
            {**params, "limit": limit, "offset": offset},
        )
        return self.decode_all(rows)

    async def count(
        self, *, graph_id: str | None, metadata: dict[str, Any] | None, name: str | None
    ) -> int:
        where, params = self._where(graph_id, metadata, name)
        row = await self.db.fetch_one(f"SELECT COUNT(*) AS n FROM assistants{where}", params)
        return int(row["n"]) if row else 0

    async def versions(
        self, assistant_id: str, metadata: dict[str, Any] | None, limit: int, offset: int
    ) -> list[Row]:
        clauses = ["assistant_id = :id"]
        params: dict[str, Any] = {"id": assistant_id, "limit": limit, "offset": offset}
        if metadata:
            clause, extra = self.db.json_filter("metadata", "metadata", metadata)
            clauses.append(clause)
            params.update(extra)
        rows = await self.db.fetch_all(
            "SELECT * FROM assistant_versions WHERE "
            + " AND ".join(clauses)
            + " ORDER BY version DESC LIMIT :limit OFFSET :offset",
            params,
        )
        return self.decode_all(rows)
