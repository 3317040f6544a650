"""blocking: sync node `block` calls time.sleep(seconds) (input `seconds`, default 1.0).

Used to check that blocking user code does not stall the API server.
"""

from __future__ import annotations

import time

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    seconds: float
    slept: float


def block(state: State) -> dict:
    seconds = state.get("seconds")
    seconds = 1.0 if seconds is None else float(seconds)
    time.sleep(seconds)
    return {"slept": seconds}


builder = StateGraph(State)
builder.add_node("block", block)
builder.add_edge(START, "block")
builder.add_edge("block", END)
graph = builder.compile()
