"""Threads: create, read, patch, search, copy, prune and delete them, and read or update
their state through their graph."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langgraph.errors import InvalidUpdateError
from langgraph.types import Command, Send, StateSnapshot, StateUpdate

from threadline.core.cancel import signal_cancelled
from threadline.core.errors import BadRequest, Conflict, InvalidInput, NotFound
from threadline.core.protocol.events import log_stream
from threadline.core.runs import thread_stream, wait_for_run
from threadline.core.state import (
    graph_id_of,
    no_graph_error,
    read_state,
    snapshot_to_json,
    state_config,
    thread_graph,
    thread_not_found,
    thread_summary_from_snapshot,
)
from threadline.ids import is_uuid, new_id
from threadline.serialization import dumps, utcnow
from threadline.storage.database import Row

logger = logging.getLogger("threadline.threads")

if TYPE_CHECKING:
    from threadline.core.services import Services

__all__ = [
    "copy_thread",
    "count_threads",
    "create_thread",
    "delete_thread",
    "delete_thread_and_checkpoints",
    "extract_values",
    "get_history",
    "get_state",
    "get_thread",
    "parse_extract",
    "patch_thread",
    "prune_threads",
    "search_threads",
    "update_state",
]


# --- threads ----------------------------------------------------------------------


async def get_thread(services: Services, thread_id: str) -> Row:
    thread = await services.threads.get(thread_id)
    if thread is None:
        raise thread_not_found(thread_id)
    return thread


def _ttl_columns(ttl: Mapping[str, Any] | None, now: datetime.datetime) -> dict[str, Any]:
    """`ttl` is `{strategy, ttl}` with `ttl` in minutes; the sweeper reads `expires_at`."""
    if not ttl or ttl.get("ttl") is None:
        return {}
    minutes = float(ttl["ttl"])
    return {
        "ttl": {"strategy": ttl.get("strategy") or "delete", "ttl": minutes},
        "expires_at": now + datetime.timedelta(minutes=minutes),
    }


def _default_ttl(services: Services) -> dict[str, Any] | None:
    checkpointer = services.settings.config.checkpointer
    ttl = checkpointer.ttl if checkpointer else None
    if ttl is None or ttl.default_ttl is None:
        return None
    return {"strategy": ttl.strategy, "ttl": ttl.default_ttl}


async def create_thread(
    services: Services,
    *,
    thread_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    if_exists: str = "raise",
    ttl: Mapping[str, Any] | None = None,
    supersteps: Sequence[Mapping[str, Any]] | None = None,
) -> Row:
    thread_id = thread_id or new_id()
    metadata = dict(metadata or {})
    graph_id = metadata.get("graph_id")
    if supersteps:
        if not graph_id:
            raise no_graph_error(thread_id)
        if graph_id not in services.graphs:
            raise NotFound(
                f"Graph '{graph_id}' not found. Expected one of: {services.graphs.graph_ids}"
            )
    now = utcnow()
    row = await services.threads.insert(
        {
            "thread_id": thread_id,
            "created_at": now,
            "updated_at": now,
            "state_updated_at": now,
            "metadata": metadata,
            **_ttl_columns(ttl if ttl is not None else _default_ttl(services), now),
        }
    )
    if row is None:
        if if_exists == "do_nothing":
            existing = await services.threads.get(thread_id)
            if existing is not None:
                return existing
        raise Conflict(f"Thread with ID {thread_id} already exists")
    if not supersteps:
        return row
    try:
        return await _apply_supersteps(services, row, supersteps)
    except Exception:
        # A thread whose seeding failed is not left behind half-made.
        await delete_thread_and_checkpoints(services, thread_id)
        raise


async def patch_thread(
    services: Services,
    thread_id: str,
    *,
    metadata: Mapping[str, Any] | None = None,
    ttl: Mapping[str, Any] | None = None,
) -> Row:
    now = utcnow()
    changes: dict[str, Any] = {"updated_at": now, **_ttl_columns(ttl, now)}
    if metadata:
        changes["metadata"] = dict(metadata)
    async with services.db.transaction() as conn:
        row = await services.threads.update(thread_id, changes, conn)
    if row is None:
        raise NotFound("Not Found")  # sic: the reference's PATCH message
    return row


CANCEL_WAIT_SECONDS = 10.0


async def delete_thread_and_checkpoints(services: Services, thread_id: str) -> bool:
    """Stop the thread's active runs, then delete it (its runs go by cascade) and its
    checkpoints; False if it was gone."""
    async with services.db.transaction() as conn:
        active = await services.runs.active_on_thread(conn, thread_id)
    if active:
        await signal_cancelled(services, active, "interrupt")
        # Let them stop before the checkpoints go, so no late write survives the delete.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(wait_for_run(services, run["run_id"]) for run in active)),
                CANCEL_WAIT_SECONDS,
            )
    deleted = await services.threads.delete(thread_id)
    await services.checkpointer.adelete_thread(thread_id)
    await _forget_log(services, thread_id)
    return deleted


async def _forget_log(services: Services, thread_id: str) -> None:
    try:
        await services.broker.forget(log_stream(thread_id))
    except Exception as exc:  # it expires when idle anyway
        logger.warning("deleting the event log of thread %s failed: %s", thread_id, exc)


async def delete_if_temporary(services: Services, run: Row) -> None:
    """A stateless run's thread goes with it unless the run asked to keep it."""
    kwargs = run["kwargs"]
    if kwargs.get("temporary") and (kwargs.get("on_completion") or "delete") == "delete":
        await delete_thread_and_checkpoints(services, run["thread_id"])


