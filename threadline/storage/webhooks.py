"""The webhook outbox: deliveries written with a run's end, claimed and sent by any process."""

from __future__ import annotations

import datetime
from typing import Any

from threadline.storage.database import Connection, Row
from threadline.storage.repository import Repository

_TIMES = ("next_attempt_at", "delivered_at", "created_at")


class WebhookRepository(Repository):
    json_columns = ("payload",)
    time_columns = _TIMES

    async def insert(
        self,
        conn: Connection,
        *,
        delivery_id: str,
        run_id: str,
        url: str,
        payload: Any,
        now: datetime.datetime,
    ) -> None:
        await conn.execute(
            "INSERT INTO webhook_deliveries (delivery_id, run_id, url, payload, attempts,"
            " next_attempt_at, created_at) VALUES (:id, :run_id, :url, :payload, 0, :now, :now)",
            {
                "id": delivery_id,
                "run_id": run_id,
                "url": url,
                "payload": self.db.json_param(payload),
                "now": self.db.time_param(now),
            },
        )

    async def claim(self, now: datetime.datetime, lease_until: datetime.datetime) -> Row | None:
        """Take the next due delivery: count the attempt and push next_attempt_at past the
        lease, so no other process sends it meanwhile (and it comes back if this one dies)."""
        row = await self.db.fetch_one(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = :lease"
            " WHERE delivery_id = ("
            "  SELECT d.delivery_id FROM webhook_deliveries d"
            "  WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= :now"
            f"  ORDER BY d.next_attempt_at LIMIT 1{self.db.skip_locked})"
            " AND next_attempt_at <= :now RETURNING *",
            {"now": self.db.time_param(now), "lease": self.db.time_param(lease_until)},
        )
        return self.decode(row)

    async def settle(
        self,
        delivery_id: str,
        *,
        delivered_at: datetime.datetime | None,
        next_attempt_at: datetime.datetime | None,
        error: str | None,
    ) -> None:
        """Record an attempt's outcome: delivered, retried at `next_attempt_at`, or (both
        None) given up."""
        await self.db.execute(
            "UPDATE webhook_deliveries SET delivered_at = :delivered, next_attempt_at = :next,"
            " last_error = :error WHERE delivery_id = :id",
            {
                "id": delivery_id,
                "delivered": self.db.time_param(delivered_at) if delivered_at else None,
                "next": self.db.time_param(next_attempt_at) if next_attempt_at else None,
                "error": error,
            },
        )

    async def next_due_at(self) -> datetime.datetime | None:
        row = await self.db.fetch_one(
            "SELECT MIN(next_attempt_at) AS t FROM webhook_deliveries"
            " WHERE next_attempt_at IS NOT NULL"
        )
        return self.db.time_value(row["t"]) if row and row["t"] else None

    async def purge(self, before: datetime.datetime) -> int:
        """Forget settled deliveries (delivered or given up) created before `before`."""
        return await self.db.execute(
            "DELETE FROM webhook_deliveries WHERE next_attempt_at IS NULL AND created_at < :t",
            {"t": self.db.time_param(before)},
        )
