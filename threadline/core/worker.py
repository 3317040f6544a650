"""Claims runs from the queue and executes them, up to `jobs` at a time per process.

Liveness: every claimed run has a lease, renewed by this worker's heartbeat; a process
whose heartbeats stop (killed, partitioned) loses its runs to the sweeper of any process
(core/sweeper.py), which re-queues them to resume from their last checkpoint. A worker
that cannot renew a lease in time stops working on that run before anyone else may take
it, and a run's end is only recorded while its worker still holds it, so no run is
carried to completion twice.

Shutdown (SIGTERM): stop claiming, let the running runs finish for the grace period, then
put the rest back in the queue (pending, lease released) so another process takes them
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from threadline.core import executor
from threadline.core.cancel import CANCEL_CHANNEL, settle_cancelled_run
from threadline.core.graph_loop import GraphLoop, emitter
from threadline.core.runs import WAKE_CHANNEL, run_stream, thread_stream
from threadline.core.sweeper import recover_runs
from threadline.core.threads import delete_if_temporary
from threadline.core.webhooks import enqueue_webhook
from threadline.ids import new_id
from threadline.serialization import dumps, utcnow
from threadline.settings import (
    DEFAULT_HEARTBEAT_SECONDS,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
)
from threadline.storage.database import Row

if TYPE_CHECKING:
    from threadline.core.services import Services

logger = logging.getLogger("threadline.worker")

# Defaults; Settings (THREADLINE_LEASE_SECONDS, THREADLINE_HEARTBEAT_SECONDS,
# THREADLINE_MAX_ATTEMPTS) decide.
LEASE_SECONDS = DEFAULT_LEASE_SECONDS
HEARTBEAT_SECONDS = DEFAULT_HEARTBEAT_SECONDS
MAX_ATTEMPTS = DEFAULT_MAX_ATTEMPTS
IDLE_POLL_SECONDS = 5.0
FINISH_RETRY_SECONDS = 1.0


@dataclass
class _Active:
    run: Row
    task: asyncio.Task[None]
    lease_until: datetime.datetime
    cancel_action: str | None = None
    # why the run stops without an end of its own: "shutdown" (put back in the queue) or
    # "lost" (its lease could not be kept: leave it to whoever takes it next)
    abandon: str | None = None
    # its end is recorded: what is left (stream close, clean-up) must not be interrupted
    settled: bool = False


class Worker:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"
        self.capacity = services.settings.jobs
        self.lease_seconds = services.settings.lease_seconds
        self.heartbeat_seconds = services.settings.heartbeat_seconds
        self.graph_loop = GraphLoop(isolated=services.settings.graph_isolation == "thread")
        self.graph_checkpointer: Any = None
        self.graph_store: Any = None
        self.active: dict[str, _Active] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = False

    # --- life cycle -----------------------------------------------------------
    async def start(self) -> None:
        if self.services.db.name == "sqlite":
            # The embedded server is the only process: whatever is `running` was left so
            # by a previous life of this one. Elsewhere other processes may be alive;
            # the sweeper takes back only runs whose lease lapsed.
            await recover_runs(self.services, expired_only=False)
        if self.capacity == 0:
            return
        self.graph_loop.start()
        self.graph_checkpointer = await self.graph_loop.run(self.services.open_checkpointer)
        self.graph_store = await self.graph_loop.run(self.services.open_store)
        self._claimer = asyncio.create_task(self._claim_forever())
        self._tasks = [
            asyncio.create_task(self._listen(WAKE_CHANNEL, lambda _: self._wake.set())),
            asyncio.create_task(self._listen(CANCEL_CHANNEL, self._on_cancel_signal)),
            asyncio.create_task(self._heartbeat_forever()),
            self._claimer,
        ]

    def stop_claiming(self) -> None:
        """The first step of shutdown: no new run starts here."""
        self._stopping = True
        if self._claimer is not None:
            self._claimer.cancel()

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming; let running runs finish for `grace` seconds (the setting by
        default), then put the rest back in the queue for another process."""
        if grace is None:
            grace = self.services.settings.shutdown_grace_seconds
        self.stop_claiming()
        running = [active.task for active in self.active.values()]
        if running and grace > 0:
            logger.info("waiting up to %gs for %d running runs to finish", grace, len(running))
            await asyncio.wait(running, timeout=grace)
        left = list(self.active.values())
        for active in left:
            active.abandon = active.abandon or "shutdown"
            active.task.cancel()
        await asyncio.gather(*(active.task for active in left), return_exceptions=True)
        if left:
            # another process may take them at once
            with contextlib.suppress(Exception):
                await self.services.broker.notify(WAKE_CHANNEL)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.capacity:
            self.graph_loop.stop()

    def health(self) -> dict[str, Any]:
        return {
            "max": self.capacity,
            "active": len(self.active),
            "available": self.capacity - len(self.active),
            # a loop that died (it should never return) means no run will start here
            "healthy": not any(task.done() for task in self._tasks),
        }

    # --- claiming -------------------------------------------------------------
    async def _listen(self, channel: str, handle: Callable[[str], Any]) -> None:
        async for message in self.services.broker.listen(channel):
            handle(message)

    async def _claim_forever(self) -> None:
        while not self._stopping:
            self._wake.clear()
            while len(self.active) < self.capacity:
                run = await self._claim()
                if run is None:
                    break
                self._launch(run)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), await self._idle_timeout())

    async def _claim(self) -> Row | None:
        now = utcnow()
        try:
            return await self.services.runs.claim(
                self.worker_id, now, now + datetime.timedelta(seconds=self.lease_seconds)
            )
        except Exception as exc:
            logger.warning("claiming a run failed: %s", exc)
            await asyncio.sleep(1)
            return None

    async def _idle_timeout(self) -> float:
        try:
            due = await self.services.runs.next_due_at()
        except Exception:
            return 1.0
        if due is None:
            return IDLE_POLL_SECONDS
        return max(0.0, min(IDLE_POLL_SECONDS, (due - utcnow()).total_seconds()))

    def _launch(self, run: Row) -> None:
        task = asyncio.create_task(self._execute(run), name=f"run-{run['run_id']}")
        lease_until = run.get("lease_expires_at") or utcnow() + datetime.timedelta(
            seconds=self.lease_seconds
        )
        self.active[run["run_id"]] = _Active(run, task, lease_until)
        if run.get("cancel_action"):  # cancelled between the request and the claim
            self.cancel_local(run["run_id"], run["cancel_action"])

    # --- cancellation and liveness ---------------------------------------------
    def _on_cancel_signal(self, message: str) -> None:
        run_id, _, action = message.partition(":")
        self.cancel_local(run_id, action or "interrupt")

    def cancel_local(self, run_id: str, action: str) -> bool:
        active = self.active.get(run_id)
        if active is None:
            return False
        if active.cancel_action is None and active.abandon is None and not active.settled:
            active.cancel_action = action
            active.task.cancel()
        return True

    def _abandon(self, active: _Active, why: str) -> None:
        if active.abandon is None and active.cancel_action is None and not active.settled:
            active.abandon = why
            active.task.cancel()

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            await self.heartbeat()

    async def heartbeat(self) -> None:
        """Renew the lease of every run held here, and pick up cancel requests on the rows
        (a cancel signal can be lost; the row cannot)."""
        for run_id, active in list(self.active.items()):
            if active.settled:
                continue
            now = utcnow()
            lease_until = now + datetime.timedelta(seconds=self.lease_seconds)
            try:
                row = await self.services.runs.renew_lease(run_id, self.worker_id, lease_until)
            except Exception as exc:
                # Before the lease lapses (and another process may take the run), stop.
                margin = datetime.timedelta(seconds=self.heartbeat_seconds)
                if now + margin >= active.lease_until:
                    logger.error(
                        "run %s: its lease could not be renewed (%s); leaving it to be re-queued",
                        run_id,
                        exc,
                    )
                    self._abandon(active, "lost")
                else:
                    logger.warning("renewing the lease of run %s failed: %s", run_id, exc)
                continue
            if row is None:
                # Deleted, or re-queued because this worker was presumed dead: stop
                # working on it without writing anything.
                logger.warning("run %s is no longer held by this worker; stopping it", run_id)
                self._abandon(active, "lost")
                continue
            active.lease_until = lease_until
            if row.get("cancel_action"):
                self.cancel_local(run_id, row["cancel_action"])

    # --- execution --------------------------------------------------------------
    async def _execute(self, run: Row) -> None:
        run_id = run["run_id"]
        thread_watched = await _watched(self.services, thread_stream(run["thread_id"]))
        publisher = _Publisher(
            self.services,
            run_stream(run_id),
            thread_stream(run["thread_id"]) if thread_watched else None,
        )
        try:
            try:
                result = await self.graph_loop.run(self._graph_call(run, publisher.emit))
            except asyncio.CancelledError:
                await publisher.drain()
                active = self.active.get(run_id)
                action = active.cancel_action if active is not None else None
                if action is None:
                    # Shutting down, or the lease is lost: the run goes on elsewhere from
                    # its last checkpoint, in the same stream, so the stream stays open.
                    if active is None or active.abandon != "lost":
                        await self._release(run_id)
                    raise
                self._mark_settled(run_id, True)  # a heartbeat must not race the settling
                await settle_cancelled_run(self.services, run, action)
                await self._after_finish(run)
                await publisher.close({"status": "interrupted", "output": None})
                return
            except Exception as exc:
                logger.exception("run %s failed outside the graph", run_id)
                publisher.emit("error", dumps(executor.error_payload(exc)))
                result = executor.Execution(
                    "error",
                    {"__error__": executor.error_payload(exc)},
                    error=executor.error_payload(exc),
                )
            await publisher.drain()
            if not await self._finish(run, result):
                return  # taken away meanwhile: whoever holds it now ends it
            await self._after_finish(run)
            # last, so that whoever sees the end finds the run's effects complete
            await publisher.close({"status": result.status, "output": result.output})
        finally:
            self.active.pop(run_id, None)
            self._wake.set()

    def _mark_settled(self, run_id: str, settled: bool) -> None:
        if (active := self.active.get(run_id)) is not None:
            active.settled = settled

    def _graph_call(
        self, run: Row, emit: Callable[[str, bytes], None]
    ) -> Callable[[], Awaitable[executor.Execution]]:
        graphs = self.services.graphs
        kwargs = run["kwargs"]
        graph_id = kwargs["config"]["configurable"]["graph_id"]
        attempt = run["attempt"]
        checkpointer = self.graph_checkpointer
        store = self.graph_store

        async def call() -> executor.Execution:
            config = executor.run_config(run, attempt)
            resumed = run
            if attempt > 1 and await _wrote_checkpoint(checkpointer, run):
                # A retried run continues from its last checkpoint, not from its input.
                resumed = {**run, "kwargs": {**kwargs, "input": None, "command": None}}
            async with graphs.graph(
                graph_id,
                config,
                checkpointer=checkpointer,
                store=store,
                access_context="threads.create_run",
                context=kwargs.get("context") or None,
            ) as graph:
                return await executor.execute(graph, resumed, attempt, emit)

        return call

    async def _release(self, run_id: str) -> None:
        try:
            if await self.services.runs.release(run_id, self.worker_id, utcnow()):
                logger.info("run %s put back in the queue", run_id)
        except Exception as exc:  # its lease will lapse and the sweeper re-queues it
            logger.warning("putting run %s back in the queue failed: %s", run_id, exc)

    async def _finish(self, run: Row, result: executor.Execution) -> bool:
        """Record the outcome, retrying while the database is away and the lease lasts;
        False if the run is no longer this worker's (or the lease ran out meanwhile)."""
        while True:
            # Once the end is written the row is no longer `running`; a heartbeat renewing
            # the lease meanwhile would take that for a lost run.
            self._mark_settled(run["run_id"], True)
            try:
                return await self._record(run, result)
            except Exception as exc:
                self._mark_settled(run["run_id"], False)
                active = self.active.get(run["run_id"])
                if active is None or utcnow() >= active.lease_until:
                    logger.error(
                        "run %s finished but its end could not be recorded (%s); it will be "
                        "re-queued and resume from its last checkpoint",
                        run["run_id"],
                        exc,
                    )
                    return False
                logger.warning(
                    "recording the end of run %s failed, retrying: %s", run["run_id"], exc
                )
                await asyncio.sleep(FINISH_RETRY_SECONDS)

    async def _record(self, run: Row, result: executor.Execution) -> bool:
        now = utcnow()
        async with self.services.db.transaction() as conn:
            ended = await self.services.runs.finish(
                conn,
                run["run_id"],
                status=result.status,
                output=result.output,
                now=now,
                owned_by=self.worker_id,
            )
            if ended is None:
                logger.warning("run %s was taken from this worker before it ended", run["run_id"])
                return False
            others = await self.services.runs.active_on_thread(conn, run["thread_id"])
            await self.services.threads.update(
                run["thread_id"],
                {
                    "status": "busy" if others else result.thread_status,
                    "values": result.values,
                    "interrupts": result.interrupts,
                    "error": result.error,
                    "updated_at": now,
                    "state_updated_at": now,
                    # as the reference: the thread's configurable is the run's context
                    "config": {"configurable": run["kwargs"].get("context") or {}},
                },
                conn,
            )
            await enqueue_webhook(
                conn, self.services.db, ended, values=result.values, error=result.error
            )
        return True

    async def _after_finish(self, run: Row) -> None:
        self.services.wake_webhooks()
        stream = thread_stream(run["thread_id"])
        if await _watched(self.services, stream):
            try:
                await self.services.broker.publish(
                    stream, "metadata", dumps({"status": "run_done", "run_id": run["run_id"]})
                )
            except Exception as exc:
                logger.warning("announcing the end of run %s failed: %s", run["run_id"], exc)
        await delete_if_temporary(self.services, run)


