"""factory: graphs built per run by a factory.

- `make_graph(config)` (sync) and `make_graph_async(config)` (async) return a compiled
  one-node graph (node `greet`) that appends an AIMessage "<greeting>, <last human text>",
  where `greeting` = config.configurable.greeting (default "hi"); the async variant's
  default is "hi (async)".
- `graph` is a static instance (greeting "hi") for direct imports.
"""

from __future__ import annotations

from typing import Annotated

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def _build(greeting: str):
    def greet(state: State) -> dict:
        last = ""
        for m in reversed(state.get("messages") or []):
            if m.type == "human":
                last = m.content if isinstance(m.content, str) else str(m.content)
                break
        return {"messages": [AIMessage(content=f"{greeting}, {last}")]}

    b = StateGraph(State)
    b.add_node("greet", greet)
    b.add_edge(START, "greet")
    b.add_edge("greet", END)
    return b.compile()


def _greeting(config: RunnableConfig | None, default: str) -> str:
    conf = (config or {}).get("configurable") or {}
    return str(conf.get("greeting") or default)


def make_graph(config: RunnableConfig):
    return _build(_greeting(config, "hi"))


async def make_graph_async(config: RunnableConfig):
    return _build(_greeting(config, "hi (async)"))


graph = _build("hi")