async def delete_thread(services: Services, thread_id: str) -> None:
    if not await delete_thread_and_checkpoints(services, thread_id):
        raise thread_not_found(thread_id)


def _sort(sort_by: str | None, sort_order: str | None) -> tuple[str, str]:
    return sort_by or "created_at", sort_order or "desc"


async def search_threads(
    services: Services,
    *,
    ids: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    status: str | None = None,
    limit: int = 10,
    offset: int = 0,
    sort_by: str | None = None,
    sort_order: str | None = None,
) -> tuple[list[Row], int]:
    """One page of threads, and how many match in all."""
    if ids is not None:
        for thread_id in ids:
            if not is_uuid(thread_id):
                raise BadRequest(f"Invalid thread ID {thread_id}")
        ids = [thread_id.lower() for thread_id in ids]
    column, order = _sort(sort_by, sort_order)
    filters: dict[str, Any] = {"ids": ids, "metadata": metadata, "values": values, "status": status}
    rows = await services.threads.search(
        **filters, limit=limit, offset=offset, sort_by=column, sort_order=order
    )
    if offset == 0 and len(rows) < limit:
        total = len(rows)
    else:
        total = await services.threads.count(**filters)
    return rows, total


async def count_threads(
    services: Services,
    *,
    metadata: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    status: str | None = None,
) -> int:
    return await services.threads.count(metadata=metadata, values=values, status=status)


async def copy_thread(services: Services, thread_id: str) -> Row:
    """A new thread with the same metadata, state and checkpoints."""
    source = await services.threads.get(thread_id)
    if source is None:
        raise Conflict("Conflict")  # sic: the reference answers 409 for an unknown thread
    now = utcnow()
    copy = await services.threads.copy(
        {
            "thread_id": new_id(),
            "created_at": now,
            "updated_at": now,
            "state_updated_at": now,
            "metadata": source["metadata"],
            # A run in flight on the source does not run on the copy.
            "status": "idle" if source["status"] == "busy" else source["status"],
            "config": {},
            "values": source["values"],
            "interrupts": source["interrupts"],
            "error": source["error"],
        },
        thread_id,
    )
    if copy is None:  # a fresh UUIDv7 collided: cannot happen in practice
        raise Conflict("Conflict")
    return copy


async def prune_threads(services: Services, thread_ids: Sequence[str], strategy: str) -> int:
    """`delete`: delete the threads and their checkpoints. `keep_latest`: keep only the
    latest checkpoint of each thread (threads with a run in flight are skipped).
    Returns how many threads were pruned."""
    ids = list(dict.fromkeys(thread_id.lower() for thread_id in thread_ids))
    if strategy == "delete":
        deleted = await services.threads.delete_many(ids)
        for thread_id in deleted:
            await services.checkpointer.adelete_thread(thread_id)
        return len(deleted)
    pruned = 0
    for thread_id in ids:
        thread = await services.threads.get(thread_id)
        if thread is None or thread["status"] == "busy":
            continue
        await services.threads.prune_checkpoints(thread_id)
        pruned += 1
    return pruned


# --- search extraction --------------------------------------------------------------

