"""config_echo: node `show` writes what the run's config looked like from inside the graph.

State keys written: `conf` (JSON-able items of config.configurable), `ctx`
(runtime.context), `meta` (config.metadata) and `tags`.
Used to check config/context merging and the keys the server stamps.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    conf: dict[str, Any]
    ctx: Any
    meta: dict[str, Any]
    tags: list[str]


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


def show(state: State, config: RunnableConfig, runtime: Runtime) -> dict:
    configurable = {
        k: v
        for k, v in (config.get("configurable") or {}).items()
        if not k.startswith("__") and _jsonable(v)
    }
    metadata = {k: v for k, v in (config.get("metadata") or {}).items() if _jsonable(v)}
    return {
        "conf": configurable,
        "ctx": runtime.context,
        "meta": metadata,
        "tags": list(config.get("tags") or []),
    }


builder = StateGraph(State)
builder.add_node("show", show)
builder.add_edge(START, "show")
builder.add_edge("show", END)
graph = builder.compile()
