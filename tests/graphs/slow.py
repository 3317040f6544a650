"""slow: node `loop` runs `steps` times (default 3), sleeping `delay` s (default 0.2) each time.

Knobs (context wins over config.configurable): `steps`, `delay`.
Each step increments `count` and appends "step-<k>" to `log`.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    count: int
    log: Annotated[list[str], operator.add]


class Context(TypedDict, total=False):
    steps: int
    delay: float


def _knob(name: str, default: Any, config: RunnableConfig, runtime: Runtime | None) -> Any:
    ctx = getattr(runtime, "context", None) if runtime is not None else None
    if isinstance(ctx, dict) and ctx.get(name) is not None:
        return ctx[name]
    if ctx is not None and not isinstance(ctx, dict) and getattr(ctx, name, None) is not None:
        return getattr(ctx, name)
    conf = (config or {}).get("configurable") or {}
    if conf.get(name) is not None:
        return conf[name]
    return default


async def loop(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> dict:
    delay = float(_knob("delay", 0.2, config, runtime))
    await asyncio.sleep(delay)
    n = int(state.get("count") or 0) + 1
    return {"count": n, "log": [f"step-{n}"]}


def _route(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> str:
    steps = int(_knob("steps", 3, config, runtime))
    return "loop" if int(state.get("count") or 0) < steps else END


builder = StateGraph(State, context_schema=Context)
builder.add_node("loop", loop)
builder.add_edge(START, "loop")
builder.add_conditional_edges("loop", _route, ["loop", END])
graph = builder.compile()
