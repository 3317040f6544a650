"""Assistants: versioned configurations of a graph.

The use cases behind the `/assistants` endpoints. Arguments are plain values (the HTTP
layer has already validated their shape); failures are raised as `threadline.core.errors`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel

from threadline.core import graph_info
from threadline.core.errors import BadRequest, Conflict, InvalidInput, NotFound
from threadline.core.threads import delete_thread_and_checkpoints
from threadline.ids import is_uuid, system_assistant_id
from threadline.serialization import utcnow
from threadline.storage.database import Row

if TYPE_CHECKING:
    from threadline.core.services import Services

DEFAULT_NAME = "Untitled"
BOTH_CONFIGURABLE_AND_CONTEXT = (
    "Cannot specify both configurable and context. Prefer setting context alone. Context "
    "was introduced in LangGraph 0.6.0 and is the long term planned replacement for "
    "configurable."
)
# The reference answers a GET (and the graph endpoints) of an unknown assistant with
# the bare "Not Found"; PATCH, versions, latest and DELETE name the assistant.
GET_NOT_FOUND = "Not Found"
THREAD_DELETE_BATCH = 100


def _not_found(assistant_id: str) -> NotFound:
    return NotFound(f"Assistant {assistant_id} not found")


async def ensure_system_assistants(services: Services) -> None:
    """Every graph has a default assistant with the reference's deterministic id."""
    for graph_id in services.graphs.graph_ids:
        # One timestamp each, so "newest first" has a stable order, as in the reference.
        now = utcnow()
        await services.assistants.upsert_system(
            {
                "assistant_id": system_assistant_id(graph_id),
                "graph_id": graph_id,
                "config": {},
                "context": {},
                "metadata": {"created_by": "system"},
                "name": graph_id,
                "description": None,
                "created_at": now,
                "updated_at": now,
            }
        )


def require_graph(services: Services, graph_id: str) -> None:
    if graph_id not in services.graphs:
        expected = sorted(services.graphs.graph_ids)
        raise NotFound(f"Graph '{graph_id}' not found. Expected one of: {expected}")


