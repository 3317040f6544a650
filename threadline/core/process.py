"""The background parts every process runs beside (or instead of) the API: the worker, the
sweeper, the cron scheduler and the webhook deliverer, started and stopped in one order."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from threadline.core.assistants import ensure_system_assistants
from threadline.core.crons import CronScheduler
from threadline.core.sweeper import Sweeper
from threadline.core.webhooks import WebhookDeliverer
from threadline.core.worker import Worker

if TYPE_CHECKING:
    from threadline.core.services import Services


@contextlib.asynccontextmanager
async def background(services: Services) -> AsyncIterator[Worker]:
    """Open the services and run the background parts until the block exits."""
    await services.start()
    try:
        await ensure_system_assistants(services)
        worker = Worker(services)
        services.worker = worker
        await worker.start()
        sweeper = Sweeper(services)
        sweeper.start()
        scheduler = CronScheduler(services)
        services.cron_scheduler = scheduler
        scheduler.start()
        deliverer = WebhookDeliverer(services.db, services.settings.config.webhooks)
        services.webhooks = deliverer
        deliverer.start()
        try:
            yield worker
        finally:
            worker.stop_claiming()
            await scheduler.stop()
            await sweeper.stop()
            await worker.stop()
            await deliverer.stop()
    finally:
        await services.stop()
