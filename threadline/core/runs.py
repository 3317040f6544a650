"""Run use cases: create (with the multitask contract), read, list, delete, wait."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from threadline.broker.base import StreamEvent
from threadline.core.errors import Conflict, InvalidInput, NotFound, ThreadlineError
from threadline.core.webhooks import validate_webhook
from threadline.ids import is_uuid, new_id, system_assistant_id
from threadline.serialization import dumps, utcnow
from threadline.storage.database import Row
from threadline.storage.runs import TERMINAL

if TYPE_CHECKING:
    from threadline.core.services import Services

logger = logging.getLogger("threadline.runs")

WAKE_CHANNEL = "runs:wake"
BUSY_THREAD = (
    "Thread is already running a task. Wait for it to finish or choose a different "
    "multitask strategy."
)
NOT_FOUND = "Thread or assistant not found."

# Keys the server sets in config.configurable; a user's value for them is replaced.
STAMPED_KEYS = (
    "graph_id",
    "assistant_id",
    "run_id",
    "thread_id",
    "user_id",
    "langgraph_auth_user",
    "langgraph_auth_user_id",
    "langgraph_auth_permissions",
)


def run_stream(run_id: str) -> str:
    return f"run:{run_id}"


def thread_stream(thread_id: str) -> str:
    return f"thread:{thread_id}"


@dataclass
class RunRequest:
    """A run as asked for, after HTTP validation."""

    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    stream_mode: list[str] | None = None
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: list[str] | str | None = None
    interrupt_after: list[str] | str | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    multitask_strategy: str = "enqueue"
    if_not_exists: str = "reject"
    after_seconds: float | None = None
    durability: str | None = None
    checkpoint_during: bool | None = None
    on_disconnect: str = "continue"
    on_completion: str | None = None  # stateless runs only: delete | keep
    strict_resume: bool = False
    headers: dict[str, str] | None = None
    # started through the thread-centric protocol: its events go to the thread's log
    protocol: bool = False


async def resolve_assistant(services: Services, assistant_id: str) -> Row:
    if not is_uuid(assistant_id):
        if assistant_id not in services.graphs:
            graphs = ", ".join(services.graphs.graph_ids)
            raise InvalidInput(
                f"Invalid assistant: '{assistant_id}'. Must be either:\n"
                f"- A valid assistant UUID, or\n- One of the registered graphs: {graphs}"
            )
        assistant_id = system_assistant_id(assistant_id)
    assistant = await services.assistants.get(assistant_id.lower())
    if assistant is None:
        raise NotFound(NOT_FOUND)
    if assistant["graph_id"] not in services.graphs:
        raise NotFound(f"Graph '{assistant['graph_id']}' of assistant {assistant_id} not found")
    return assistant


def merge_config(assistant: Row, request: RunRequest) -> dict[str, Any]:
    base = assistant.get("config") or {}
    override = request.config or {}
    merged: dict[str, Any] = {**base, **override}
    tags = [*base.get("tags", []), *override.get("tags", [])]
    if tags:
        merged["tags"] = list(dict.fromkeys(tags))
    merged["configurable"] = {
        **(base.get("configurable") or {}),
        **(override.get("configurable") or {}),
    }
    return merged


def _forwarded_headers(services: Services, headers: dict[str, str] | None) -> dict[str, str]:
    """Request headers copied into config.configurable, as the reference does for `x-`
    headers; `http.configurable_headers` in langgraph.json chooses which."""
    if not headers:
        return {}
    import fnmatch

    http = services.settings.config.http
    rules = http.configurable_headers if http else None
    includes = (rules.includes if rules and rules.includes is not None else ["x-*"]) or []
    excludes = (rules.excludes if rules and rules.excludes is not None else []) or []
    excludes = [*excludes, "x-api-key", "authorization", "cookie"]
    return {
        name: value
        for name, value in headers.items()
        if any(fnmatch.fnmatch(name, pattern) for pattern in includes)
        and not any(fnmatch.fnmatch(name, pattern) for pattern in excludes)
    }


def build_kwargs(
    services: Services,
    assistant: Row,
    request: RunRequest,
    *,
    run_id: str,
    thread_id: str,
    temporary: bool,
) -> dict[str, Any]:
    config = merge_config(assistant, request)
    configurable = {
        **_forwarded_headers(services, request.headers),
        **config["configurable"],
        "run_id": run_id,
        "thread_id": thread_id,
        "graph_id": assistant["graph_id"],
        "assistant_id": assistant["assistant_id"],
        "user_id": config["configurable"].get("user_id", ""),
        # What graphs read to learn who runs them. Without custom auth nobody is
        # authenticated; the reference stamps the same values.
        "langgraph_auth_user": None,
        "langgraph_auth_user_id": "",
        "langgraph_auth_permissions": [],
    }
    checkpoint = dict(request.checkpoint or {})
    if request.checkpoint_id:
        checkpoint["checkpoint_id"] = request.checkpoint_id
    for key in ("checkpoint_id", "checkpoint_ns", "checkpoint_map"):
        if checkpoint.get(key) is not None:
            configurable[key] = checkpoint[key]
    config["configurable"] = configurable
    context = {**(assistant.get("context") or {}), **(request.context or {})}
    return {
        "input": request.input,
        "command": request.command,
        "config": config,
        "context": context,
        "stream_mode": request.stream_mode or ["values"],
        "interrupt_before": request.interrupt_before,
        "interrupt_after": request.interrupt_after,
        "webhook": request.webhook,
        "feedback_keys": request.feedback_keys,
        "temporary": temporary,
        "subgraphs": request.stream_subgraphs,
        "resumable": request.stream_resumable,
        "checkpoint_during": request.checkpoint_during,
        "durability": request.durability,
        "on_completion": request.on_completion,
        "strict_resume": request.strict_resume,
        "protocol": request.protocol,
    }


def run_metadata(assistant: Row, request: RunRequest) -> dict[str, Any]:
    return {
        **(assistant.get("metadata") or {}),
        **(request.metadata or {}),
        "graph_id": assistant["graph_id"],
        "assistant_id": assistant["assistant_id"],
    }


async def check_request(services: Services, request: RunRequest) -> Row:
    """Everything about a request that can be refused before anything is written; returns
    the assistant."""
    assistant = await resolve_assistant(services, request.assistant_id)
    if request.webhook:
        await validate_webhook(request.webhook, services.settings.config.webhooks)
    return assistant


async def create_stateless_batch(services: Services, requests: list[RunRequest]) -> list[Row]:
    """Stateless runs, all or none: every item is checked before the first is created."""
    for request in requests:
        await check_request(services, request)
    return [await create_run(services, None, request) for request in requests]


async def create_run(services: Services, thread_id: str | None, request: RunRequest) -> Row:
    """Insert a run on `thread_id`, or on a new temporary thread when it is None.

    The multitask contract: `reject` raises Conflict when the thread has an active run and
    inserts nothing; `enqueue` inserts and the claim keeps one run per thread at a time.
    """
    assistant = await check_request(services, request)
    now = utcnow()
    run_id = new_id()
    temporary = thread_id is None
    thread_id = thread_id or new_id()
    not_before = now + datetime.timedelta(seconds=request.after_seconds or 0)
    kwargs = build_kwargs(
        services, assistant, request, run_id=run_id, thread_id=thread_id, temporary=temporary
    )
    graph_meta = {"graph_id": assistant["graph_id"], "assistant_id": assistant["assistant_id"]}
    superseded: list[Row] = []
    async with services.db.transaction() as conn:
        thread = await services.threads.get(thread_id, conn)
        if thread is None:
            if not temporary and request.if_not_exists != "create":
                raise NotFound(NOT_FOUND)
            await services.threads.insert(
                {
                    "thread_id": thread_id,
                    "created_at": now,
                    "updated_at": now,
                    "state_updated_at": now,
                    "metadata": graph_meta,
                },
                conn,
            )
        else:
            active = await services.runs.active_on_thread(conn, thread_id)
            if active and request.multitask_strategy == "reject":
                raise Conflict(BUSY_THREAD)
            if active and request.multitask_strategy in ("interrupt", "rollback"):
                for previous in active:
                    await services.runs.request_cancel(
                        conn, previous["run_id"], request.multitask_strategy
                    )
                superseded = active
            await services.threads.update(thread_id, {"metadata": graph_meta}, conn)
        run = await services.runs.insert(
            conn,
            {
                "run_id": run_id,
                "thread_id": thread_id,
                "assistant_id": assistant["assistant_id"],
                "metadata": run_metadata(assistant, request),
                "kwargs": kwargs,
                "multitask_strategy": None if temporary else request.multitask_strategy,
                "created_at": not_before,
                "updated_at": now,
                "not_before": not_before,
            },
        )
    if superseded:
        from threadline.core.cancel import signal_cancelled

        await signal_cancelled(services, superseded, request.multitask_strategy)
    await services.broker.notify(WAKE_CHANNEL)
    return run


async def get_run(services: Services, thread_id: str, run_id: str) -> Row:
    run = await services.runs.get(run_id, thread_id)
    if run is None:
        raise NotFound("Run not found")
    return run


async def list_runs(
    services: Services, thread_id: str, *, status: str | None, limit: int, offset: int
) -> list[Row]:
    if await services.threads.get(thread_id) is None:
        raise NotFound(f"Thread with ID {thread_id} not found")
    return await services.runs.list_for_thread(thread_id, status=status, limit=limit, offset=offset)


@dataclass
class RunOutcome:
    status: str
    output: Any


# A waiter also looks at the run row whenever the run's stream stays quiet this long
# (doubling up to the maximum). A run settled without an end marker (a pending run that
# was cancelled or deleted), or a finished run whose stream is no longer retained, then
# gets its end marker here, so that nobody waits for it forever. A run's events are all
# published before its row says it is over, so this can only end a stream, never cut one.
QUIET_CHECK_FIRST_SECONDS = 0.25
QUIET_CHECK_MAX_SECONDS = 5.0


async def _until_settled(
    services: Services, run_id: str, events: AsyncIterator[StreamEvent]
) -> AsyncIterator[StreamEvent]:
    """`events` up to the end marker, which a watcher supplies when the run is over (or
    gone) and its stream has none."""
    loop = asyncio.get_running_loop()
    last_event = [loop.time()]

    async def watch() -> None:
        interval = QUIET_CHECK_FIRST_SECONDS
        graced = False
        while True:
            await asyncio.sleep(max(0.0, last_event[0] + interval - loop.time()))
            if loop.time() - last_event[0] < interval:
                continue
            try:
                run = await services.runs.get(run_id)
            except Exception:  # the database is busy or away: look again later
                logger.exception("checking on run %s failed", run_id)
                interval = min(interval * 2, QUIET_CHECK_MAX_SECONDS)
                continue
            if run is None and not graced:
                # A stateless run deletes its thread (and run row) just before its worker
                # publishes the end; give that end a moment to arrive before giving up.
                graced = True
                last_event[0] = loop.time()
                interval = QUIET_CHECK_FIRST_SECONDS
                continue
            if run is None or run["status"] in TERMINAL:
                final = (
                    b""
                    if run is None
                    else dumps({"status": run["status"], "output": run["output"]})
                )
                await services.broker.close_stream(run_stream(run_id), final)
                return
            interval = min(interval * 2, QUIET_CHECK_MAX_SECONDS)

    watcher = asyncio.create_task(watch())
    try:
        async for event in events:
            last_event[0] = loop.time()
            yield event
            if event.is_end:
                return
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]


def _outcome_from_end(event: StreamEvent) -> RunOutcome | None:
    if not event.data:
        return None
    payload = orjson.loads(event.data)
    return RunOutcome(payload["status"], payload.get("output"))


async def wait_for_run(services: Services, run_id: str) -> RunOutcome | None:
    """Block until the run ends; None when the run does not exist (any more).

    A cancelled run has no output of its own; its outcome carries the thread's values.
    """
    run = await services.runs.get(run_id)
    thread_id = run["thread_id"] if run is not None else None
    outcome: RunOutcome | None = None
    if run is None or run["status"] not in TERMINAL:
        # Without a row (a stateless run deletes its thread, and the run with it) the
        # retained stream's end marker still says how the run went.
        events = services.broker.subscribe(
            run_stream(run_id), "-1" if run is None else None, replay=run is None
        )
        async for event in _until_settled(services, run_id, events):
            if event.is_end:
                outcome = _outcome_from_end(event)
        if outcome is None:
            run = await services.runs.get(run_id)
    if outcome is None:
        if run is None:
            return None
        outcome = RunOutcome(run["status"], run["output"])
    if outcome.status == "interrupted" and outcome.output is None:
        outcome.output = await _thread_values(services, thread_id)
    return outcome


async def _thread_values(services: Services, thread_id: str | None) -> Any:
    if thread_id is None:
        return {}
    from threadline.core.state import read_state

    try:
        state = await read_state(services, thread_id)
    except ThreadlineError:
        return {}
    return state.get("values") or {}


async def stream_run(
    services: Services,
    run_id: str,
    *,
    last_event_id: str | None,
    replay: bool,
) -> AsyncIterator[StreamEvent]:
    """The run's events after `last_event_id`, then live ones, ending with the end marker."""
    events = services.broker.subscribe(run_stream(run_id), last_event_id, replay=replay)
    async for event in _until_settled(services, run_id, events):
        yield event
