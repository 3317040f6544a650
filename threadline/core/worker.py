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
from threadline.core.protocol import events as protocol_events
from threadline.core.protocol.events import INPUT_REQUESTED, LIFECYCLE, log_stream
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
from threadline.storage.database import DatabaseUnavailable, Outage, Row
from threadline.storage.runs import Claim

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
    # why the run stops without an end of its own: "shutdown" or "lost" (its lease could
    # not be kept); either way it is put back in the queue if it is still ours, else left
    # to whoever holds it now
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
        self._claims = Outage(logger, "claiming runs", longest=IDLE_POLL_SECONDS)
        self._leases = Outage(logger, "renewing leases")

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
            pause: float | None = None
            while len(self.active) < self.capacity:
                try:
                    run = await self._claim()
                except Exception as exc:
                    pause = self._claims.failed(exc)
                    break
                self._claims.succeeded()
                if run is None:
                    break
                self._launch(run)
            if pause is None:
                pause = await self._idle_timeout()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def _claim(self) -> Row | None:
        now = utcnow()
        return await self.services.runs.claim(
            self.worker_id, now, now + datetime.timedelta(seconds=self.lease_seconds)
        )

    async def _idle_timeout(self) -> float:
        try:
            due = await self.services.runs.next_due_at()
        except Exception:
            return 1.0
        if due is None:
            return IDLE_POLL_SECONDS
        return max(0.0, min(IDLE_POLL_SECONDS, (due - utcnow()).total_seconds()))

    def _launch(self, run: Row) -> None:
        # Claimed again while its previous execution here is still stopping (it lost its
        # lease in a database outage): the new one starts once the old one has stopped.
        previous = self.active.get(run["run_id"])
        task = asyncio.create_task(
            self._execute(run, previous.task if previous else None), name=f"run-{run['run_id']}"
        )
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
            if active.settled or active.abandon == "lost":
                continue
            now = utcnow()
            lease_until = now + datetime.timedelta(seconds=self.lease_seconds)
            try:
                row = await self.services.runs.renew_lease(
                    run_id, self._claim_of(active.run), lease_until
                )
            except Exception as exc:
                self._leases.failed(exc)
                # Before the lease lapses (and another process may take the run), stop.
                margin = datetime.timedelta(seconds=self.heartbeat_seconds)
                if now + margin >= active.lease_until:
                    logger.error(
                        "run %s: its lease could not be renewed (%s); leaving it to be re-queued",
                        run_id,
                        exc,
                    )
                    self._abandon(active, "lost")
                continue
            self._leases.succeeded()
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
    async def _execute(self, run: Row, after: asyncio.Task[None] | None = None) -> None:
        run_id = run["run_id"]
        me = self.active[run_id]
        if after is not None:
            await asyncio.wait({after})
        thread_watched = await _watched(self.services, thread_stream(run["thread_id"]))
        publisher = _Publisher(
            self.services,
            run_stream(run_id),
            thread_stream(run["thread_id"]) if thread_watched else None,
            log_stream(run["thread_id"]) if protocol_events.is_protocol_run(run) else None,
        )
        graph_id = protocol_events.graph_name(run)
        if publisher.log is not None:
            publisher.emit(LIFECYCLE, protocol_events.lifecycle("running", graph_id))
        try:
            try:
                result = await self.graph_loop.run(self._graph_call(run, publisher.emit))
            except asyncio.CancelledError:
                await publisher.drain()
                action = me.cancel_action
                if action is None:
                    # Shutting down, or the lease is lost: the run goes on elsewhere from
                    # its last checkpoint, in the same stream, so the stream stays open.
                    # (A lost run is still this claim's if the database went away meanwhile.)
                    await self._release(run)
                    raise
                me.settled = True  # a heartbeat must not race the settling
                await settle_cancelled_run(self.services, run, action)
                await self._after_finish(run)
                await publisher.log_end(graph_id, "failed", protocol_events.CANCELLED)
                await publisher.close({"status": "interrupted", "output": None})
                return
            except Exception as exc:
                if not isinstance(exc, DatabaseUnavailable):
                    logger.exception("run %s failed outside the graph", run_id)
                if publisher.log is None:  # a protocol run's lifecycle tells the failure
                    publisher.emit("error", dumps(executor.error_payload(exc)))
                result = executor.Execution(
                    "error",
                    {"__error__": executor.error_payload(exc)},
                    error=executor.error_payload(exc),
                )
            await publisher.drain()
            if self._lost_to_outage(run, result):
                # The stream stays open: the run goes on in it from its last checkpoint.
                logger.warning("run %s: the database went away under it; re-queueing it", run_id)
                await self._release(run)
                return
            if executor.is_outage(result.error):  # out of attempts: it fails after all
                await publisher.publish_now("error", dumps(result.error))
            if not await self._finish(me, result):
                return  # taken away meanwhile: whoever holds it now ends it
            await self._after_finish(run)
            # last, so that whoever sees the end finds the run's effects complete
            await publisher.log_outcome(graph_id, result)
            await publisher.close({"status": result.status, "output": result.output})
        finally:
            if self.active.get(run_id) is me:
                del self.active[run_id]
            self._wake.set()

    def _lost_to_outage(self, run: Row, result: executor.Execution) -> bool:
        """Whether the run failed only because the database went away under it (a step's
        checkpoint could not be written): it resumes from its last checkpoint, like a run
        whose worker died, unless its attempts are used up."""
        return (
            executor.is_outage(result.error)
            and run["attempt"] < self.services.settings.max_attempts
        )

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

    def _claim_of(self, run: Row) -> Claim:
        return Claim(self.worker_id, run["attempt"])

    async def _release(self, run: Row) -> None:
        run_id = run["run_id"]
        try:
            if await self.services.runs.release(run_id, self._claim_of(run), utcnow()):
                logger.info("run %s put back in the queue", run_id)
        except Exception as exc:  # its lease will lapse and the sweeper re-queues it
            logger.warning("putting run %s back in the queue failed: %s", run_id, exc)

    async def _finish(self, active: _Active, result: executor.Execution) -> bool:
        """Record the outcome, retrying while the database is away and the lease lasts;
        False if the run is no longer this claim's (or the lease ran out meanwhile)."""
        run = active.run
        failures = 0
        while True:
            # Once the end is written the row is no longer `running`; a heartbeat renewing
            # the lease meanwhile would take that for a lost run.
            active.settled = True
            try:
                return await self._record(run, result)
            except Exception as exc:
                active.settled = False
                if utcnow() >= active.lease_until:
                    logger.error(
                        "run %s finished but its end could not be recorded (%s); it will be "
                        "re-queued and resume from its last checkpoint",
                        run["run_id"],
                        exc,
                    )
                    return False
                if not failures:
                    logger.warning(
                        "recording the end of run %s failed, retrying: %s", run["run_id"], exc
                    )
                failures += 1
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
                owned_by=self._claim_of(run),
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
    """Publishes a run's events in order, whichever loop the graph emits them from.

    A run started through the thread-centric protocol writes its events to the thread's
    protocol log (`log`) instead; its run stream then only carries the end marker."""

    def __init__(
        self, services: Services, stream: str, thread: str | None, log: str | None = None
    ) -> None:
        self.broker = services.broker
        self.stream = stream
        self.thread = thread  # the thread's stream, fed too while someone follows it
        self.log = log
        self.queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self.emit = emitter(lambda event, data: self.queue.put_nowait((event, data)))
        self.task = asyncio.create_task(self._publish_forever())

    async def _publish_forever(self) -> None:
        failing = False
        ended = False
        while not ended:
            # what piled up while the last batch was sent goes out in one round trip
            batch = [await self.queue.get()]
            while batch[-1] is not None and not self.queue.empty() and len(batch) < PUBLISH_BATCH:
                batch.append(self.queue.get_nowait())
            ended = batch[-1] is None
            events = [item for item in batch if item is not None]
            if not events:
                continue
            try:
                await self._publish(events)
                failing = False
            except Exception as exc:
                # The run goes on and its outcome is recorded; followers miss these events.
                if not failing:
                    logger.warning("publishing events of %s failed: %s", self.stream, exc)
                failing = True

    async def _publish(self, events: list[tuple[str, bytes]]) -> None:
        if self.log is not None:
            await self.broker.publish_many(self.log, events, counted=True)
            return
        await self.broker.publish_many(self.stream, events)
        if self.thread is not None:
            await self.broker.publish_many(self.thread, events)

    async def drain(self) -> None:
        # Events emitted on the graph loop arrive through call_soon_threadsafe; one turn
        # of this loop lets the last of them land in the queue before the sentinel.
        await asyncio.sleep(0)
        self.queue.put_nowait(None)
        await self.task

    async def log_outcome(self, graph_id: str, result: executor.Execution) -> None:
        """A protocol run's interrupts and the end of its lifecycle."""
        if self.log is None:
            return
        if result.error is not None:
            await self.log_end(graph_id, "failed", result.error.get("message") or "error")
            return
        for interrupts in result.interrupts.values():
            for interrupt in interrupts:
                data = protocol_events.input_requested(interrupt["id"], interrupt["value"])
                await self._append(INPUT_REQUESTED, data)
        await self.log_end(
            graph_id, "interrupted" if result.thread_status == "interrupted" else "completed"
        )

    async def log_end(self, graph_id: str, event: str, error: str | None = None) -> None:
        if self.log is not None:
            await self._append(LIFECYCLE, protocol_events.lifecycle(event, graph_id, error))

    async def publish_now(self, event: str, data: bytes) -> None:
        """An event decided after the graph returned (the run stream's, not the log's)."""
        if self.log is not None:
            return
        try:
            await self.broker.publish(self.stream, event, data)
        except Exception as exc:  # the outcome is recorded; the end marker carries it too
            logger.warning("publishing to %s failed: %s", self.stream, exc)

    async def _append(self, method: str, data: bytes) -> None:
        assert self.log is not None
        if not self.task.done():
            await self.drain()
        try:
            await self.broker.append(self.log, method, data)
        except Exception as exc:  # the outcome is recorded; followers read it from the state
            logger.warning("publishing the end of %s failed: %s", self.stream, exc)

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
PUBLISH_BATCH = 500


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
