"""Periodic upkeep on every process: deletes threads whose TTL has passed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from threadline.core.threads import delete_thread_and_checkpoints
from threadline.serialization import utcnow

if TYPE_CHECKING:
    from threadline.core.services import Services

logger = logging.getLogger("threadline.sweeper")

DEFAULT_SWEEP_MINUTES = 5.0


class Sweeper:
    def __init__(self, services: Services) -> None:
        self.services = services
        ttl = (
            services.settings.config.checkpointer.ttl
            if services.settings.config.checkpointer
            else None
        )
        minutes = (ttl.sweep_interval_minutes if ttl else None) or DEFAULT_SWEEP_MINUTES
        self.interval = minutes * 60
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:
                logger.exception("sweeping expired threads failed")
            await asyncio.sleep(self.interval)

    async def sweep_once(self) -> int:
        deleted = 0
        while expired := await self.services.threads.expired(utcnow()):
            for thread_id in expired:
                await delete_thread_and_checkpoints(self.services, thread_id)
                deleted += 1
        if deleted:
            logger.info("deleted %d expired threads", deleted)
        return deleted
