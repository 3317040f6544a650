"""hitl_sub: parent `start` -> `child` (a subgraph whose node `approve` interrupts) -> `finish`."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    trail: Annotated[list[str], operator.add]
    approval: Any


def approve(state: State) -> dict:
    return {"approval": interrupt({"approve": "deploy?"}), "trail": ["approve"]}


_child = StateGraph(State)
_child.add_node("approve", approve)
_child.add_edge(START, "approve")
_child.add_edge("approve", END)
child = _child.compile()


def start(state: State) -> dict:
    return {"trail": ["start"]}


def finish(state: State) -> dict:
    return {"trail": [f"finish:{state.get('approval')}"]}


builder = StateGraph(State)
builder.add_node("start", start)
builder.add_node("child", child)
builder.add_node("finish", finish)
builder.add_edge(START, "start")
builder.add_edge("start", "child")
builder.add_edge("child", "finish")
builder.add_edge("finish", END)
graph = builder.compile()
