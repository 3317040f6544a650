"""A deterministic tool-calling chat model for agent graphs in tests.

`ScriptedToolModel` answers from the conversation alone, so one compiled graph serves
every run: when the last message is the user's, it calls `tool_name` with `tool_args`;
once a tool result is present, it replies with `reply` followed by that result. Text is
streamed word by word, so the thread-centric `messages` channel carries several deltas.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult


class ScriptedToolModel(BaseChatModel):
    tool_name: str
    tool_args: dict[str, Any]
    reply: str = "Done:"

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-model"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolModel:
        return self

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        results = [m for m in messages if isinstance(m, ToolMessage)]
        if not results:
            call = {"name": self.tool_name, "args": self.tool_args, "id": "call_1"}
            return AIMessage(content="", tool_calls=[call], id="ai-call")
        return AIMessage(content=f"{self.reply} {results[-1].content}", id="ai-reply")

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    def _chunks(self, messages: list[BaseMessage]) -> Iterator[ChatGenerationChunk]:
        answer = self._answer(messages)
        if answer.tool_calls:
            call = answer.tool_calls[0]
            chunk = {"name": call["name"], "args": _json(call["args"]), "id": call["id"]}
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="", id=answer.id, tool_call_chunks=[{**chunk, "index": 0}]
                )
            )
            return
        words = str(answer.content).split(" ")
        for i, word in enumerate(words):
            text = word if i == 0 else f" {word}"
            yield ChatGenerationChunk(message=AIMessageChunk(content=text, id=answer.id))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            if run_manager is not None:
                run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            if run_manager is not None:
                await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
