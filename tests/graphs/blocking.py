"""blocking: sync node `block` calls time.sleep(seconds) (input `seconds`, default 1.0).

`graph_async` (graph id `blocking_async`) does the same inside an async node.

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


# Variant: an *async* node that blocks the event loop with time.sleep (really bad user
# code). langgraph runs sync nodes in a thread pool, so only this variant actually blocks
# the loop it runs on.
async def block_async(state: State) -> dict:
    seconds = state.get("seconds")
    seconds = 1.0 if seconds is None else float(seconds)
    time.sleep(seconds)  # noqa: ASYNC251 - deliberate
    return {"slept": seconds}


_ab = StateGraph(State)
_ab.add_node("block", block_async)
_ab.add_edge(START, "block")
_ab.add_edge("block", END)
graph_async = _ab.compile()
