"""Checkpoint maintenance on the tables of LangGraph's Postgres saver.

Its layout (langgraph-checkpoint-postgres):
  checkpoints(thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
              checkpoint jsonb, metadata jsonb)
  checkpoint_blobs(thread_id, checkpoint_ns, channel, version, type, blob)
      channel values, shared by every checkpoint whose `channel_versions` names them
  checkpoint_writes(thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type,
                    blob, task_path)
Pruning is the saver's own (`aprune`); rollback and copy work on whole rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from threadline.storage.checkpoints import CheckpointMaintenance
from threadline.storage.database import Connection

if TYPE_CHECKING:
    from threadline.storage.postgres.database import PostgresDatabase

# Blobs no remaining checkpoint of the thread refers to.
_ORPHAN_BLOBS = (
    "DELETE FROM checkpoint_blobs b WHERE b.thread_id = :t AND NOT EXISTS"
    " (SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id"
    "  AND c.checkpoint_ns = b.checkpoint_ns"
    "  AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)"
)


class PostgresCheckpoints(CheckpointMaintenance):
    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db

    async def delete_for_run(self, thread_id: str, run_id: str) -> int:
        async with self.db.transaction() as conn:
            rows = await conn.fetch_all(
                "DELETE FROM checkpoints WHERE thread_id = :t AND metadata ->> 'run_id' = :r"
                " RETURNING checkpoint_ns, checkpoint_id",
                {"t": thread_id, "r": run_id},
            )
            if rows:
                await conn.execute(
                    "DELETE FROM checkpoint_writes w WHERE w.thread_id = :t AND NOT EXISTS"
                    " (SELECT 1 FROM checkpoints c WHERE c.thread_id = w.thread_id"
                    "  AND c.checkpoint_ns = w.checkpoint_ns"
                    "  AND c.checkpoint_id = w.checkpoint_id)",
                    {"t": thread_id},
                )
                await conn.execute(_ORPHAN_BLOBS, {"t": thread_id})
        return len(rows)

    async def copy_thread(self, conn: Connection, source_id: str, target_id: str) -> None:
        params = {"source": source_id, "target": target_id}
        await conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,"
            " parent_checkpoint_id, type, checkpoint, metadata)"
            " SELECT :target, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,"
            " checkpoint, CASE WHEN metadata ? 'thread_id'"
            "  THEN jsonb_set(metadata, '{thread_id}', to_jsonb(:target::text))"
            "  ELSE metadata END"
            " FROM checkpoints WHERE thread_id = :source",
            params,
        )
        await conn.execute(
            "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type,"
            " blob) SELECT :target, checkpoint_ns, channel, version, type, blob"
            " FROM checkpoint_blobs WHERE thread_id = :source",
            params,
        )
        await conn.execute(
            "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,"
            " idx, channel, type, blob, task_path)"
            " SELECT :target, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob,"
            " task_path FROM checkpoint_writes WHERE thread_id = :source",
            params,
        )

    async def keep_latest(self, thread_id: str) -> None:
        # The saver over our pool: it only keeps the pool and a lock.
        saver = AsyncPostgresSaver(self.db.pool)
        await saver.aprune([thread_id], strategy="keep_latest")
