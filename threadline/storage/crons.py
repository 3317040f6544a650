"""Crons: schedules whose firings are ordinary runs.

The scheduler on every process reads the due crons, then claims each firing with one
compare-and-set UPDATE (`next_run_date` moves forward only where it still holds the value
read), so a firing happens once however many processes race for it.
"""

from __future__ import annotations

import datetime
from typing import Any

from threadline.storage.database import Connection, Row
from threadline.storage.repository import Repository

_JSON = ("payload", "metadata")
_TIMES = ("end_time", "next_run_date", "created_at", "updated_at")
COLUMNS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "user_id",
    "schedule",
    "timezone",
    "end_time",
    "payload",
    "metadata",
    "on_run_completed",
    "enabled",
    "next_run_date",
    "created_at",
    "updated_at",
)
SORTABLE = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "next_run_date",
    "end_time",
    "created_at",
    "updated_at",
)


class CronRepository(Repository):
    json_columns = _JSON
    time_columns = _TIMES

    def decode(self, row: Row | None) -> Row | None:
        row = super().decode(row)
        if row is not None and "enabled" in row:
            row["enabled"] = bool(row["enabled"])
        return row

    def encode(self, values: dict[str, Any]) -> dict[str, Any]:
        params = super().encode(values)
        if "enabled" in params:
            params["enabled"] = bool(params["enabled"])
        return params

    async def insert(self, cron: Row, conn: Connection | None = None) -> Row:
        params = self.encode({key: cron.get(key) for key in COLUMNS})
        names = ", ".join(COLUMNS)
        values = ", ".join(f":{key}" for key in COLUMNS)
        row = await (conn or self.db).fetch_one(
            f"INSERT INTO crons ({names}) VALUES ({values}) RETURNING *", params
        )
        assert row is not None
        return self.decode(row)  # type: ignore[return-value]

    async def get(self, cron_id: str, conn: Connection | None = None) -> Row | None:
        row = await (conn or self.db).fetch_one(
            "SELECT * FROM crons WHERE cron_id = :id", {"id": cron_id}
        )
        return self.decode(row)

    async def update_if_unchanged(
        self, cron_id: str, seen_updated_at: datetime.datetime, changes: dict[str, Any]
    ) -> Row | None:
        """Set the given columns unless the cron changed since it was read (its
        `updated_at` moved); None when it did, or is gone."""
        assignments = ", ".join(f"{key} = :{key}" for key in changes)
        params = self.encode(changes)
        params["id"] = cron_id
        params["seen"] = self.db.time_param(seen_updated_at)
        row = await self.db.fetch_one(
            f"UPDATE crons SET {assignments} WHERE cron_id = :id AND updated_at = :seen"
            " RETURNING *",
            params,
        )
        return self.decode(row)

    async def delete(self, cron_id: str) -> bool:
        return await self.db.execute("DELETE FROM crons WHERE cron_id = :id", {"id": cron_id}) > 0

    def _where(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        enabled: bool | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if assistant_id is not None:
            clauses.append("assistant_id = :assistant_id")
            params["assistant_id"] = assistant_id
        if thread_id is not None:
            clauses.append("thread_id = :thread_id")
            params["thread_id"] = thread_id
        if enabled is not None:
            clauses.append("enabled = :enabled")
            params["enabled"] = enabled
        if metadata:
            clauses.append(self.db.json_contains("metadata", "metadata"))
            params["metadata"] = self.db.json_param(metadata)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    async def search(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        enabled: bool | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> list[Row]:
        where, params = self._where(
            assistant_id=assistant_id, thread_id=thread_id, enabled=enabled, metadata=metadata
        )
        order = "ASC" if sort_order == "asc" else "DESC"
        column = sort_by if sort_by in SORTABLE else "created_at"
        # NULLs (no thread, no end time) last either way, on both backends.
        rows = await self.db.fetch_all(
            f"SELECT * FROM crons{where} ORDER BY {column} {order} NULLS LAST,"
            f" cron_id {order} LIMIT :limit OFFSET :offset",
            {**params, "limit": limit, "offset": offset},
        )
        return self.decode_all(rows)

    async def count(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        enabled: bool | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        where, params = self._where(
            assistant_id=assistant_id, thread_id=thread_id, enabled=enabled, metadata=metadata
        )
        row = await self.db.fetch_one(f"SELECT COUNT(*) AS n FROM crons{where}", params)
        return int(row["n"]) if row else 0

    # --- the scheduler ------------------------------------------------------------

    async def due(self, now: datetime.datetime, limit: int = 100) -> list[Row]:
        """Enabled crons whose next firing has come, and is not past their end."""
        rows = await self.db.fetch_all(
            "SELECT * FROM crons WHERE enabled = TRUE AND next_run_date <= :now"
            " AND (end_time IS NULL OR next_run_date <= end_time)"
            " ORDER BY next_run_date LIMIT :limit",
            {"now": self.db.time_param(now), "limit": limit},
        )
        return self.decode_all(rows)

    async def claim(
        self,
        cron_id: str,
        seen_next_run_date: datetime.datetime,
        next_run_date: datetime.datetime | None,
    ) -> Row | None:
        """Take the firing due at `seen_next_run_date` by moving the cron to its next one.

        Returns the cron (as it now is) to the one caller whose UPDATE found the value it
        read; every other process gets None. Short and alone in its transaction: the run
        is created afterwards.
        """
        row = await self.db.fetch_one(
            "UPDATE crons SET next_run_date = :next"
            " WHERE cron_id = :id AND enabled = TRUE AND next_run_date = :seen"
            " RETURNING *",
            {
                "id": cron_id,
                "seen": self.db.time_param(seen_next_run_date),
                "next": None if next_run_date is None else self.db.time_param(next_run_date),
            },
        )
        return self.decode(row)

    async def disable_ended(self, now: datetime.datetime) -> list[str]:
        """Disable the enabled crons whose end time has passed; returns their ids."""
        rows = await self.db.fetch_all(
            "UPDATE crons SET enabled = FALSE, updated_at = :now"
            " WHERE enabled = TRUE AND end_time IS NOT NULL AND end_time <= :now"
            " RETURNING cron_id",
            {"now": self.db.time_param(now)},
        )
        return [r["cron_id"] for r in rows]

    async def next_due_at(self) -> datetime.datetime | None:
        """When the soonest enabled cron is due (None when none is scheduled)."""
        row = await self.db.fetch_one(
            "SELECT MIN(next_run_date) AS t FROM crons WHERE enabled = TRUE"
        )
        return self.db.time_value(row["t"]) if row and row["t"] else None
