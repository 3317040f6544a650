"""hitl: `ask` -> `review` (interrupt({"question": ...})) -> `echo`.

Resume with Command(resume=<answer>); `answer` is stored and `echo` appends an AIMessage.
`echo` is also a convenient target for interrupt_before/interrupt_after.
"""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    question: str
    answer: Any


def ask(state: State) -> dict:
    return {"question": state.get("question") or "Proceed?"}


def review(state: State) -> dict:
    answer = interrupt({"question": state.get("question") or "Proceed?"})
    return {"answer": answer}


def echo(state: State) -> dict:
    return {"messages": [AIMessage(content=f"answer: {state.get('answer')}")]}


builder = StateGraph(State)
builder.add_node("ask", ask)
builder.add_node("review", review)
builder.add_node("echo", echo)
builder.add_edge(START, "ask")
builder.add_edge("ask", "review")
builder.add_edge("review", "echo")
builder.add_edge("echo", END)
graph = builder.compile()
