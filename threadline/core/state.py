"""ThreadState: a thread's state as its graph reads it, and the JSON every endpoint sends.

`snapshot_to_json` and `thread_summary_from_snapshot` are pure functions of a LangGraph
`StateSnapshot`; the thread endpoints and the run executor both use them, so a thread
looks the same whichever way its state was written.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot

from threadline.core.errors import BadRequest, InvalidInput, NotFound
from threadline.serialization import to_jsonable
from threadline.storage.database import Row

if TYPE_CHECKING:
    from threadline.core.services import Services

_CHECKPOINT_KEYS = ("checkpoint_id", "thread_id", "checkpoint_ns", "checkpoint_map")
# Keys of a thread's stored configurable that describe a past run, not the graph.
_RUN_ONLY_KEYS = frozenset(
    {"run_id", "thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map", "run_attempt"}
)
STATE_FIELDS = (
    "values",
    "next",
    "tasks",
    "metadata",
    "created_at",
    "checkpoint",
    "parent_checkpoint",
    "interrupts",
    "checkpoint_id",
    "parent_checkpoint_id",
)


def thread_not_found(thread_id: str) -> NotFound:
    return NotFound(f"Thread with ID {thread_id} not found")


def no_graph_error(thread_id: str) -> BadRequest:
    return BadRequest(
        f"Thread '{thread_id}' has no assigned graph ID. This usually occurs when no runs "
        "have been made on this particular thread. This operation requires a graph ID. "
        "Please ensure a run has been made for the thread or manually update the thread "
        "metadata (by setting the 'graph_id' field) before running this operation."
    )


# --- JSON -------------------------------------------------------------------------


def empty_state() -> dict[str, Any]:
    """The state of a thread no graph has written to yet."""
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "metadata": None,
        "created_at": None,
        "checkpoint": None,
        "parent_checkpoint": None,
        "interrupts": [],
        "checkpoint_id": None,
        "parent_checkpoint_id": None,
    }


def checkpoint_json(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`{checkpoint_id, thread_id, checkpoint_ns[, checkpoint_map]}` of a checkpoint config."""
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("checkpoint_id"):
        return None
    out: dict[str, Any] = {
        "checkpoint_id": configurable["checkpoint_id"],
        "thread_id": configurable.get("thread_id"),
        "checkpoint_ns": configurable.get("checkpoint_ns") or "",
    }
    if configurable.get("checkpoint_map"):
        out["checkpoint_map"] = to_jsonable(configurable["checkpoint_map"])
    return out


def interrupt_json(interrupt: Any) -> dict[str, Any]:
    if isinstance(interrupt, Mapping):
        return {"id": interrupt.get("id"), "value": to_jsonable(interrupt.get("value"))}
    return {"id": getattr(interrupt, "id", None), "value": to_jsonable(interrupt.value)}


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, BaseException):
        return repr(error)
    return str(error)


def task_json(task: Any) -> dict[str, Any]:
    checkpoint: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    if isinstance(task.state, StateSnapshot):
        state = snapshot_to_json(task.state)
    elif isinstance(task.state, Mapping):
        # A config instead of a snapshot: the task's subgraph has checkpoints there.
        configurable = task.state.get("configurable") or {}
        checkpoint = {k: configurable[k] for k in _CHECKPOINT_KEYS if k in configurable}
    return {
        "id": task.id,
        "name": task.name,
        "path": to_jsonable(list(task.path)),
        "error": _error_text(task.error),
        "interrupts": [interrupt_json(i) for i in task.interrupts],
        "checkpoint": checkpoint,
        "state": state,
        "result": to_jsonable(task.result),
    }


