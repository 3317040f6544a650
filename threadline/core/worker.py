"""Claims runs from the queue and executes them, up to `jobs` at a time per process."""

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
from threadline.core.threads import delete_if_temporary
from threadline.ids import new_id
from threadline.serialization import dumps, utcnow
from threadline.storage.database import Row

if TYPE_CHECKING:
    from threadline.core.services import Services

logger = logging.getLogger("threadline.worker")

LEASE_SECONDS = 30.0
HEARTBEAT_SECONDS = 5.0
IDLE_POLL_SECONDS = 5.0
MAX_ATTEMPTS = 3


@dataclass
class _Active:
    run: Row
    task: asyncio.Task[None]
    cancel_action: str | None = None


class Worker:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"
        self.capacity = services.settings.jobs
        self.graph_loop = GraphLoop(isolated=services.settings.graph_isolation == "thread")
        self.graph_checkpointer: Any = None
        self.active: dict[str, _Active] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # --- life cycle -----------------------------------------------------------
    async def start(self) -> None:
        if self.capacity == 0:
            return
        self.graph_loop.start()
        self.graph_checkpointer = await self.graph_loop.run(self.services.open_checkpointer)
        recovered = await self.services.runs.requeue_running(
            utcnow(), expired_only=False, max_attempts=MAX_ATTEMPTS
        )
        for run in recovered:
            logger.warning(
                "run %s was left running by a stopped process: %s",
                run["run_id"],
                "re-queued" if run["status"] == "pending" else "failed",
            )
        self._tasks = [
            asyncio.create_task(self._listen(WAKE_CHANNEL, lambda _: self._wake.set())),
            asyncio.create_task(self._listen(CANCEL_CHANNEL, self._on_cancel_signal)),
            asyncio.create_task(self._heartbeat_forever()),
            asyncio.create_task(self._claim_forever()),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        running = [active.task for active in self.active.values()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
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
                self.worker_id, now, now + datetime.timedelta(seconds=LEASE_SECONDS)
            )
        except Exception:
            logger.exception("claiming a run failed")
            await asyncio.sleep(1)
            return None

    async def _idle_timeout(self) -> float:
        due = await self.services.runs.next_due_at()
        if due is None:
            return IDLE_POLL_SECONDS
        return max(0.0, min(IDLE_POLL_SECONDS, (due - utcnow()).total_seconds()))

    def _launch(self, run: Row) -> None:
        task = asyncio.create_task(self._execute(run), name=f"run-{run['run_id']}")
        self.active[run["run_id"]] = _Active(run, task)
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
        if active.cancel_action is None:
            active.cancel_action = action
            active.task.cancel()
        return True

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            lease_until = utcnow() + datetime.timedelta(seconds=LEASE_SECONDS)
            for run_id in list(self.active):
                try:
                    row = await self.services.runs.renew_lease(run_id, self.worker_id, lease_until)
                except Exception:
                    logger.exception("renewing the lease of run %s failed", run_id)
                    continue
                if row is None:
                    # The run was deleted or taken away: stop working on it.
                    self.cancel_local(run_id, "interrupt")
                elif row.get("cancel_action"):
                    self.cancel_local(run_id, row["cancel_action"])

    # --- execution --------------------------------------------------------------
    async def _execute(self, run: Row) -> None:
        run_id = run["run_id"]
        thread_watched = await self.services.broker.has_subscribers(thread_stream(run["thread_id"]))
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
                action = self.active[run_id].cancel_action if run_id in self.active else None
                if action is None:  # shutting down: leave it for the next process
                    await publisher.close(None)
                    raise
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
            await self._finish(run, result)
            await self._after_finish(run)
            # last, so that whoever sees the end finds the run's effects complete
            await publisher.close({"status": result.status, "output": result.output})
        finally:
            self.active.pop(run_id, None)
            self._wake.set()

    def _graph_call(
        self, run: Row, emit: Callable[[str, bytes], None]
    ) -> Callable[[], Awaitable[executor.Execution]]:
        graphs = self.services.graphs
        kwargs = run["kwargs"]
        graph_id = kwargs["config"]["configurable"]["graph_id"]
        attempt = run["attempt"]
        checkpointer = self.graph_checkpointer
        store = self.services.store

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

    async def _finish(self, run: Row, result: executor.Execution) -> None:
        now = utcnow()
        async with self.services.db.transaction() as conn:
            await self.services.runs.finish(
                conn, run["run_id"], status=result.status, output=result.output, now=now
            )
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

    async def _after_finish(self, run: Row) -> None:
        if await self.services.broker.has_subscribers(thread_stream(run["thread_id"])):
            await self.services.broker.publish(
                thread_stream(run["thread_id"]),
                "metadata",
                dumps({"status": "run_done", "run_id": run["run_id"]}),
            )
        await delete_if_temporary(self.services, run)


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
        while True:
            item = await self.queue.get()
            if item is None:
                return
            await self.broker.publish(self.stream, *item)
            if self.thread is not None:
                await self.broker.publish(self.thread, *item)

    async def drain(self) -> None:
        # Events emitted on the graph loop arrive through call_soon_threadsafe; one turn
        # of this loop lets the last of them land in the queue before the sentinel.
        await asyncio.sleep(0)
        self.queue.put_nowait(None)
        await self.task

    async def close(self, final: dict[str, Any] | None) -> None:
        if not self.task.done():
            await self.drain()
        await self.broker.close_stream(self.stream, dumps(final) if final else b"")
