"""Tiny graphs used by the Threadline benchmark harness (bench/run.py).

- ``echo``: one node that appends an AIMessage echoing the last message.
- ``custom``: one node that writes ``n`` custom events ``{"i": i}`` with
  ``get_stream_writer()``; ``n`` comes from the input (default 10).
- ``custom_v3``: ``custom`` compiled with a stream transformer that asks for the
  ``custom`` stream mode, so the thread-centric protocol carries its writes on both
  servers (without one, the reference drops them).
- ``sleepy``: one node that awaits ``asyncio.sleep(seconds)`` (default 30), for
  cancellation latency.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.stream import StreamTransformer


def _echo(state: MessagesState) -> dict[str, Any]:
    last = state["messages"][-1].content if state["messages"] else ""
    return {"messages": [AIMessage(content=f"echo: {last}")]}


class CustomState(TypedDict, total=False):
    n: int
    done: int


def _custom(state: CustomState) -> dict[str, Any]:
    writer = get_stream_writer()
    n = int(state.get("n") or 10)
    for i in range(n):
        writer({"i": i})
    return {"done": n}


class SleepyState(TypedDict, total=False):
    seconds: float
    slept: bool


async def _sleepy(state: SleepyState) -> dict[str, Any]:
    await asyncio.sleep(float(state.get("seconds") or 30))
    return {"slept": True}


class _WantsCustom(StreamTransformer):
    required_stream_modes = ("custom",)

    def init(self) -> dict[str, Any]:
        return {}

    def process(self, event: Any) -> bool:
        return True


def _single(name: str, fn: Any, schema: Any, transformers: list[Any] | None = None) -> Any:
    builder = StateGraph(schema)
    builder.add_node(name, fn)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile(transformers=transformers)


echo = _single("echo", _echo, MessagesState)
custom = _single("custom", _custom, CustomState)
custom_v3 = _single("custom", _custom, CustomState, [_WantsCustom])
sleepy = _single("sleepy", _sleepy, SleepyState)
