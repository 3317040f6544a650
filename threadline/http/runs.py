"""HTTP routes for runs: create (background, stream, wait), read, join, cancel."""

from __future__ import annotations

import datetime
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Body, Header, Query, Request
from starlette.responses import Response

from threadline.broker.base import StreamEvent
from threadline.core import cancel as cancel_core
from threadline.core import runs as core
from threadline.core.errors import InvalidInput, NotFound
from threadline.core.services import Services
from threadline.http.deferred import DeferredJSONResponse
from threadline.http.ids import require_uuid
from threadline.http.responses import JSONResponse, json_response, no_content
from threadline.http.schemas.runs import (
    RunCancelBulk,
    RunCreateStateful,
    RunCreateStateless,
    StreamMode,
)
from threadline.http.sse import EventStreamResponse
from threadline.storage.database import Row

router = APIRouter(tags=["Thread Runs"])
stateless = APIRouter(tags=["Stateless Runs"])

RUN_FIELDS = (
    "run_id",
    "thread_id",
    "assistant_id",
    "metadata",
    "status",
    "kwargs",
    "multitask_strategy",
    "created_at",
    "updated_at",
    "langsmith_session_name",  # always null: Threadline does not trace to LangSmith
)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def run_json(run: Row, select: list[str] | None = None) -> dict[str, Any]:
    fields = [f for f in RUN_FIELDS if not select or f in select]
    body = {field: run.get(field) for field in fields}
    if "kwargs" in body and body["kwargs"] is not None:
        body["kwargs"] = {k: v for k, v in body["kwargs"].items() if k != "on_completion"}
    for field in ("created_at", "updated_at"):
        if isinstance(value := body.get(field), datetime.datetime):
            body[field] = value.isoformat(timespec="microseconds")
    return body


def _to_request(body: RunCreateStateful | RunCreateStateless, request: Request) -> core.RunRequest:
    data = body.model_dump(exclude_none=True, exclude={"langsmith_tracer"})
    if body.input is not None and body.command is not None:
        raise InvalidInput("Pass either input or command, not both")
    data["headers"] = {k.lower(): v for k, v in request.headers.items()}
    if body.command is not None:
        data["command"] = body.command.model_dump(exclude_none=True)
    if "config" in data:
        data["config"] = body.config.model_dump(exclude_none=True) if body.config else None
    return core.RunRequest(**data)


def _locations(run: Row, *, stateless_run: bool, suffix: str) -> dict[str, str]:
    base = (
        f"/runs/{run['run_id']}"
        if stateless_run
        else f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    )
    headers = {"Content-Location": base}
    if suffix:
        headers["Location"] = f"{base}/{suffix}"
    return headers


_EVENT_ID = re.compile(r"-1|\d+(-\d+)?")


def _event_id(last_event_id: str | None) -> str | None:
    """A `Last-Event-ID` header: an id this server sent (`<ms>-<seq>`), or "-1" for all."""
    value = (last_event_id or "").strip()
    if not value:
        return None
    if not _EVENT_ID.fullmatch(value):
        raise InvalidInput(f"Invalid Last-Event-ID: {value!r}")
    return value


def _join_modes(stream_mode: list[str] | None) -> list[str] | None:
    """The joiner's modes. The SDK sends `stream_mode=` (empty) when it has none."""
    modes = [m for m in stream_mode or [] if m]
    if unknown := sorted(set(modes) - set(get_args(StreamMode))):
        raise InvalidInput(f"Unknown stream_mode: {', '.join(unknown)}")
    return modes or None


def _mode_of(event: str) -> str:
    name = event.split("|", 1)[0]
    if name.startswith("messages/"):
        return "messages"
    if name == "messages":
        return "messages-tuple"
    return name


def _filtered(
    events: AsyncIterator[StreamEvent], modes: list[str] | None
) -> AsyncIterator[StreamEvent]:
    if not modes:
        return events
    wanted = set(modes)

    async def only_wanted() -> AsyncIterator[StreamEvent]:
        async for event in events:
            if (
                event.is_end
                or event.event in ("metadata", "error")
                or (_mode_of(event.event) in wanted)
            ):
                yield event

    return only_wanted()


def _stream_response(
    services: Services,
    run: Row,
    *,
    last_event_id: str | None,
    replay: bool,
    modes: list[str] | None,
    cancel_on_disconnect: bool,
    headers: dict[str, str],
) -> EventStreamResponse:
    events = core.stream_run(services, run["run_id"], last_event_id=last_event_id, replay=replay)

    async def cancel() -> None:
        await cancel_core.cancel_run(services, run["thread_id"], run["run_id"], "interrupt")

    return EventStreamResponse(
        _filtered(events, modes),
        headers=headers,
        heartbeat=services.settings.sse_heartbeat_seconds,
        on_disconnect=cancel if cancel_on_disconnect else None,
        ready=services.broker.check,
    )


