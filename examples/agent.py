"""A small tool-calling agent that needs no API key and no network.

The chat model is scripted (`ScriptedChatModel`, built on langchain_core's BaseChatModel):
its answers are deterministic, yet it behaves like a real one. It calls tools, streams its
replies token by token (so `stream_mode="messages"` shows text arriving word by word),
and reads the conversation to decide what to say.

Try: "what is 12 * (3 + 4)?", "what's the weather in Paris?", or just "hello".

Context (per run, `context={...}` in the SDK):
    token_delay  seconds between streamed tokens (default: EXAMPLE_TOKEN_DELAY, or 0.03)
"""

from __future__ import annotations

import ast
import asyncio
import json
import operator
import os
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

# --- tools -------------------------------------------------------------------------------

_OPERATORS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        if isinstance(node.op, ast.Pow) and abs(_evaluate(node.right)) > 100:
            raise ValueError("exponent too large")
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError("only numbers and + - * / // % ** ( ) are allowed")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as `12 * (3 + 4)`."""
    try:
        value = _evaluate(ast.parse(expression.replace("^", "**"), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"error: {exc}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


_FORECASTS = [("sunny", 22), ("cloudy", 15), ("light rain", 11), ("windy", 13), ("snow", -3)]


@tool
def get_weather(city: str) -> str:
    """Today's weather in a city (made up, but always the same for a given city)."""
    seed = sum(ord(c) for c in city.strip().lower())
    sky, temperature = _FORECASTS[seed % len(_FORECASTS)]
    return f"{sky}, {temperature + seed % 5}°C"


TOOLS = [calculator, get_weather]

# --- the scripted model ------------------------------------------------------------------

_WEATHER = re.compile(r"(?i:weather\s+(?:in|at|for)\s+)([A-Za-z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")
_ARITHMETIC = re.compile(r"[-+(]*\d[\d.\s]*(?:[-+*/%^()]+[\s(]*[\d.]+[\s)]*)+")
_HELLO = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)

GREETING = (
    "Hello! I am a demo agent served by Threadline. My model is scripted, so I need no API "
    "key. Ask me to calculate something, like 'what is 12 * (3 + 4)?', or about the weather "
    "in a city, like 'what is the weather in Paris?'."
)
HELP = (
    "I am a scripted demo model, so I know two tricks: arithmetic (try 'what is "
    "12 * (3 + 4)?') and the weather (try 'what is the weather in Lisbon?')."
)


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(
        part.get("text", "") if isinstance(part, dict) else str(part) for part in content
    )


def _city(name: str) -> str:
    return name.title() if name.islower() else name


def _answer(messages: Sequence[BaseMessage]) -> AIMessage:
    """Phrase the results of the tool calls that ended the conversation."""
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.insert(0, message)
    asked = next((m for m in reversed(messages) if isinstance(m, AIMessage) and m.tool_calls), None)
    args = {call["id"]: call["args"] for call in asked.tool_calls} if asked else {}
    parts = []
    for result in results:
        call_args = args.get(result.tool_call_id) or {}
        if result.name == "get_weather":
            parts.append(f"The weather in {call_args.get('city', 'that city')} is {_text(result)}.")
        elif _text(result).startswith("error: "):
            reason = _text(result).removeprefix("error: ")
            parts.append(f"I could not calculate {call_args.get('expression', 'that')}: {reason}.")
        else:
            parts.append(f"{call_args.get('expression', 'That')} = {_text(result)}.")
    return AIMessage(content=" ".join(parts))


def _reply(messages: Sequence[BaseMessage]) -> AIMessage:
    """The next AI message: tool calls, an answer from tool results, or a greeting."""
    if not messages:
        return AIMessage(content=GREETING)
    if isinstance(messages[-1], ToolMessage):
        return _answer(messages)
    turn = sum(1 for m in messages if isinstance(m, AIMessage))
    text = _text(messages[-1])
    calls = [
        {"name": "get_weather", "args": {"city": _city(match.group(1))}}
        for match in _WEATHER.finditer(text)
    ]
    calls += [
        {"name": "calculator", "args": {"expression": match.group(0).strip()}}
        for match in _ARITHMETIC.finditer(text)
    ]
    if calls:
        tool_calls = [
            {**call, "id": f"call_{turn}_{i}", "type": "tool_call"} for i, call in enumerate(calls)
        ]
        return AIMessage(content="", tool_calls=tool_calls)
    if not text.strip() or _HELLO.match(text):
        return AIMessage(content=GREETING)
    return AIMessage(content=HELP)


def _chunks(message: AIMessage) -> Iterator[AIMessageChunk]:
    """The message as the stream a provider would send: words, then tool-call chunks."""
    words = re.findall(r"\S+\s*", _text(message))
    for word in words:
        yield AIMessageChunk(content=word)
    for index, call in enumerate(message.tool_calls):
        yield AIMessageChunk(
            content="",
            tool_call_chunks=[
                {
                    "name": call["name"],
                    "args": json.dumps(call["args"]),
                    "id": call["id"],
                    "index": index,
                    "type": "tool_call_chunk",
                }
            ],
        )
    if not words and not message.tool_calls:
        yield AIMessageChunk(content="")


class ScriptedChatModel(BaseChatModel):
    """A deterministic chat model that streams; see `_reply` for what it says.

    langchain_core turns the chunks `_stream`/`_astream` yield into callback events, which
    is how LangGraph's `messages` stream mode sees each token.
    """

    token_delay: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "scripted-demo"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        return self  # the script knows its tools

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=_reply(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in _chunks(_reply(messages)):
            if self.token_delay:
                time.sleep(self.token_delay)
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in _chunks(_reply(messages)):
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            yield ChatGenerationChunk(message=chunk)


# --- the graph -----------------------------------------------------------------------------


class Context(TypedDict, total=False):
    token_delay: float


def _token_delay(runtime: Runtime[Context]) -> float:
    context = runtime.context or {}
    if "token_delay" in context:
        return float(context["token_delay"])
    return float(os.environ.get("EXAMPLE_TOKEN_DELAY", "0.03"))


async def call_model(state: MessagesState, runtime: Runtime[Context]) -> dict[str, Any]:
    model = ScriptedChatModel(token_delay=_token_delay(runtime)).bind_tools(TOOLS)
    response = await model.ainvoke(state["messages"])
    return {"messages": [response]}


builder = StateGraph(MessagesState, context_schema=Context)
builder.add_node("agent", call_model)
builder.add_node("tools", ToolNode(TOOLS))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition, ["tools", END])
builder.add_edge("tools", "agent")
graph = builder.compile()
graph.name = "agent"
