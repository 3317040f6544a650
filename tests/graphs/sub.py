"""sub: parent `prep` -> `sub` (a compiled subgraph node) .

The subgraph's node `inner` writes the custom event {"from": "inner"} and appends "inner"
to `trail`; `prep` appends "prep". With stream_subgraphs the subgraph's events arrive as
`<mode>|sub:<task_id>`.
"""

from __future__ import annotations

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    trail: list[str]


def prep(state: State) -> dict:
    return {"trail": [*(state.get("trail") or []), "prep"]}


def inner(state: State) -> dict:
    get_stream_writer()({"from": "inner"})
    return {"trail": [*(state.get("trail") or []), "inner"]}


_sb = StateGraph(State)
_sb.add_node("inner", inner)
_sb.add_edge(START, "inner")
_sb.add_edge("inner", END)
subgraph = _sb.compile()

builder = StateGraph(State)
builder.add_node("prep", prep)
builder.add_node("sub", subgraph)
builder.add_edge(START, "prep")
builder.add_edge("prep", "sub")
builder.add_edge("sub", END)
graph = builder.compile()
