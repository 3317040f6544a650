"""Periodic upkeep on every process: re-queues runs whose worker died (their lease lapsed)
and deletes threads whose TTL has passed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from threadline.core.protocol.events import announce_end, is_protocol_run
from threadline.core.runs import WAKE_CHANNEL, run_stream
from threadline.core.threads import delete_if_temporary, delete_thread_and_checkpoints
from threadline.core.webhooks import enqueue_webhook
from threadline.serialization import dumps, utcnow
from threadline.storage.database import Connection, Outage, Row

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
        self.lease_interval = services.settings.heartbeat_seconds
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sweep_forever())]
        if self.services.db.name != "sqlite":
            # The embedded server is the only process: a lease of its own can only lapse
            # while its loop is stalled, and it recovers a crash's runs at start-up.
            self._tasks.append(asyncio.create_task(self._sweep_leases_forever()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sweep_leases_forever(self) -> None:
        # a cheap query at a steady pace: the outage only changes what is logged
        outage = Outage(logger, "re-queueing runs with lapsed leases")
        while True:
            await asyncio.sleep(self.lease_interval)
            try:
                await recover_runs(self.services, expired_only=True)
            except Exception as exc:
                outage.failed(exc)
                continue
            outage.succeeded()

    async def _sweep_forever(self) -> None:
        outage = Outage(logger, "sweeping expired threads", longest=self.interval)
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:
                await asyncio.sleep(min(self.interval, outage.failed(exc)))
                continue
            outage.succeeded()
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


async def recover_runs(services: Services, *, expired_only: bool) -> list[Row]:
    """Re-queue the runs whose worker is gone (their lease lapsed; with `expired_only`
    False, every running run: the embedded server's start-up, when it is the only process).

    A re-queued run resumes from its last checkpoint on whichever worker claims it next;
    one out of attempts ends as an error; one whose thread is gone is dropped.
    """
    max_attempts = services.settings.max_attempts
    error = {
        "error": "WorkerLost",
        "message": f"the run's worker stopped responding {max_attempts} times; giving up",
    }

    async def record_failure(conn: Connection, ended: Row) -> None:
        await _record_failure(services, conn, ended, error)

    changed = await services.runs.requeue_running(
        utcnow(),
        expired_only=expired_only,
        max_attempts=max_attempts,
        error_output={"__error__": error},
        on_failed=record_failure,
    )
    for run in changed:
        logger.warning(
            "run %s (attempt %d) was left running by a stopped worker: %s",
            run["run_id"],
            run["attempt"],
            {"pending": "re-queued", "error": "failed", "dropped": "dropped, its thread is gone"}[
                run["status"]
            ],
        )
        if run["status"] == "error":
            await _after_failure(services, run, error)
        elif run["status"] == "dropped":
            await _end_stream(services, run, b"")
    if any(run["status"] == "error" for run in changed):
        services.wake_webhooks()
    if any(run["status"] == "pending" for run in changed):
        await services.broker.notify(WAKE_CHANNEL)
    return changed


async def _record_failure(
    services: Services, conn: Connection, run: Row, error: dict[str, str]
) -> None:
    """What goes with the end of a run that used up its attempts, in the transaction that
    ends it: the thread's status and the run's webhook."""
    now = utcnow()
    others = await services.runs.active_on_thread(conn, run["thread_id"])
    thread = await services.threads.update(
        run["thread_id"],
        {"status": "busy" if others else "error", "error": error, "updated_at": now},
        conn,
    )
    values = thread["values"] if thread is not None else None
    await enqueue_webhook(conn, services.db, run, values=values, error=error)


async def _after_failure(services: Services, run: Row, error: dict[str, str]) -> None:
    stream = run_stream(run["run_id"])
    try:
        if is_protocol_run(run):
            await announce_end(services.broker, run, "failed", error["message"])
        else:
            await services.broker.publish(stream, "error", dumps(error))
    except Exception as exc:  # its followers still get the end, below or from the row
        logger.warning("publishing the failure of run %s failed: %s", run["run_id"], exc)
    await _end_stream(services, run, dumps({"status": "error", "output": {"__error__": error}}))
    await delete_if_temporary(services, run)


async def _end_stream(services: Services, run: Row, final: bytes) -> None:
    try:
        await services.broker.close_stream(run_stream(run["run_id"]), final)
    except Exception as exc:  # waiters look at the row when their stream stays quiet
        logger.warning("ending the stream of run %s failed: %s", run["run_id"], exc)
