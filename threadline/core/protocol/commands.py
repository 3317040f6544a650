"""Protocol commands: `{id, method, params}` in, a success or error envelope out.

`run.start` starts a run on the thread (creating the thread under the client's id when it
does not exist yet); when the thread waits on interrupts, the input is the answer and the
run resumes them. `input.respond` answers interrupts by id. Subscriptions only mean
something on a WebSocket, which passes its `Subscriptions`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

from threadline.core.errors import BadRequest, Conflict, InvalidInput, NotFound
from threadline.core.protocol.events import graph_name
from threadline.core.protocol.filters import EventFilter, parse_filter
from threadline.core.runs import RunRequest, create_run

if TYPE_CHECKING:
    from threadline.core.services import Services
    from threadline.storage.database import Row


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Subscriptions(Protocol):
    async def subscribe(self, event_filter: EventFilter) -> str: ...

    async def unsubscribe(self, subscription_id: str) -> bool: ...


def parse_command(body: Any) -> tuple[int, str, dict[str, Any]]:
    """The envelope's id, method and params; a CommandError (with no id) when malformed."""
    if (
        not isinstance(body, dict)
        or isinstance(body.get("id"), bool)
        or not isinstance(body.get("id"), int)
        or not isinstance(body.get("method"), str)
    ):
        raise CommandError(
            "invalid_argument", "Protocol commands must include an integer id and string method."
        )
    params = body.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise CommandError("invalid_argument", "params must be an object")
    return body["id"], body["method"], params


def success(command_id: int, result: dict[str, Any], seq: int = 0) -> dict[str, Any]:
    return {
        "type": "success",
        "id": command_id,
        "result": result,
        "meta": {"applied_through_seq": seq},
    }


