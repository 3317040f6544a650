"""hitl_multi: two parallel nodes `left` and `right` each interrupt; `join` collects.

Resume both at once with Command(resume={<interrupt id>: answer, ...}).
"""

from __future__ import annotations

import operator
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    answers: Annotated[list[str], operator.add]
    done: bool


def left(state: State) -> dict:
    return {"answers": [f"left={interrupt({'side': 'left'})}"]}


def right(state: State) -> dict:
    return {"answers": [f"right={interrupt({'side': 'right'})}"]}


def join(state: State) -> dict:
    return {"done": True}


builder = StateGraph(State)
builder.add_node("left", left)
builder.add_node("right", right)
builder.add_node("join", join)
builder.add_edge(START, "left")
builder.add_edge(START, "right")
builder.add_edge(["left", "right"], "join")
builder.add_edge("join", END)
graph = builder.compile()
