"""Maintenance of LangGraph's checkpoint tables that its savers do not offer (or offer
differently per backend): rolling back a run, copying a thread, pruning a thread.

LangGraph's savers own the checkpoint format; these work on whole rows selected by the
metadata LangGraph itself writes (`run_id`, `thread_id`), so they never decode a
checkpoint. Each backend has its own implementation (`sqlite/checkpoints.py`,
`postgres/checkpoints.py`), chosen by the Database (`db.checkpoints`).
"""

from __future__ import annotations

import abc

from threadline.storage.database import Connection


class CheckpointMaintenance(abc.ABC):
    @abc.abstractmethod
    async def delete_for_run(self, thread_id: str, run_id: str) -> int:
        """Remove the checkpoints a run wrote on a thread, and their pending writes.

        Returns how many checkpoints went."""

    @abc.abstractmethod
    async def copy_thread(self, conn: Connection, source_id: str, target_id: str) -> None:
        """Copy every checkpoint (and pending write) of `source_id` to `target_id`, inside
        the caller's transaction; checkpoint metadata naming the thread names the copy."""

    @abc.abstractmethod
    async def keep_latest(self, thread_id: str) -> None:
        """Keep only the latest checkpoint of each namespace of a thread (and what it
        needs); the kept checkpoint becomes a root.

        Not for graphs that use LangGraph's beta `DeltaChannel`, whose values are rebuilt
        from ancestor checkpoints."""
