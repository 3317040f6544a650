"""Checkpoint maintenance on the tables of LangGraph's SQLite saver.

Its layout (langgraph-checkpoint-sqlite):
  checkpoints(thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
              checkpoint, metadata)           metadata: JSON as a BLOB
  writes(thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,
         type, value)
The saver offers neither copy nor prune, so these work on whole rows, each in one
transaction.
"""

from __future__ import annotations

from typing import Any

import orjson

from threadline.storage.checkpoints import CheckpointMaintenance
from threadline.storage.database import Connection, Database


class SqliteCheckpoints(CheckpointMaintenance):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def delete_for_run(self, thread_id: str, run_id: str) -> int:
        async with self.db.transaction() as conn:
            rows = await conn.fetch_all(
                "SELECT checkpoint_ns, checkpoint_id FROM checkpoints WHERE thread_id = :t"
                " AND json_extract(CAST(metadata AS TEXT), '$.run_id') = :r",
                {"t": thread_id, "r": run_id},
            )
            for row in rows:
                params = {"t": thread_id, **row}
                await conn.execute(
                    "DELETE FROM writes WHERE thread_id = :t AND checkpoint_ns = :checkpoint_ns"
                    " AND checkpoint_id = :checkpoint_id",
                    params,
                )
                await conn.execute(
                    "DELETE FROM checkpoints WHERE thread_id = :t"
                    " AND checkpoint_ns = :checkpoint_ns AND checkpoint_id = :checkpoint_id",
                    params,
                )
        return len(rows)

    async def copy_thread(self, conn: Connection, source_id: str, target_id: str) -> None:
        checkpoints = await conn.fetch_all(
            "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,"
            " metadata FROM checkpoints WHERE thread_id = :source",
            {"source": source_id},
        )
        for checkpoint in checkpoints:
            checkpoint["metadata"] = _retarget_metadata(checkpoint["metadata"], target_id)
            await conn.execute(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,"
                " parent_checkpoint_id, type, checkpoint, metadata)"
                " VALUES (:target, :checkpoint_ns, :checkpoint_id, :parent_checkpoint_id,"
                " :type, :checkpoint, :metadata)",
                {**checkpoint, "target": target_id},
            )
        await conn.execute(
            "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id,"
            " task_path, idx, channel, type, value)"
            " SELECT :target, checkpoint_ns, checkpoint_id, task_id, task_path, idx,"
            " channel, type, value FROM writes WHERE thread_id = :source",
            {"target": target_id, "source": source_id},
        )

    async def keep_latest(self, thread_id: str) -> None:
        params = {"t": thread_id}
        async with self.db.transaction() as conn:
            await conn.execute(
                "DELETE FROM checkpoints WHERE thread_id = :t AND checkpoint_id <"
                " (SELECT MAX(c.checkpoint_id) FROM checkpoints AS c"
                "  WHERE c.thread_id = :t AND c.checkpoint_ns = checkpoints.checkpoint_ns)",
                params,
            )
            await conn.execute(
                "DELETE FROM writes WHERE thread_id = :t AND NOT EXISTS"
                " (SELECT 1 FROM checkpoints AS c WHERE c.thread_id = :t"
                "  AND c.checkpoint_ns = writes.checkpoint_ns"
                "  AND c.checkpoint_id = writes.checkpoint_id)",
                params,
            )
            await conn.execute(
                "UPDATE checkpoints SET parent_checkpoint_id = NULL"
                " WHERE thread_id = :t AND parent_checkpoint_id IS NOT NULL",
                params,
            )


def _retarget_metadata(raw: Any, thread_id: str) -> Any:
    """Checkpoint metadata names its thread; a copy names the copy."""
    if raw is None:
        return raw
    try:
        metadata = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if not isinstance(metadata, dict) or "thread_id" not in metadata:
        return raw
    metadata["thread_id"] = thread_id
    encoded = orjson.dumps(metadata)
    return encoded if isinstance(raw, bytes) else encoded.decode()
