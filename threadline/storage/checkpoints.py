"""Maintenance of LangGraph's checkpoint tables that its SQLite saver does not offer.

LangGraph's savers own the checkpoint format; this only deletes rows selected by the
metadata LangGraph itself writes (`run_id`), so it never has to decode a checkpoint.
"""

from __future__ import annotations

from threadline.storage.database import Database


class CheckpointMaintenance:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def delete_for_run(self, thread_id: str, run_id: str) -> int:
        """Remove the checkpoints a run wrote on a thread, and their pending writes."""
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