def _join_stream(
    services: Services,
    run: Row,
    last_event_id: str | None,
    stream_mode: list[str] | None,
    cancel_on_disconnect: bool,
) -> EventStreamResponse:
    """Joining a run's stream: a replay only after `Last-Event-ID`, then live events."""
    after = _event_id(last_event_id)
    return _stream_response(
        services,
        run,
        last_event_id=after,
        replay=after is not None,
        modes=_join_modes(stream_mode),
        cancel_on_disconnect=cancel_on_disconnect,
        headers={},
    )


def _wait_response(
    services: Services, run: Row, headers: dict[str, str], cancel_on_disconnect: bool
) -> DeferredJSONResponse:
    async def body() -> Any:
        outcome = await core.wait_for_run(services, run["run_id"])
        if outcome is None:  # the run was deleted meanwhile; the reference's join says so
            return {"__error__": {"error": "HTTPException", "message": "404: Run not found"}}
        return outcome.output

    async def cancel() -> None:
        await cancel_core.cancel_run(services, run["thread_id"], run["run_id"], "interrupt")

    return DeferredJSONResponse(
        body(), headers=headers, on_disconnect=cancel if cancel_on_disconnect else None
    )


async def _create_and_stream(
    request: Request, thread_id: str | None, body: RunCreateStateful | RunCreateStateless
) -> EventStreamResponse:
    """Create a run (stateless when `thread_id` is None) and stream it from its start."""
    services = _services(request)
    await services.broker.check()  # refused while the broker is away: no run without its stream
    run = await core.create_run(services, thread_id, _to_request(body, request))
    return _stream_response(
        services,
        run,
        last_event_id="-1",
        replay=True,
        modes=None,
        cancel_on_disconnect=body.on_disconnect == "cancel",
        headers=_locations(run, stateless_run=thread_id is None, suffix="stream"),
    )


async def _create_and_wait(
    request: Request, thread_id: str | None, body: RunCreateStateful | RunCreateStateless
) -> DeferredJSONResponse:
    """Create a run (stateless when `thread_id` is None) and answer with its outcome."""
    services = _services(request)
    run = await core.create_run(services, thread_id, _to_request(body, request))
    return _wait_response(
        services,
        run,
        _locations(run, stateless_run=thread_id is None, suffix="join"),
        body.on_disconnect == "cancel",
    )


# --- stateful runs --------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs", response_class=JSONResponse)
async def create_run(thread_id: str, body: RunCreateStateful, request: Request) -> Response:
    thread_id = _run_thread_id(thread_id)
    run = await core.create_run(_services(request), thread_id, _to_request(body, request))
    return json_response(run_json(run), headers=_locations(run, stateless_run=False, suffix=""))


def _run_thread_id(thread_id: str) -> str:
    try:
        return require_uuid(thread_id, "thread")
    except InvalidInput as exc:
        raise InvalidInput("Invalid thread ID") from exc


@router.post("/threads/{thread_id}/runs/stream")
async def stream_run(thread_id: str, body: RunCreateStateful, request: Request) -> Any:
    return await _create_and_stream(request, _run_thread_id(thread_id), body)


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(thread_id: str, body: RunCreateStateful, request: Request) -> Any:
    return await _create_and_wait(request, _run_thread_id(thread_id), body)


@router.get("/threads/{thread_id}/runs", response_class=JSONResponse)
async def list_runs(
    thread_id: str,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: Annotated[
        str | None, Query(pattern="^(pending|running|error|success|timeout|interrupted)$")
    ] = None,
    select: Annotated[list[str] | None, Query()] = None,
) -> Response:
    thread_id = require_uuid(thread_id, "thread")
    runs = await core.list_runs(
        _services(request), thread_id, status=status, limit=limit, offset=offset
    )
    return json_response([run_json(run, select) for run in runs])


@router.get("/threads/{thread_id}/runs/{run_id}", response_class=JSONResponse)
async def get_run(thread_id: str, run_id: str, request: Request) -> Response:
    thread_id = require_uuid(thread_id, "thread")
    run = await core.get_run(_services(request), thread_id, require_uuid(run_id, "run"))
    return json_response(run_json(run))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, request: Request) -> Response:
    thread_id = require_uuid(thread_id, "thread")
    await cancel_core.delete_run(_services(request), thread_id, require_uuid(run_id, "run"))
    return no_content()


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(
    thread_id: str, run_id: str, request: Request, cancel_on_disconnect: bool = False
) -> Any:
    services = _services(request)
    thread_id = require_uuid(thread_id, "thread")
    run = await core.get_run(services, thread_id, require_uuid(run_id, "run"))
    return _wait_response(services, run, {}, cancel_on_disconnect)


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_run_stream(
    thread_id: str,
    run_id: str,
    request: Request,
    stream_mode: Annotated[list[str] | None, Query()] = None,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Any:
    services = _services(request)
    thread_id = require_uuid(thread_id, "thread")
    run = await core.get_run(services, thread_id, require_uuid(run_id, "run"))
    return _join_stream(services, run, last_event_id, stream_mode, cancel_on_disconnect)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str,
    run_id: str,
    request: Request,
    wait: bool = False,
    action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
) -> Response:
    services = _services(request)
    thread_id = require_uuid(thread_id, "thread")
    run_id = require_uuid(run_id, "run")
    await cancel_core.cancel_run(services, thread_id, run_id, action, strict=True)
    if not wait:
        return Response(status_code=202)
    outcome = await core.wait_for_run(services, run_id)
    return json_response(outcome.output if outcome and outcome.output is not None else {})


