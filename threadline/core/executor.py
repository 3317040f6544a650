"""Runs one graph invocation and turns what it streams into the run's events.

Everything here may run on the graph event loop (see graph_loop.py): it touches no
storage and hands events out through `emit`, which is safe to call from that loop.
"""

from __future__ import annotations

import copy
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import langgraph.version
from langchain_core._api import LangChainBetaWarning
from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message
from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import Command, Send

from threadline import __version__
from threadline.core.protocol.events import CustomWrites, ProtocolMapper
from threadline.serialization import dumps, to_jsonable
from threadline.storage.database import DatabaseUnavailable, Row

Emit = Callable[[str, bytes], None]

# SSE mode -> the LangGraph stream mode that produces it
_GRAPH_MODE = {
    "values": "values",
    "updates": "updates",
    "custom": "custom",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "debug": "debug",
    "messages": "messages",
    "messages-tuple": "messages",
}


@dataclass
class Execution:
    """What the worker records once the graph has returned."""

    status: str
    output: Any
    values: Any = None
    interrupts: dict[str, Any] = field(default_factory=dict)
    error: dict[str, str] | None = None
    has_next: bool = False

    @property
    def thread_status(self) -> str:
        if self.status == "error":
            return "error"
        if self.interrupts or self.has_next:
            return "interrupted"
        return "idle"


def error_payload(exc: BaseException) -> dict[str, str]:
    return {"error": type(exc).__name__, "message": str(exc)}


def build_command(command: dict[str, Any]) -> Command[Any]:
    goto = command.get("goto")
    if isinstance(goto, dict):
        goto = Send(goto["node"], goto.get("input"))
    elif isinstance(goto, list):
        goto = [Send(g["node"], g.get("input")) if isinstance(g, dict) else g for g in goto]
    return Command(
        update=command.get("update"),
        resume=command.get("resume"),
        goto=goto if goto is not None else (),
    )


def run_config(run: Row, attempt: int) -> dict[str, Any]:
    kwargs = run["kwargs"]
    config: dict[str, Any] = copy.deepcopy(kwargs["config"])
    configurable = config["configurable"]
    # The reference's run metadata carries no user_id (it reaches checkpoint metadata from
    # config.configurable instead); langgraph_api_url is left out, see the golden tests.
    config["metadata"] = {
        **(config.get("metadata") or {}),
        **run["metadata"],
        "run_id": run["run_id"],
        "thread_id": run["thread_id"],
        "run_attempt": attempt,
        "langgraph_version": langgraph.version.__version__,
        "langgraph_api_version": __version__,
        "langgraph_plan": "developer",
        "langgraph_host": "self-hosted",
    }
    config["run_id"] = run["run_id"]
    config.setdefault("run_name", configurable["graph_id"])
    return config


class _EventMapper:
    """Maps LangGraph stream chunks to SSE event names and payloads."""

    def __init__(self, requested: list[str], emit: Emit) -> None:
        self.requested = set(requested)
        self.emit = emit
        self.tuples = "messages-tuple" in self.requested
        self.seen_messages: set[str] = set()
        self.partial: dict[str, BaseMessageChunk] = {}

    @property
    def graph_modes(self) -> list[str]:
        return sorted({_GRAPH_MODE[m] for m in self.requested if m in _GRAPH_MODE})

    def send(self, name: str, namespace: tuple[str, ...], payload: Any) -> None:
        if namespace:
            name = f"{name}|{'|'.join(namespace)}"
        self.emit(name, dumps(payload))

    def chunk(self, namespace: tuple[str, ...], mode: str, chunk: Any) -> None:
        if mode == "debug" and isinstance(chunk, dict) and chunk.get("type") == "checkpoint":
            chunk = {**chunk, "payload": _with_checkpoint_refs(chunk.get("payload") or {})}
        if mode != "messages":
            self.send(mode, namespace, chunk)
        elif self.tuples:
            message, metadata = chunk
            self.send("messages", namespace, [message, metadata])
        else:
            self._legacy_message(namespace, *chunk)

    def _legacy_message(self, namespace: tuple[str, ...], message: Any, metadata: Any) -> None:
        msg_id = getattr(message, "id", None) or ""
        if msg_id not in self.seen_messages:
            self.seen_messages.add(msg_id)
            self.send("messages/metadata", namespace, {msg_id: {"metadata": metadata}})
        if isinstance(message, BaseMessageChunk):
            so_far = self.partial.get(msg_id)
            so_far = message if so_far is None else so_far + message
            self.partial[msg_id] = so_far
            self.send("messages/partial", namespace, [message_chunk_to_message(so_far)])
        else:
            self.send("messages/complete", namespace, [message])