def failure(command_id: int | None, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": command_id, "error": code, "message": message}


async def handle_command(
    services: Services,
    thread_id: str,
    body: Any,
    subscriptions: Subscriptions | None = None,
) -> dict[str, Any]:
    """Run one command; the envelope to send back. Only an unreachable database or broker
    escapes as an exception (Unavailable)."""
    try:
        command_id, method, params = parse_command(body)
    except CommandError as exc:
        return failure(None, exc.code, exc.message)
    try:
        result = await _dispatch(services, thread_id, method, params, subscriptions)
    except CommandError as exc:
        return failure(command_id, exc.code, exc.message)
    except (InvalidInput, BadRequest, Conflict, NotFound) as exc:
        return failure(command_id, "invalid_argument", exc.detail)
    return success(command_id, result)


async def _dispatch(
    services: Services,
    thread_id: str,
    method: str,
    params: dict[str, Any],
    subscriptions: Subscriptions | None,
) -> dict[str, Any]:
    if method == "run.start":
        return await start_run(services, thread_id, params)
    if method == "input.respond":
        await respond(services, thread_id, params)
        return {}
    if method == "agent.getTree":
        return await agent_tree(services, thread_id, params)
    if method == "subscription.subscribe":
        event_filter = _subscription_filter(params)
        if subscriptions is None:
            # Over HTTP a subscription is the body of /stream/events; accepted, as the
            # reference does, but it delivers nothing here.
            return {"subscription_id": str(uuid.uuid4())}
        return {"subscription_id": await subscriptions.subscribe(event_filter)}
    if method == "subscription.unsubscribe":
        subscription_id = params.get("subscription_id")
        if subscriptions is None or not await subscriptions.unsubscribe(str(subscription_id)):
            raise CommandError("no_such_subscription", f"No subscription {subscription_id}.")
        return {}
    raise CommandError("unknown_command", f"Unknown protocol command: {method}")


def _subscription_filter(params: dict[str, Any]) -> EventFilter:
    try:
        return parse_filter(params)
    except BadRequest as exc:
        raise CommandError("invalid_argument", exc.detail) from exc


def _optional_object(params: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = params.get(key)
    if value is not None and not isinstance(value, dict):
        raise CommandError("invalid_argument", f"{key} must be an object")
    return value


def pending_interrupt_ids(thread: Row | None) -> list[str]:
    interrupts = (thread or {}).get("interrupts") or {}
    return [i["id"] for task in interrupts.values() for i in task if i.get("id")]


async def start_run(services: Services, thread_id: str, params: dict[str, Any]) -> dict[str, Any]:
    assistant_id = params.get("assistant_id")
    if not isinstance(assistant_id, str) or not assistant_id:
        raise CommandError("invalid_argument", "run.start requires an assistant_id.")
    thread = await services.threads.get(thread_id)
    graph_input = params.get("input")
    command = None
    if pending_interrupt_ids(thread):
        command, graph_input = {"resume": graph_input}, None
    run = await _start(services, thread_id, assistant_id, params, graph_input, command)
    return {"run_id": run["run_id"]}


async def respond(services: Services, thread_id: str, params: dict[str, Any]) -> None:
    thread = await services.threads.get(thread_id)
    pending = pending_interrupt_ids(thread)
    if thread is None or not pending:
        raise CommandError("no_such_run", "No interrupted run is bound to this thread.")
    answers = _answers(params)
    unknown = [i for i in answers if i not in pending]
    if unknown:
        raise CommandError("no_such_interrupt", f"No pending interrupt {', '.join(unknown)}.")
    command: dict[str, Any] = {"resume": answers}
    for key in ("update", "goto"):
        if params.get(key) is not None:
            command[key] = params[key]
    assistant_id = (thread.get("metadata") or {}).get("assistant_id")
    if not assistant_id:
        raise CommandError("no_such_run", "No interrupted run is bound to this thread.")
    await _start(services, thread_id, assistant_id, params, None, command)


def _answers(params: dict[str, Any]) -> dict[str, Any]:
    """Interrupt id -> response, from one `{interrupt_id, response}` or `responses`."""
    entries = params.get("responses")
    if entries is None:
        entries = [params]
    if not isinstance(entries, list) or not entries:
        raise CommandError("invalid_argument", "responses must be a non-empty array")
    answers: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("interrupt_id"), str):
            raise CommandError("invalid_argument", "input.respond requires an interrupt_id.")
        answers[entry["interrupt_id"]] = entry.get("response")
    return answers


async def _start(
    services: Services,
    thread_id: str,
    assistant_id: str,
    params: dict[str, Any],
    graph_input: Any,
    command: dict[str, Any] | None,
) -> Row:
    strategy = params.get("multitask_strategy") or "enqueue"
    if strategy not in ("reject", "interrupt", "rollback", "enqueue"):
        raise CommandError("invalid_argument", f"Unknown multitask_strategy {strategy!r}.")
    request = RunRequest(
        assistant_id=assistant_id,
        input=graph_input,
        command=command,
        config=_optional_object(params, "config"),
        context=_optional_object(params, "context"),
        metadata=_optional_object(params, "metadata"),
        multitask_strategy=strategy,
        if_not_exists="create",
        protocol=True,
    )
    return await create_run(services, thread_id, request)


async def agent_tree(services: Services, thread_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The run's agent tree, as far as the server tracks it: the root graph and its status."""
    run_id = params.get("run_id")
    run: Row | None
    if run_id:
        run = await services.runs.get(str(run_id), thread_id)
    else:
        async with services.db.transaction() as conn:
            active = await services.runs.active_on_thread(conn, thread_id)
        running = [r for r in active if r["status"] == "running"]
        run = next(iter(running or active), None)
    if run is None:
        raise CommandError("no_such_run", "No active run is bound to this thread.")
    status = _TREE_STATUS.get(run["status"], "failed")
    return {"tree": {"namespace": [], "status": status, "graph_name": graph_name(run)}}


_TREE_STATUS = {
    "pending": "started",
    "running": "running",
    "success": "completed",
    "interrupted": "interrupted",
}