def _mirror(
    config: dict[str, Any], context: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keep `config.configurable` and `context` in step, as the reference stores them.

    Whichever of the two is non-empty is copied into the other; both non-empty is a 400.
    """
    configurable = config.get("configurable") or {}
    if configurable and context:
        raise BadRequest(BOTH_CONFIGURABLE_AND_CONTEXT)
    if configurable:
        return config, dict(configurable)
    if context:
        return {**config, "configurable": dict(context)}, context
    return config, context


# --- CRUD ---------------------------------------------------------------------------


async def create_assistant(
    services: Services,
    *,
    graph_id: str,
    assistant_id: str | None = None,
    config: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    if_exists: str = "raise",
    name: str | None = None,
    description: str | None = None,
) -> Row:
    require_graph(services, graph_id)
    config, context = _mirror(dict(config or {}), dict(context or {}))
    # Random (v4) like the reference's, not time-ordered like thread and run ids.
    assistant_id = (assistant_id or str(uuid.uuid4())).lower()
    now = utcnow()
    created = await services.assistants.insert(
        {
            "assistant_id": assistant_id,
            "graph_id": graph_id,
            "config": config,
            "context": context,
            "metadata": metadata or {},
            "name": name if name is not None else DEFAULT_NAME,
            "description": description,
            "created_at": now,
            "updated_at": now,
        }
    )
    if created is not None:
        return created
    if if_exists == "do_nothing":
        existing = await services.assistants.get(assistant_id)
        if existing is not None:
            return existing
    raise Conflict(f"Assistant {assistant_id} already exists")


async def get_assistant(services: Services, assistant_id: str) -> Row:
    assistant = await services.assistants.get(assistant_id)
    if assistant is None:
        raise NotFound(GET_NOT_FOUND)
    return assistant


async def update_assistant(
    services: Services,
    assistant_id: str,
    *,
    graph_id: str | None = None,
    config: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    description: str | None = None,
) -> Row:
    """Write a new version (even for an empty patch) and make it current.

    As in the reference: `metadata` is merged; a non-empty `config` replaces the config;
    `context` replaces the context; a non-empty `config.configurable` is mirrored into
    `context` and a non-empty `context` into `config.configurable`.
    """
    if graph_id is not None:
        require_graph(services, graph_id)
    new_configurable = (config or {}).get("configurable") or {}
    if new_configurable and context:
        raise BadRequest(BOTH_CONFIGURABLE_AND_CONTEXT)

    def changes(current: Row) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if graph_id is not None:
            out["graph_id"] = graph_id
        if name is not None:
            out["name"] = name
        if description is not None:
            out["description"] = description
        if metadata:
            out["metadata"] = metadata
        if config:
            out["config"] = dict(config)
        if context is not None:
            out["context"] = dict(context)
        if new_configurable:
            out["context"] = dict(new_configurable)
        elif context:
            # Deliberate difference: the reference replaces the whole config by
            # {"configurable": context} here, dropping tags and recursion_limit; we keep
            # the rest of the config and only mirror the context into it.
            base: dict[str, Any] = out.get("config") or current["config"] or {}
            out["config"] = {**base, "configurable": dict(context)}
        return out

    updated = await services.assistants.add_version(assistant_id, changes, utcnow())
    if updated is None:
        raise _not_found(assistant_id)
    return updated


async def delete_assistant(
    services: Services, assistant_id: str, *, delete_threads: bool = False
) -> None:
    """Delete an assistant and its versions; with `delete_threads`, also every thread whose
    `metadata.assistant_id` is this assistant, with its runs and checkpoints."""
    if not await services.assistants.delete(assistant_id):
        raise NotFound(f"Assistant with ID {assistant_id} not found")
    if delete_threads:
        await _delete_threads_of(services, assistant_id)


async def _delete_threads_of(services: Services, assistant_id: str) -> None:
    while True:
        threads = await services.threads.search(
            metadata={"assistant_id": assistant_id}, limit=THREAD_DELETE_BATCH, offset=0
        )
        if not threads:
            return
        for thread in threads:
            await delete_thread_and_checkpoints(services, thread["thread_id"])


# --- search -------------------------------------------------------------------------


@dataclass
class SearchPage:
    items: list[Row]
    total: int


async def search_assistants(
    services: Services,
    *,
    graph_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    limit: int = 10,
    offset: int = 0,
    sort_by: str | None = None,
    sort_order: str | None = None,
) -> SearchPage:
    """Newest first by default. `name` is a case-insensitive substring match.

    Deliberate difference: the reference ignores `sort_order` unless `sort_by` is given;
    we apply it to the default `created_at` order too.
    """
    if graph_id:
        require_graph(services, graph_id)
    items = await services.assistants.search(
        graph_id=graph_id,
        metadata=metadata,
        name=name,
        limit=limit,
        offset=offset,
        sort_by=sort_by or "created_at",
        sort_order=sort_order or "desc",
    )
    if len(items) < limit and (items or offset == 0):
        total = offset + len(items)  # this page is the last one: no need to count
    else:
        total = await services.assistants.count(graph_id=graph_id, metadata=metadata, name=name)
    return SearchPage(items, total)


async def count_assistants(
    services: Services,
    *,
    graph_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
) -> int:
    if graph_id:
        require_graph(services, graph_id)
    return await services.assistants.count(graph_id=graph_id, metadata=metadata, name=name)


# --- versions -----------------------------------------------------------------------


async def list_versions(
    services: Services,
    assistant_id: str,
    *,
    metadata: dict[str, Any] | None = None,
    limit: int = 10,
    offset: int = 0,
) -> list[Row]:
    """Versions, newest first.

    Deliberate fix: when the metadata filter matches no version, the reference answers
    404 "Assistant … not found" although the assistant exists; we return `[]`. An
    assistant that does not exist is still a 404.
    """
    versions = await services.assistants.versions(assistant_id, metadata, limit, offset)
    if not versions and await services.assistants.get(assistant_id) is None:
        raise _not_found(assistant_id)
    return versions


async def set_latest_version(services: Services, assistant_id: str, version: int) -> Row:
    """Make `version` current (`updated_at` bumped).

    Deliberate fix: the reference restores every field of the version except `context`,
    which keeps the value of the version it replaces; we restore `context` too, so it
    stays in step with `config.configurable`.
    """
    updated = await services.assistants.set_latest(assistant_id, version, utcnow())
    if updated is not None:
        return updated
    if await services.assistants.get(assistant_id) is None:
        raise _not_found(assistant_id)
    raise NotFound(f"Version {version} not found for assistant {assistant_id}")


# --- graph introspection ------------------------------------------------------------


async def resolve_for_graph(services: Services, assistant_id_or_graph: str) -> Row:
    """The graph endpoints take an assistant UUID or (for `/graph`) a graph id, which
    stands for that graph's system assistant."""
    if is_uuid(assistant_id_or_graph):
        return await get_assistant(services, assistant_id_or_graph.lower())
    if assistant_id_or_graph in services.graphs:
        return await get_assistant(services, system_assistant_id(assistant_id_or_graph))
    raise InvalidInput("Invalid assistant ID: must be a UUID")


def graph_config(assistant: Row) -> dict[str, Any]:
    """The config a graph factory gets when an assistant's graph is built for inspection."""
    config = dict(assistant.get("config") or {})
    config["configurable"] = {
        **(assistant.get("context") or {}),
        **(config.get("configurable") or {}),
        "graph_id": assistant["graph_id"],
        "assistant_id": assistant["assistant_id"],
    }
    return config


@contextlib.asynccontextmanager
async def _assistant_graph(services: Services, assistant: Row) -> AsyncIterator[Pregel]:
    graph_id = assistant["graph_id"]
    require_graph(services, graph_id)
    config = cast(RunnableConfig, graph_config(assistant))
    async with services.graphs.graph(graph_id, config) as graph:
        yield graph


async def get_graph_drawing(
    services: Services, assistant_id_or_graph: str, *, xray: bool | int = False
) -> dict[str, Any]:
    assistant = await resolve_for_graph(services, assistant_id_or_graph)
    async with _assistant_graph(services, assistant) as graph:
        return await graph_info.drawing(graph, graph_config(assistant), xray=xray)


async def get_schemas(services: Services, assistant_id: str) -> dict[str, Any]:
    assistant = await get_assistant(services, assistant_id)
    graph_id = assistant["graph_id"]
    require_graph(services, graph_id)
    spec = services.graphs.spec(graph_id)
    cache_key = None if spec.is_factory else spec.target
    async with _assistant_graph(services, assistant) as graph:
        schemas = await graph_info.schemas(graph, name=graph_id, cache_key=cache_key)
    return {"graph_id": graph_id, **schemas}


async def get_subgraphs(
    services: Services,
    assistant_id: str,
    *,
    namespace: str | None = None,
    recurse: bool = False,
) -> dict[str, Any]:
    assistant = await get_assistant(services, assistant_id)
    async with _assistant_graph(services, assistant) as graph:
        return await graph_info.subgraph_schemas(graph, namespace=namespace, recurse=recurse)
