"""Drawings and JSON schemas of graphs, for the assistants' introspection endpoints.

Shapes follow the reference server:
- drawing: LangGraph's own `Graph.to_json()`, without the class path (`data.id`) of
  runnable nodes;
- schemas: `input_schema`, `output_schema`, `state_schema`, `config_schema`,
  `context_schema`. The state schema is a model named after the graph (`<graph>_state`,
  or `<Name>State` for capitalised names) with one nullable-by-default field per state
  channel. `input_schema` / `output_schema` are null when they equal the state schema.
  `config_schema` is the context schema (what `configurable` holds), `{}` without one.
  A schema that cannot be generated is null.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.channels.base import BaseChannel
from pydantic import ConfigDict, Field, create_model

logger = logging.getLogger("threadline.graphs")

# Schemas of graphs that are not built per request, keyed by the loaded graph object.
_SCHEMA_CACHE: weakref.WeakKeyDictionary[Any, dict[str, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


async def drawing(
    graph: Any, config: RunnableConfig | dict[str, Any], *, xray: bool | int = False
) -> dict[str, Any]:
    """Nodes and edges; with `xray` (true or a depth), subgraphs are drawn inline."""
    drawn = await graph.aget_graph(config, xray=xray)
    data: dict[str, Any] = drawn.to_json()
    for node in data.get("nodes", []):
        node_data = node.get("data")
        if node.get("type") == "runnable" and isinstance(node_data, dict):
            node_data.pop("id", None)
    return data


async def schemas(graph: Any, *, name: str, cache_key: Any = None) -> dict[str, Any]:
    """The schemas of `graph`, its state schema named after `name` (the graph id).

    With a `cache_key` (the loaded graph object of a graph that is not built by a
    factory), the result is computed once: it takes tens of milliseconds for message
    states.
    """
    if cache_key is not None:
        cached = _cached(cache_key, name)
        if cached is not None:
            return cached
    result = await asyncio.to_thread(graph_schemas, graph, graph.get_name("State", name=name))
    if cache_key is not None:
        try:
            _SCHEMA_CACHE.setdefault(cache_key, {})[name] = result
        except TypeError:  # not weak-referenceable: do without the cache
            pass
    return result


def _cached(key: Any, name: str) -> dict[str, Any] | None:
    try:
        return _SCHEMA_CACHE.get(key, {}).get(name)
    except TypeError:
        return None


async def subgraph_schemas(
    graph: Any, *, namespace: str | None = None, recurse: bool = False
) -> dict[str, Any]:
    """`{namespace: schemas}` of the subgraphs; `{}` when `namespace` matches none."""
    found = [sub async for sub in graph.aget_subgraphs(namespace=namespace, recurse=recurse)]
    if not found:
        return {}

    def compute() -> dict[str, Any]:
        return {ns: graph_schemas(sub, _state_name(sub)) for ns, sub in found}

    return await asyncio.to_thread(compute)


def _state_name(graph: Any) -> str:
    get_name = getattr(graph, "get_name", None)
    return str(get_name("State")) if callable(get_name) else "State"


def graph_schemas(graph: Any, state_name: str) -> dict[str, Any]:
    state = _try(lambda: state_jsonschema(graph, state_name))
    input_schema = _try(graph.get_input_jsonschema)
    output_schema = _try(graph.get_output_jsonschema)
    context_schema = _try(graph.get_context_jsonschema)
    return {
        "input_schema": None if input_schema == state else input_schema,
        "output_schema": None if output_schema == state else output_schema,
        "state_schema": state,
        "config_schema": context_schema or {},
        "context_schema": context_schema,
    }


def state_jsonschema(graph: Any, model_name: str) -> dict[str, Any]:
    """A JSON schema of the values a thread of `graph` holds: one field per state channel."""
    channels = getattr(graph, "channels", {}) or {}
    keys = getattr(graph, "stream_channels_list", None) or list(channels)
    fields: dict[str, Any] = {}
    for index, key in enumerate(keys):
        channel = channels.get(key)
        if not isinstance(channel, BaseChannel):
            continue
        # Positional field names with aliases: any channel name (`_x`, `model_y`) works.
        fields[f"f{index}"] = (channel.ValueType, Field(None, alias=key))
    model = create_model(model_name, __config__=ConfigDict(arbitrary_types_allowed=True), **fields)
    return dict(model.model_json_schema(by_alias=True))


def _try(make: Callable[[], Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make()
    except Exception as exc:
        logger.debug("cannot generate a graph schema: %s", exc)
        return None
