"""custom: node `emit` writes {"i": i} for i in range(n) via get_stream_writer().

`n` comes from the input (default 5). Kept minimal: it backs a 10,000-event benchmark.
"""

from __future__ import annotations

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    n: int
    emitted: int


def emit(state: State) -> dict:
    n = state.get("n")
    n = 5 if n is None else int(n)
    write = get_stream_writer()
    for i in range(n):
        write({"i": i})
    return {"emitted": n}


builder = StateGraph(State)
builder.add_node("emit", emit)
builder.add_edge(START, "emit")
builder.add_edge("emit", END)
graph = builder.compile()
