"""Where graph code runs: on its own event loop thread, or on the serving loop.

User graphs sometimes block (a sync HTTP call inside an async node). On the serving loop
that would stall every request; on a dedicated loop it stalls only other graph code.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class GraphLoop:
    """Runs coroutines for the serving loop, on a separate loop when `isolated`."""

    def __init__(self, isolated: bool) -> None:
        self.isolated = isolated
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.isolated:
            return
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="threadline-graphs", daemon=True)
        self._thread.start()
        ready.wait()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    async def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Await `factory()` on the graph loop. Cancelling the caller cancels the work there
        and returns only once it has really stopped."""
        if self._loop is None:
            return await factory()
        graph_loop = self._loop
        serving = asyncio.get_running_loop()
        outcome: asyncio.Future[T] = serving.create_future()
        task: asyncio.Task[T] | None = None
        cancelled = False

        def settle(finished: asyncio.Task[T]) -> None:
            if outcome.done():
                return
            if finished.cancelled():
                outcome.cancel()
            elif (exc := finished.exception()) is not None:
                outcome.set_exception(exc)
            else:
                outcome.set_result(finished.result())

        def start() -> None:
            nonlocal task
            task = graph_loop.create_task(_as_coroutine(factory))
            task.add_done_callback(lambda t: serving.call_soon_threadsafe(settle, t))
            if cancelled:
                task.cancel()

        def cancel() -> None:
            nonlocal cancelled
            cancelled = True
            if task is not None:
                task.cancel()

        graph_loop.call_soon_threadsafe(start)
        try:
            return await asyncio.shield(outcome)
        except asyncio.CancelledError:
            graph_loop.call_soon_threadsafe(cancel)
            with contextlib.suppress(BaseException):
                await outcome
            raise


async def _as_coroutine(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


def emitter(callback: Callable[[str, bytes], None]) -> Callable[[str, bytes], None]:
    """A thread-safe version of `callback` that runs on the calling (serving) loop."""
    serving = asyncio.get_running_loop()

    def emit(event: str, data: bytes) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is serving:
            callback(event, data)
        else:
            serving.call_soon_threadsafe(callback, event, data)

    return emit
