"""Cancelling runs. Cancel is durable: the request is written on the run before any signal,
and only the worker executing a run settles it (a pending run is settled at once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadline.core.errors import NotFound
from threadline.core.protocol.events import CANCELLED, announce_end
from threadline.core.runs import run_stream
from threadline.core.webhooks import enqueue_webhook
from threadline.serialization import dumps, utcnow
from threadline.storage.database import Connection, Row

if TYPE_CHECKING:
    from threadline.core.services import Services

CANCEL_CHANNEL = "runs:cancel"
NO_RUNS = "No runs found to cancel."
NOT_ACTIVE = (
    "No matching runs to cancel. Please verify the thread ID and run IDs are correct, "
    "and the runs haven't been deleted or completed."
)


async def cancel_run(
    services: Services, thread_id: str, run_id: str, action: str, *, strict: bool = False
) -> bool:
    """Stop one run; with `strict`, a missing or finished run is a NotFound."""
    run = await services.runs.get(run_id, thread_id)
    if run is None:
        if strict:
            raise NotFound(NO_RUNS)
        return False
    if run["status"] not in ("pending", "running"):
        if strict:
            raise NotFound(NOT_ACTIVE)
        return False
    await _cancel(services, run, action)
    return True


async def cancel_bulk(
    services: Services,
    *,
    thread_id: str | None,
    run_ids: list[str],
    status: str | None,
    action: str,
) -> None:
    if status is not None:
        statuses = ("pending", "running") if status == "all" else (status,)
        runs = await services.runs.with_status(statuses)
        if not runs:
            raise NotFound(NO_RUNS)
    else:
        assert thread_id is not None
        found = [await services.runs.get(run_id, thread_id) for run_id in run_ids]
        runs = [r for r in found if r is not None and r["status"] in ("pending", "running")]
        if not runs:
            raise NotFound(NOT_ACTIVE if any(found) else NO_RUNS)
    for run in runs:
        await _cancel(services, run, action)


async def cancel_active_on_thread(
    services: Services, conn: Connection, thread_id: str, action: str, *, except_run: str
) -> list[Row]:
    """Mark every other active run of a thread cancelled, inside the caller's transaction.

    The caller signals the workers (`signal_cancelled`) after committing."""
    runs = [
        r
        for r in await services.runs.active_on_thread(conn, thread_id)
        if r["run_id"] != except_run
    ]
    for run in runs:
        await services.runs.request_cancel(conn, run["run_id"], action)
    return runs


async def signal_cancelled(services: Services, runs: list[Row], action: str) -> None:
    for run in runs:
        await _cancel(services, run, action)


async def _cancel(services: Services, run: Row, action: str) -> None:
    if await _settle_if_pending(services, run, action):
        return
    async with services.db.transaction() as conn:
        await services.runs.request_cancel(conn, run["run_id"], action)
    await services.broker.notify(CANCEL_CHANNEL, f"{run['run_id']}:{action}")


async def _settle_if_pending(services: Services, run: Row, action: str) -> bool:
    """A run no worker holds is settled here; False if a worker claimed it first."""
    async with services.db.transaction() as conn:
        if not await services.runs.take_pending(conn, run["run_id"]):
            return False
    await settle_cancelled_run(services, run, action)
    # threads.py builds on this module (deleting a thread cancels its runs)
    from threadline.core.threads import delete_if_temporary

    await delete_if_temporary(services, run)
    await services.broker.close_stream(
        run_stream(run["run_id"]), dumps({"status": "interrupted", "output": None})
    )
    async with services.db.transaction() as conn:
        others = await services.runs.active_on_thread(conn, run["thread_id"])
    if not others:  # while another run goes on, its clients hear that run's end
        await announce_end(services.broker, run, "failed", CANCELLED)
    return True


async def settle_cancelled_run(services: Services, run: Row, action: str) -> None:
    """Record the end of a cancelled run: `interrupt` keeps what it wrote, `rollback`
    deletes the run and its checkpoints. Thread status is recomputed."""
    now = utcnow()
    if action == "rollback":
        await services.db.checkpoints.delete_for_run(run["thread_id"], run["run_id"])
    async with services.db.transaction() as conn:
        if action == "rollback":
            await services.runs.delete(conn, run["run_id"])
            ended: Row | None = {**run, "status": "interrupted", "ended_at": now}
        else:
            ended = await services.runs.finish(
                conn, run["run_id"], status="interrupted", output=None, now=now
            )
        thread = await services.threads.get(run["thread_id"], conn)
        if ended is not None:
            values = thread["values"] if thread is not None else None
            await enqueue_webhook(conn, services.db, ended, values=values)
        await refresh_thread_status(services, conn, run["thread_id"], now)
    services.wake_webhooks()


async def refresh_thread_status(
    services: Services, conn: Connection, thread_id: str, now: object
) -> None:
    others = await services.runs.active_on_thread(conn, thread_id)
    thread = await services.threads.get(thread_id, conn)
    if thread is None:
        return
    if others:
        status = "busy"
    elif thread["interrupts"]:
        status = "interrupted"
    elif thread["status"] == "error":
        status = "error"
    else:
        status = "idle"
    await services.threads.update(thread_id, {"status": status, "updated_at": now}, conn)


async def delete_run(services: Services, thread_id: str, run_id: str) -> None:
    run = await services.runs.get(run_id, thread_id)
    if run is None:
        raise NotFound("Run not found")
    async with services.db.transaction() as conn:
        was_pending = await services.runs.take_pending(conn, run_id)
    if run["status"] == "running" or (run["status"] == "pending" and not was_pending):
        await _cancel(services, run, "interrupt")  # its worker stops it
    async with services.db.transaction() as conn:
        await services.runs.delete(conn, run_id)
        await refresh_thread_status(services, conn, thread_id, utcnow())
    if was_pending:  # no worker will end its stream; waiters learn it is gone
        await services.broker.close_stream(run_stream(run_id))
