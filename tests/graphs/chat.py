"""chat: node `model` calls a GenericFakeChatModel that streams "Hello there friend".

The reply can be overridden with context/configurable `reply`. Tokens are split on
whitespace (5 chunks for the default reply), so `messages`/`messages-tuple` give partials.
"""

from __future__ import annotations

from typing import Annotated

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

DEFAULT_REPLY = "Hello there friend"


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


async def model(state: State, config: RunnableConfig) -> dict:
    reply = ((config or {}).get("configurable") or {}).get("reply") or DEFAULT_REPLY
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))
    msg = await llm.ainvoke(state.get("messages") or [], config)
    return {"messages": [msg]}


builder = StateGraph(State)
builder.add_node("model", model)
builder.add_edge(START, "model")
builder.add_edge("model", END)
graph = builder.compile()