@stateless.post("/runs/cancel", status_code=204)
async def cancel_runs(
    request: Request,
    body: RunCancelBulk,
    action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
) -> Response:
    if body.status is None and (body.thread_id is None or body.run_ids is None):
        raise InvalidInput("Provide either 'status', or both 'thread_id' and 'run_ids'")
    if body.status is not None and (body.thread_id is not None or body.run_ids is not None):
        raise InvalidInput("Provide either 'status', or 'thread_id' with 'run_ids', not both")
    await cancel_core.cancel_bulk(
        _services(request),
        thread_id=require_uuid(body.thread_id, "thread") if body.thread_id else None,
        run_ids=[require_uuid(r, "run") for r in body.run_ids or []],
        status=body.status,
        action=action,
    )
    return no_content()


# --- stateless runs -------------------------------------------------------------------


@stateless.post("/runs", response_class=JSONResponse)
async def create_stateless_run(body: RunCreateStateless, request: Request) -> Response:
    run = await core.create_run(_services(request), None, _to_request(body, request))
    return json_response(run_json(run), headers=_locations(run, stateless_run=True, suffix=""))


@stateless.post("/runs/stream")
async def stream_stateless_run(body: RunCreateStateless, request: Request) -> Any:
    return await _create_and_stream(request, None, body)


@stateless.post("/runs/wait")
async def wait_stateless_run(body: RunCreateStateless, request: Request) -> Any:
    return await _create_and_wait(request, None, body)


@stateless.post("/runs/batch", response_class=JSONResponse)
async def batch_runs(
    request: Request, body: Annotated[list[RunCreateStateless], Body(min_length=1)]
) -> Response:
    requests = [_to_request(item, request) for item in body]
    runs = await core.create_stateless_batch(_services(request), requests)
    return json_response([run_json(run) for run in runs])


# The reference points stateless runs' Location headers at these routes without serving
# them; Threadline serves them, so the SDK's reconnect works for stateless streams too.
@stateless.get("/runs/{run_id}", response_class=JSONResponse)
async def get_stateless_run(run_id: str, request: Request) -> Response:
    run = await _services(request).runs.get(require_uuid(run_id, "run"))
    if run is None:
        raise NotFound("Run not found")
    return json_response(run_json(run))


@stateless.get("/runs/{run_id}/stream")
async def join_stateless_stream(
    run_id: str,
    request: Request,
    stream_mode: Annotated[list[str] | None, Query()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Any:
    services = _services(request)
    run_id = require_uuid(run_id, "run")
    run = await services.runs.get(run_id) or {"run_id": run_id, "thread_id": None}
    return _join_stream(services, run, last_event_id, stream_mode, False)


@stateless.get("/runs/{run_id}/join")
async def join_stateless_run(run_id: str, request: Request) -> Any:
    services = _services(request)
    run_id = require_uuid(run_id, "run")
    run = await services.runs.get(run_id) or {"run_id": run_id, "thread_id": None}
    return _wait_response(services, run, {}, False)


THREAD_STREAM_MODES = ("lifecycle", "run_modes", "state_update")


@router.get("/threads/{thread_id}/stream")
async def stream_thread(
    thread_id: str,
    request: Request,
    stream_modes: Annotated[list[str] | None, Query()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Any:
    """The thread's long-lived stream: every run started on it while connected, and state
    updates. Unlike the reference, an unknown thread is a 404 rather than a silent hang."""
    services = _services(request)
    thread_id = require_uuid(thread_id, "thread")
    if await services.threads.get(thread_id) is None:
        raise NotFound(f"Thread with ID {thread_id} not found")
    modes = set(stream_modes or ["run_modes"])
    if unknown := modes - set(THREAD_STREAM_MODES):
        raise InvalidInput(f"Unknown stream_modes: {', '.join(sorted(unknown))}")
    last_event_id = _event_id(last_event_id)
    events = services.broker.subscribe(
        core.thread_stream(thread_id), last_event_id, replay=last_event_id is not None
    )

    async def wanted() -> AsyncIterator[StreamEvent]:
        async for event in events:
            if event.event == "state_update":
                keep = "state_update" in modes
            elif event.event == "metadata":
                keep = bool(modes & {"lifecycle", "run_modes"})
            else:
                keep = "run_modes" in modes
            if keep:
                yield event

    return EventStreamResponse(
        wanted(), heartbeat=services.settings.sse_heartbeat_seconds, ready=services.broker.check
    )
