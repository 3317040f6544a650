"""fail: node `explode` raises ValueError("boom")."""

from __future__ import annotations

from typing import Annotated

from langchain_core.messages import AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def explode(state: State) -> dict:
    raise ValueError("boom")


builder = StateGraph(State)
builder.add_node("explode", explode)
builder.add_edge(START, "explode")
builder.add_edge("explode", END)
graph = builder.compile()
