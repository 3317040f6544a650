"""echo: one node (`echo`) that appends an AIMessage echoing the last human message."""

from __future__ import annotations

from typing import Annotated

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def echo(state: State) -> dict:
    last = ""
    for m in reversed(state.get("messages") or []):
        if m.type == "human":
            last = m.content if isinstance(m.content, str) else str(m.content)
            break
    return {"messages": [AIMessage(content=f"echo: {last}")]}


builder = StateGraph(State)
builder.add_node("echo", echo)
builder.add_edge(START, "echo")
builder.add_edge("echo", END)
graph = builder.compile()