EXTRACT_ROOTS = ("config", "interrupts", "metadata", "values")
_FIRST_KEY = re.compile(r"[^.\[\]]+")
_NEXT_STEP = re.compile(r"\.([^.\[\]]+)|\[(-?\d+)\]")


def _parse_path(path: str) -> list[str | int]:
    first = _FIRST_KEY.match(path)
    if first is None or first.group(0) not in EXTRACT_ROOTS:
        raise InvalidInput(
            f"Extract path '{path}' must start with one of: {', '.join(EXTRACT_ROOTS)}"
        )
    steps: list[str | int] = [first.group(0)]
    pos = first.end()
    while pos < len(path):
        step = _NEXT_STEP.match(path, pos)
        if step is None:
            raise InvalidInput(f"Invalid extract path '{path}'")
        key, index = step.groups()
        steps.append(key if key is not None else int(index))
        pos = step.end()
    return steps


def parse_extract(extract: Mapping[str, str] | None) -> dict[str, list[str | int]]:
    """Validate `{alias: "values.messages[-1].content"}` into key paths."""
    return {alias: _parse_path(path) for alias, path in (extract or {}).items()}


def extract_values(thread: Mapping[str, Any], paths: Mapping[str, list[str | int]]) -> dict:
    """The value at each path of a thread, or None where the path leads nowhere."""
    out: dict[str, Any] = {}
    for alias, steps in paths.items():
        value: Any = thread
        for step in steps:
            if isinstance(step, str) and isinstance(value, Mapping):
                value = value.get(step)
            elif (
                isinstance(step, int)
                and isinstance(value, list)
                and -len(value) <= step < len(value)
            ):
                value = value[step]
            else:
                value = None
                break
        out[alias] = value
    return out


# --- state --------------------------------------------------------------------------


@contextlib.contextmanager
def _graph_errors() -> Iterator[None]:
    """An update the graph rejects is the client's mistake (400), not the server's."""
    try:
        yield
    except (InvalidUpdateError, ValueError) as exc:
        raise BadRequest(str(exc)) from exc


def _goto(goto: Any) -> Any:
    if goto is None:
        return ()
    if isinstance(goto, list):
        return [_goto(item) for item in goto]
    if isinstance(goto, Mapping):
        return Send(goto["node"], goto.get("input"))
    return goto


def _state_update(update: Mapping[str, Any]) -> StateUpdate:
    command = update.get("command")
    if command:
        values: Any = Command(
            update=command.get("update"),
            resume=command.get("resume"),
            goto=_goto(command.get("goto")),
        )
    else:
        values = update.get("values")
    return StateUpdate(values, update.get("as_node"))


def _update_config(thread: Row, checkpoint: Mapping[str, Any] | None = None) -> Any:
    # graph_id in configurable ends up in the new checkpoint's metadata, as in the
    # reference.
    return state_config(thread["thread_id"], checkpoint, graph_id=graph_id_of(thread))


async def _store_summary(services: Services, thread_id: str, snapshot: StateSnapshot) -> Row:
    """Write what the new state implies onto the thread row."""
    summary = thread_summary_from_snapshot(snapshot)
    now = utcnow()
    async with services.db.transaction() as conn:
        current = await services.threads.get(thread_id, conn)
        if current is None:
            raise thread_not_found(thread_id)
        changes: dict[str, Any] = {
            "values": summary["values"],
            "interrupts": summary["interrupts"],
            "updated_at": now,
            "state_updated_at": now,
        }
        if current["status"] != "busy":  # a run in flight still owns the status
            changes["status"] = summary["status"]
            changes["error"] = None
        row = await services.threads.update(thread_id, changes, conn)
    assert row is not None
    return row


async def _apply_supersteps(
    services: Services, thread: Row, supersteps: Sequence[Mapping[str, Any]]
) -> Row:
    thread_id = thread["thread_id"]
    steps = [[_state_update(u) for u in step["updates"]] for step in supersteps]
    async with thread_graph(services, thread) as graph:
        with _graph_errors():
            await graph.abulk_update_state(_update_config(thread), steps)
        snapshot = await graph.aget_state(state_config(thread_id))
    return await _store_summary(services, thread_id, snapshot)


async def get_state(
    services: Services,
    thread_id: str,
    *,
    checkpoint: Mapping[str, Any] | None = None,
    subgraphs: bool = False,
) -> dict[str, Any]:
    return await read_state(services, thread_id, checkpoint=checkpoint, subgraphs=subgraphs)