def snapshot_to_json(snapshot: StateSnapshot) -> dict[str, Any]:
    """The ThreadState JSON of a snapshot (values are the graph's output-schema view)."""
    checkpoint = checkpoint_json(snapshot.config)
    parent = checkpoint_json(snapshot.parent_config)
    values = to_jsonable(snapshot.values)
    return {
        "values": {} if values is None else values,
        "next": list(snapshot.next),
        "tasks": [task_json(t) for t in snapshot.tasks],
        "metadata": to_jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": [interrupt_json(i) for i in snapshot.interrupts],
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def thread_summary_from_snapshot(snapshot: StateSnapshot) -> dict[str, Any]:
    """What the threads table keeps of a state: `values`, `interrupts` by task id, and the
    status the state implies.

    `status` is "interrupted" when the graph stopped with work left (an `interrupt()`,
    `interrupt_before`/`interrupt_after`, or a state update that schedules nodes) and
    "idle" otherwise. A run that failed or was cancelled decides the status itself.
    `values` is None when the thread has no checkpoint yet.
    """
    interrupts = {
        task.id: [interrupt_json(i) for i in task.interrupts]
        for task in snapshot.tasks
        if task.interrupts
    }
    pending = bool(snapshot.next) or bool(interrupts) or bool(snapshot.interrupts)
    has_checkpoint = snapshot.created_at is not None
    values = to_jsonable(snapshot.values) if has_checkpoint else None
    return {
        "values": values,
        "interrupts": interrupts,
        "status": "interrupted" if pending else "idle",
    }


def select_state_fields(state: dict[str, Any], select: Iterable[str] | None) -> dict[str, Any]:
    """Project a ThreadState JSON on `select`: field names, or `values.<key>`."""
    wanted = list(select or [])
    if not wanted:
        return state
    out: dict[str, Any] = {}
    keys: list[str] = []
    for field in wanted:
        if field.startswith("values."):
            keys.append(field.removeprefix("values."))
        elif field not in STATE_FIELDS:
            raise InvalidInput(
                f"Invalid select field '{field}'. Expected one of: "
                f"{', '.join(STATE_FIELDS)}, or values.<key>"
            )
    for field in STATE_FIELDS:
        if field in wanted:
            out[field] = state.get(field)
        elif field == "values" and keys:
            values = state.get("values")
            out["values"] = (
                {k: values[k] for k in keys if k in values} if isinstance(values, dict) else {}
            )
    return out


# --- reading and writing through the graph --------------------------------------------


def graph_id_of(thread: Row) -> str | None:
    graph_id = (thread.get("metadata") or {}).get("graph_id")
    return graph_id if isinstance(graph_id, str) and graph_id else None


def state_config(
    thread_id: str, checkpoint: Mapping[str, Any] | None = None, **extra: Any
) -> RunnableConfig:
    """The config that addresses a thread's state, optionally at a checkpoint or in a
    subgraph's namespace."""
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    for key in ("checkpoint_ns", "checkpoint_id", "checkpoint_map"):
        if checkpoint and checkpoint.get(key):
            configurable[key] = checkpoint[key]
    configurable.update(extra)
    return {"configurable": configurable}


def _build_config(thread: Row) -> RunnableConfig:
    """The config a graph factory sees: the configurable of the thread's latest run."""
    stored = ((thread.get("config") or {}).get("configurable")) or {}
    configurable = {
        k: v for k, v in stored.items() if k not in _RUN_ONLY_KEYS and not k.startswith("__")
    }
    configurable["thread_id"] = thread["thread_id"]
    graph_id = graph_id_of(thread)
    if graph_id:
        configurable["graph_id"] = graph_id
    return {"configurable": configurable}


@contextlib.asynccontextmanager
async def thread_graph(services: Services, thread: Row) -> AsyncIterator[Pregel]:
    """The thread's graph (metadata.graph_id), bound to the checkpointer."""
    graph_id = graph_id_of(thread)
    if graph_id is None:
        raise no_graph_error(thread["thread_id"])
    if graph_id not in services.graphs:
        raise NotFound(
            f"Graph '{graph_id}' not found. Expected one of: {services.graphs.graph_ids}"
        )
    async with services.graphs.graph(
        graph_id,
        _build_config(thread),
        checkpointer=services.checkpointer,
        store=services.store,
    ) as graph:
        yield graph


async def read_state(
    services: Services,
    thread_id: str,
    *,
    checkpoint: Mapping[str, Any] | None = None,
    subgraphs: bool = False,
) -> dict[str, Any]:
    """The ThreadState JSON of a thread, now or at `checkpoint`."""
    thread = await services.threads.get(thread_id)
    if thread is None:
        raise thread_not_found(thread_id)
    if graph_id_of(thread) is None:
        return empty_state()
    async with thread_graph(services, thread) as graph:
        snapshot = await graph.aget_state(state_config(thread_id, checkpoint), subgraphs=subgraphs)
    return snapshot_to_json(snapshot)