def _checkpoint_ref(config: Any) -> dict[str, Any] | None:
    configurable = (config or {}).get("configurable") if isinstance(config, dict) else None
    if not configurable:
        return None
    return {
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "thread_id": configurable.get("thread_id"),
    }


def _with_checkpoint_refs(payload: dict[str, Any]) -> dict[str, Any]:
    """The reference's debug checkpoint payloads also name the checkpoint and its parent."""
    return {
        "checkpoint": _checkpoint_ref(payload.get("config")),
        "parent_checkpoint": _checkpoint_ref(payload.get("parent_config")),
        **payload,
    }


def _stamp_message_ids(value: Any, depth: int = 0) -> None:
    """Give messages without an id one now, in place, as the add_messages reducer would a
    moment later: an `events` payload then shows the id the message keeps in the state."""
    if depth > 6:
        return
    if isinstance(value, BaseMessage):
        if value.id is None:
            value.id = str(uuid.uuid4())
    elif isinstance(value, dict):
        for item in value.values():
            _stamp_message_ids(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _stamp_message_ids(item, depth + 1)


async def _chunks(
    graph: Pregel,
    graph_input: Any,
    config: dict[str, Any],
    options: dict[str, Any],
    mapper: _EventMapper,
) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    """(namespace, mode, chunk) triples; in `events` mode, the events are emitted on the way."""
    # the options are built at run time, so no overload of astream can be picked statically
    runnable: Any = graph
    if "events" not in mapper.requested:
        async for item in runnable.astream(graph_input, config, **options):
            yield _triple(item)
        return
    async for event in runnable.astream_events(graph_input, config, version="v2", **options):
        is_root = not event.get("parent_ids")
        if is_root and event["event"] == "on_chain_stream":
            yield _triple(event["data"]["chunk"])
            continue
        if "langsmith:hidden" in (event.get("tags") or ()):
            continue
        _stamp_message_ids(event.get("data"))
        mapper.send("events", (), event)


async def _stream_protocol(
    graph: Pregel,
    graph_input: Any,
    config: dict[str, Any],
    options: dict[str, Any],
    emit: Emit,
) -> None:
    """LangGraph's v3 event stream, in the protocol's wire shape (core/protocol/events)."""
    runnable: Any = graph
    extra = {k: v for k, v in options.items() if k not in ("stream_mode", "subgraphs")}
    mapper = ProtocolMapper()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangChainBetaWarning)
        stream = await runnable.astream_events(
            graph_input, config, version="v3", transformers=[CustomWrites], **extra
        )
    async for event in stream:
        emit(*mapper.map(event))


def _triple(item: tuple[Any, ...]) -> tuple[tuple[str, ...], str, Any]:
    """astream yields (mode, chunk), or (namespace, mode, chunk) with subgraphs."""
    if len(item) == 3:
        return tuple(item[0]), item[1], item[2]
    return (), item[0], item[1]


