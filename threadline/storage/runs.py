"""Runs. The runs table is the queue: claiming a run is one atomic UPDATE."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from threadline.storage.database import Connection, Row, UniqueViolation
from threadline.storage.repository import Repository

_JSON = ("metadata", "kwargs", "output")
_TIMES = (
    "created_at",
    "updated_at",
    "not_before",
    "lease_expires_at",
    "started_at",
    "ended_at",
)
ACTIVE = ("pending", "running")
TERMINAL = ("success", "error", "timeout", "interrupted")
# What else to write, in the same transaction, for a run that ended (its row as ended)
OnEnded = Callable[[Connection, Row], Awaitable[None]]
_HELD = " AND worker_id = :worker AND attempt = :attempt AND status = 'running'"


@dataclass(frozen=True)
class Claim:
    """Who holds a running run: a worker, for one attempt. A worker that claims the same
    run again (after losing it in an outage) holds a new claim, and what it still does
    for the old one (renew, release, finish) no longer applies."""

    worker_id: str
    attempt: int

    def params(self) -> dict[str, Any]:
        return {"worker": self.worker_id, "attempt": self.attempt}


class RunRepository(Repository):
    json_columns = _JSON
    time_columns = _TIMES

    def _time(self, value: datetime.datetime) -> Any:
        return self.db.time_param(value)

    async def insert(self, conn: Connection, run: Row) -> Row:
        params = dict(run)
        for key in _JSON:
            params[key] = self.db.json_param(params.get(key))
        for key in ("created_at", "updated_at", "not_before"):
            params[key] = self._time(params[key])
        row = await conn.fetch_one(
            "INSERT INTO runs (run_id, thread_id, assistant_id, metadata, status, kwargs,"
            " multitask_strategy, created_at, updated_at, not_before, output)"
            " VALUES (:run_id, :thread_id, :assistant_id, :metadata, 'pending', :kwargs,"
            " :multitask_strategy, :created_at, :updated_at, :not_before, NULL) RETURNING *",
            params,
        )
        assert row is not None
        await conn.execute(
            "UPDATE threads SET status = 'busy', updated_at = :now WHERE thread_id = :thread_id",
            {"now": params["updated_at"], "thread_id": run["thread_id"]},
        )
        return self.decode(row)  # type: ignore[return-value]

    async def get(self, run_id: str, thread_id: str | None = None) -> Row | None:
        if thread_id is None:
            row = await self.db.fetch_one("SELECT * FROM runs WHERE run_id = :id", {"id": run_id})
        else:
            row = await self.db.fetch_one(
                "SELECT * FROM runs WHERE run_id = :id AND thread_id = :thread_id",
                {"id": run_id, "thread_id": thread_id},
            )
        return self.decode(row)

    async def list_for_thread(
        self, thread_id: str, *, status: str | None, limit: int, offset: int
    ) -> list[Row]:
        clause = " AND status = :status" if status else ""
        rows = await self.db.fetch_all(
            f"SELECT * FROM runs WHERE thread_id = :thread_id{clause}"
            " ORDER BY created_at DESC, run_id DESC LIMIT :limit OFFSET :offset",
            {"thread_id": thread_id, "status": status, "limit": limit, "offset": offset},
        )
        return self.decode_all(rows)

    async def active_on_thread(self, conn: Connection, thread_id: str) -> list[Row]:
        rows = await conn.fetch_all(
            "SELECT * FROM runs WHERE thread_id = :thread_id AND status IN ('pending', 'running')"
            " ORDER BY created_at",
            {"thread_id": thread_id},
        )
        return self.decode_all(rows)

    async def claim(
        self, worker_id: str, now: datetime.datetime, lease_until: datetime.datetime
    ) -> Row | None:
        """Take the next runnable run: due, first in its thread, thread not running another.

        Safe with any number of workers: the candidate row is locked (others skip it),
        and the unique index on running runs per thread turns a lost race into no claim.
        """
        params = {"worker": worker_id, "now": self._time(now), "lease": self._time(lease_until)}
        sql = (
            "UPDATE runs SET status = 'running', attempt = attempt + 1, worker_id = :worker,"
            " lease_expires_at = :lease, started_at = :now, updated_at = :now"
            " WHERE run_id = ("
            "  SELECT r.run_id FROM runs r WHERE r.status = 'pending' AND r.not_before <= :now"
            "   AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id"
            "     AND x.status = 'running')"
            "   AND NOT EXISTS (SELECT 1 FROM runs y WHERE y.thread_id = r.thread_id"
            "     AND y.status = 'pending' AND y.created_at < r.created_at)"
            f"  ORDER BY r.created_at LIMIT 1{self.db.skip_locked})"
            " RETURNING *"
        )
        for _ in range(3):
            try:
                row = await self.db.fetch_one(sql, params)
            except UniqueViolation:
                # Another worker started a run of that thread since our snapshot; the
                # next attempt sees it running and picks elsewhere.
                continue
            return self.decode(row)
        return None

    async def next_due_at(self) -> datetime.datetime | None:
        row = await self.db.fetch_one(
            "SELECT MIN(not_before) AS t FROM runs WHERE status = 'pending'"
        )
        return self.db.time_value(row["t"]) if row and row["t"] else None

    async def renew_lease(
        self, run_id: str, claim: Claim, lease_until: datetime.datetime
    ) -> Row | None:
        """Extend the lease; returns the run (with any cancel request), or None if it is gone
        or no longer held by `claim`."""
        row = await self.db.fetch_one(
            f"UPDATE runs SET lease_expires_at = :lease WHERE run_id = :id{_HELD}"
            " RETURNING run_id, cancel_action",
            {"id": run_id, "lease": self._time(lease_until), **claim.params()},
        )
        return row

    async def finish(
        self,
        conn: Connection,
        run_id: str,
        *,
        status: str,
        output: Any,
        now: datetime.datetime,
        owned_by: Claim | None = None,
    ) -> Row | None:
        """Record the end of a run; with `owned_by`, only while that claim still holds it
        (None if the run was taken away, so a late worker cannot overwrite a rerun)."""
        row = await conn.fetch_one(
            "UPDATE runs SET status = :status, output = :output, ended_at = :now,"
            " updated_at = :now, worker_id = NULL, lease_expires_at = NULL"
            f" WHERE run_id = :id{_HELD if owned_by else ''} RETURNING *",
            {
                "id": run_id,
                "status": status,
                "output": self.db.json_param(output),
                "now": self._time(now),
                **(owned_by.params() if owned_by else {}),
            },
        )
        return self.decode(row)

    async def release(self, run_id: str, claim: Claim, now: datetime.datetime) -> bool:
        """Put a run `claim` holds back in the queue at once (graceful shutdown, a lost
        lease): it resumes from its last checkpoint on whichever process claims it next."""
        changed = await self.db.execute(
            "UPDATE runs SET status = 'pending', worker_id = NULL, lease_expires_at = NULL,"
            f" updated_at = :now WHERE run_id = :id{_HELD}",
            {"id": run_id, "now": self._time(now), **claim.params()},
        )
        return changed > 0

    async def take_pending(self, conn: Connection, run_id: str) -> bool:
        """Mark a pending run interrupted before any worker claims it."""
        changed = await conn.execute(
            "UPDATE runs SET status = 'interrupted', cancel_action = 'interrupt'"
            " WHERE run_id = :id AND status = 'pending'",
            {"id": run_id},
        )
        return changed > 0

    async def with_status(self, statuses: tuple[str, ...]) -> list[Row]:
        names = [f"s{i}" for i in range(len(statuses))]
        rows = await self.db.fetch_all(
            f"SELECT * FROM runs WHERE status IN ({', '.join(':' + n for n in names)})",
            dict(zip(names, statuses, strict=True)),
        )
        return self.decode_all(rows)

    async def request_cancel(self, conn: Connection, run_id: str, action: str) -> None:
        await conn.execute(
            "UPDATE runs SET cancel_action = :action WHERE run_id = :id",
            {"id": run_id, "action": action},
        )

    async def delete(self, conn: Connection, run_id: str) -> bool:
        return await conn.execute("DELETE FROM runs WHERE run_id = :id", {"id": run_id}) > 0

    async def requeue_running(
        self,
        now: datetime.datetime,
        *,
        expired_only: bool,
        max_attempts: int,
        error_output: Any = None,
        on_failed: OnEnded | None = None,
    ) -> list[Row]:
        """Put back runs whose worker is gone (lease expired, or every run at embedded start).

        Runs that used up their attempts end as errors (with `error_output`) instead, and
        `on_failed` writes what goes with that end (thread status, webhook) in the same
        transaction; runs whose thread is gone are deleted (status "dropped" in the result).
        Safe on several processes at once: each run is changed only if it is still stale,
        so a run that another sweeper put back and a worker claimed again is left alone.
        """
        stale_clause = " AND lease_expires_at < :now" if expired_only else ""
        params = {"now": self._time(now)}
        async with self.db.transaction() as conn:
            candidates = self.decode_all(
                await conn.fetch_all(
                    f"SELECT * FROM runs WHERE status = 'running'{stale_clause}"
                    f" ORDER BY created_at{self.db.skip_locked}",
                    params,
                )
            )
            changed: list[Row] = []
            for run in candidates:
                where = f" WHERE run_id = :id AND status = 'running'{stale_clause}"
                run_params = {**params, "id": run["run_id"]}
                orphan = await conn.fetch_one(
                    "SELECT 1 AS gone WHERE NOT EXISTS"
                    " (SELECT 1 FROM threads WHERE thread_id = :thread_id)",
                    {"thread_id": run["thread_id"]},
                )
                if orphan is not None:
                    if await conn.execute(f"DELETE FROM runs{where}", run_params):
                        changed.append({**run, "status": "dropped"})
                    continue
                if run["attempt"] < max_attempts:
                    done = await conn.execute(
                        "UPDATE runs SET status = 'pending', worker_id = NULL,"
                        f" lease_expires_at = NULL, updated_at = :now{where}",
                        run_params,
                    )
                    status = "pending"
                else:
                    ended = self.decode(
                        await conn.fetch_one(
                            "UPDATE runs SET status = 'error', output = :output,"
                            " worker_id = NULL, lease_expires_at = NULL, updated_at = :now,"
                            f" ended_at = :now{where} RETURNING *",
                            {**run_params, "output": self.db.json_param(error_output)},
                        )
                    )
                    if ended is not None and on_failed is not None:
                        await on_failed(conn, ended)
                    done = int(ended is not None)
                    status = "error"
                if done:
                    changed.append({**run, "status": status})
        return changed

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.db.fetch_all(
            "SELECT status, COUNT(*) AS n FROM runs WHERE status IN ('pending', 'running')"
            " GROUP BY status"
        )
        return {r["status"]: int(r["n"]) for r in rows}