async def update_state(
    services: Services,
    thread_id: str,
    *,
    values: Any,
    as_node: str | None = None,
    checkpoint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write `values` as if `as_node` had run, on the latest checkpoint or forking from
    `checkpoint`. Returns the new checkpoint."""
    thread = await get_thread(services, thread_id)
    if graph_id_of(thread) is None:
        raise no_graph_error(thread_id)
    async with thread_graph(services, thread) as graph:
        with _graph_errors():
            config = await graph.aupdate_state(
                _update_config(thread, checkpoint), values, as_node=as_node
            )
        snapshot = await graph.aget_state(state_config(thread_id))
    await _store_summary(services, thread_id, snapshot)
    await _announce_state(services, thread_id, snapshot)
    configurable = config["configurable"]
    written = {
        "thread_id": configurable.get("thread_id", thread_id),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable["checkpoint_id"],
    }
    return {
        "checkpoint": written,
        "configurable": dict(written),
        "checkpoint_id": written["checkpoint_id"],
    }


async def _announce_state(services: Services, thread_id: str, snapshot: StateSnapshot) -> None:
    """Followers of the thread's stream (`state_update` mode) see the new state."""
    stream = thread_stream(thread_id)
    if await services.broker.has_subscribers(stream):
        await services.broker.publish(
            stream, "state_update", dumps({"state": snapshot_to_json(snapshot)})
        )


def _before_config(
    thread_id: str, before: str | Mapping[str, Any] | None, checkpoint_ns: str
) -> Any:
    """`before` as a checkpoint id, a CheckpointConfig or `{"configurable": {...}}`."""
    if before is None:
        return None
    if isinstance(before, str):
        checkpoint_id: Any = before
    else:
        source = before.get("configurable") if "configurable" in before else before
        checkpoint_id = (source or {}).get("checkpoint_id")
    if not checkpoint_id:
        return None
    if not isinstance(checkpoint_id, str):
        raise InvalidInput("before.checkpoint_id must be a string")
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


async def get_history(
    services: Services,
    thread_id: str,
    *,
    limit: int,
    before: str | Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    checkpoint: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """ThreadStates newest first; `checkpoint` picks a subgraph namespace (or one
    checkpoint), `metadata` filters on checkpoint metadata."""
    thread = await get_thread(services, thread_id)
    if graph_id_of(thread) is None or limit < 1:
        return []
    config = state_config(thread_id, checkpoint)
    before_config = _before_config(thread_id, before, config["configurable"]["checkpoint_ns"])
    async with thread_graph(services, thread) as graph:
        with _graph_errors():
            return [
                snapshot_to_json(snapshot)
                async for snapshot in graph.aget_state_history(
                    config,
                    filter=dict(metadata) if metadata else None,
                    before=before_config,
                    limit=limit,
                )
            ]


async def thread_storage(services: Services, thread_id: str) -> dict[str, Any]:
    """What a thread holds in the checkpointer, in serialized (logical) bytes.

    Read through the saver itself, so it is the same on every backend; a backend that
    shares blobs between checkpoints stores less than this reports.
    """
    await get_thread(services, thread_id)
    saver = services.checkpointer
    checkpoints = {"count": 0, "bytes": 0}
    writes = {"count": 0, "bytes": 0}
    by_channel: dict[str, dict[str, int]] = {}
    async for item in saver.alist({"configurable": {"thread_id": thread_id}}):
        checkpoints["count"] += 1
        checkpoints["bytes"] += _size(saver, item.checkpoint)
        for channel, value in (item.checkpoint.get("channel_values") or {}).items():
            usage = by_channel.setdefault(channel, {"count": 0, "bytes": 0})
            usage["count"] += 1
            usage["bytes"] += _size(saver, value)
        for _task_id, _channel, value in item.pending_writes or ():
            writes["count"] += 1
            writes["bytes"] += _size(saver, value)
    channel_values = {
        "count": sum(u["count"] for u in by_channel.values()),
        "bytes": sum(u["bytes"] for u in by_channel.values()),
        "by_channel": by_channel,
    }
    return {
        "thread_id": thread_id,
        "total_bytes": checkpoints["bytes"] + writes["bytes"],
        "checkpoints": checkpoints,
        "channel_values": channel_values,
        "pending_writes": writes,
    }


def _size(saver: Any, value: Any) -> int:
    return len(saver.serde.dumps_typed(value)[1])