async def _watched(services: Services, stream: str) -> bool:
    try:
        return await services.broker.has_subscribers(stream)
    except Exception as exc:  # the broker is away: its followers are cut off anyway
        logger.warning("could not tell whether %s is followed: %s", stream, exc)
        return False


async def _wrote_checkpoint(checkpointer: Any, run: Row) -> bool:
    latest = await checkpointer.aget_tuple(
        {"configurable": {"thread_id": run["thread_id"], "checkpoint_ns": ""}}
    )
    return latest is not None and (latest.metadata or {}).get("run_id") == run["run_id"]


class _Publisher:
    """Publishes a run's events in order, whichever loop the graph emits them from."""

    def __init__(self, services: Services, stream: str, thread: str | None) -> None:
        self.broker = services.broker
        self.stream = stream
        self.thread = thread  # the thread's stream, fed too while someone follows it
        self.queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self.emit = emitter(lambda event, data: self.queue.put_nowait((event, data)))
        self.task = asyncio.create_task(self._publish_forever())

    async def _publish_forever(self) -> None:
        failing = False
        while True:
            item = await self.queue.get()
            if item is None:
                return
            try:
                await self.broker.publish(self.stream, *item)
                if self.thread is not None:
                    await self.broker.publish(self.thread, *item)
                failing = False
            except Exception as exc:
                # The run goes on and its outcome is recorded; followers miss these events.
                if not failing:
                    logger.warning("publishing events of %s failed: %s", self.stream, exc)
                failing = True

    async def drain(self) -> None:
        # Events emitted on the graph loop arrive through call_soon_threadsafe; one turn
        # of this loop lets the last of them land in the queue before the sentinel.
        await asyncio.sleep(0)
        self.queue.put_nowait(None)
        await self.task

    async def close(self, final: dict[str, Any] | None) -> None:
        if not self.task.done():
            await self.drain()
        payload = dumps(final) if final else b""
        try:
            await self.broker.close_stream(self.stream, payload)
        except Exception as exc:
            # The broker is away. Its followers wait for it to come back: end the stream
            # then, or they would wait for an end marker nobody writes.
            logger.warning("ending %s failed, retrying in the background: %s", self.stream, exc)
            task = asyncio.create_task(_close_later(self.broker, self.stream, payload))
            _LATE_CLOSES.add(task)
            task.add_done_callback(_LATE_CLOSES.discard)


_LATE_CLOSES: set[asyncio.Task[None]] = set()
LATE_CLOSE_GIVE_UP_SECONDS = 600.0


async def _close_later(broker: Any, stream: str, payload: bytes) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LATE_CLOSE_GIVE_UP_SECONDS
    delay = 0.5
    while loop.time() < deadline:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
        try:
            await broker.close_stream(stream, payload)
        except Exception:
            continue
        logger.info("ended %s after the broker came back", stream)
        return
    logger.error("gave up ending %s: the broker did not come back", stream)