async def execute(
    graph: Pregel,
    run: Row,
    attempt: int,
    emit: Emit,
) -> Execution:
    """Stream the run through `graph` (bound to the checkpointer) and read the final state."""
    kwargs = run["kwargs"]
    config = run_config(run, attempt)
    protocol = bool(kwargs.get("protocol"))
    if not protocol:
        emit("metadata", dumps({"run_id": run["run_id"], "attempt": attempt}))
    mapper = _EventMapper(kwargs.get("stream_mode") or ["values"], emit)
    graph_input = build_command(kwargs["command"]) if kwargs.get("command") else kwargs["input"]
    options: dict[str, Any] = {
        "stream_mode": mapper.graph_modes,
        "subgraphs": bool(kwargs.get("subgraphs")),
        "interrupt_before": kwargs.get("interrupt_before"),
        "interrupt_after": kwargs.get("interrupt_after"),
        "durability": _durability(kwargs),
    }
    if kwargs.get("context"):
        options["context"] = kwargs["context"]
    error: dict[str, str] | None = None
    try:
        if kwargs.get("strict_resume") and kwargs.get("command", {}).get("resume") is not None:
            await _check_resumable(graph, run, kwargs["command"]["resume"])
        if protocol:
            await _stream_protocol(graph, graph_input, config, options, emit)
        else:
            async for namespace, mode, chunk in _chunks(
                graph, graph_input, config, options, mapper
            ):
                mapper.chunk(tuple(namespace), mode, chunk)
    except Exception as exc:
        error = error_payload(exc)
        if not protocol and not is_outage(error):
            emit("error", dumps(error))
    try:
        return await _final_state(graph, run, error)
    except Exception as exc:
        # The saved state cannot be read back (say, writes that conflict): the run fails,
        # with one `error` event whichever way it failed first.
        if error is None:
            error = error_payload(exc)
            if not protocol and not is_outage(error):
                emit("error", dumps(error))
        return Execution("error", {"__error__": error}, error=error)


def is_outage(error: dict[str, str] | None) -> bool:
    """The run failed only because the database went away. Its worker decides whether it
    resumes (from its last checkpoint) or fails, and says so; a protocol run's end is told
    by its lifecycle either way."""
    return error is not None and error.get("error") == DatabaseUnavailable.__name__


class UnknownInterruptError(Exception):
    """A strict resume answered an interrupt the thread is not waiting on."""


async def _check_resumable(graph: Pregel, run: Row, resume: Any) -> None:
    snapshot = await graph.aget_state(
        {"configurable": {"thread_id": run["thread_id"], "checkpoint_ns": ""}}
    )
    waiting = {i.id for i in snapshot.interrupts}
    if not waiting:
        raise UnknownInterruptError("the thread is not waiting on an interrupt")
    if (
        isinstance(resume, dict)
        and resume
        and set(resume) - waiting
        and all(isinstance(k, str) and len(k) == 32 for k in resume)
    ):
        unknown = ", ".join(sorted(set(resume) - waiting))
        raise UnknownInterruptError(f"no pending interrupt with id {unknown}")


def _durability(kwargs: dict[str, Any]) -> str | None:
    if kwargs.get("durability"):
        return str(kwargs["durability"])
    if kwargs.get("checkpoint_during") is False:
        return "exit"
    return None


async def _final_state(graph: Pregel, run: Row, error: dict[str, str] | None) -> Execution:
    state_config: RunnableConfig = {
        "configurable": {"thread_id": run["thread_id"], "checkpoint_ns": ""}
    }
    snapshot = await graph.aget_state(state_config)
    values = to_jsonable(snapshot.values) if snapshot.values is not None else {}
    interrupts: dict[str, Any] = {}
    for task in snapshot.tasks:
        if task.interrupts:
            # thread.interrupts lists {id, value} only (the /wait output also has
            # response_schema)
            interrupts[task.id] = [
                {"id": i.id, "value": to_jsonable(i.value)} for i in task.interrupts
            ]
    if error is not None:
        return Execution(
            "error", {"__error__": error}, values=values, interrupts=interrupts, error=error
        )
    output = dict(values) if isinstance(values, dict) else {"__output__": values}
    if snapshot.interrupts:
        output["__interrupt__"] = to_jsonable(list(snapshot.interrupts))
    return Execution(
        "success", output, values=values, interrupts=interrupts, has_next=bool(snapshot.next)
    )
