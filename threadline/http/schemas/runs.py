"""Request bodies of the run endpoints, as the official SDK sends them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

StreamMode = Literal[
    "values",
    "messages",
    "messages-tuple",
    "tasks",
    "checkpoints",
    "updates",
    "events",
    "debug",
    "custom",
]
MultitaskStrategy = Literal["reject", "rollback", "interrupt", "enqueue"]


def _default_modes() -> list[StreamMode]:
    return ["values"]


class CheckpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class GotoSend(BaseModel):
    node: str
    input: Any = None


class RunCommand(BaseModel):
    """`Command(update=..., resume=..., goto=...)` for the graph."""

    model_config = ConfigDict(extra="forbid")
    update: dict[str, Any] | list[Any] | None = None
    resume: Any = None
    goto: GotoSend | str | list[GotoSend | str] | None = None


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    tags: list[str] | None = None
    recursion_limit: int | None = Field(default=None, ge=1)
    configurable: dict[str, Any] | None = None


class _RunCreateBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assistant_id: str = Field(description="An assistant UUID or a graph id.")
    input: dict[str, Any] | list[Any] | str | int | float | bool | None = None
    command: RunCommand | None = None
    metadata: dict[str, Any] | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] = Field(default_factory=_default_modes)
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    feedback_keys: list[str] | None = None
    after_seconds: float | None = Field(default=None, ge=0)
    checkpoint_during: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    on_disconnect: Literal["cancel", "continue"] = "continue"
    strict_resume: bool | None = None
    langsmith_tracer: dict[str, Any] | None = Field(
        default=None, description="Accepted for compatibility; Threadline does not trace."
    )

    @field_validator("stream_mode")
    @classmethod
    def _as_list(cls, value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else list(value)


class RunCreateStateful(_RunCreateBase):
    checkpoint: CheckpointConfig | None = None
    checkpoint_id: str | None = None
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"


class RunCreateStateless(_RunCreateBase):
    on_completion: Literal["delete", "keep"] = "delete"
    # The SDK may pass these for stateless runs; a temporary thread has nothing to
    # multitask against, so any value behaves the same.
    multitask_strategy: MultitaskStrategy | None = None
    if_not_exists: Literal["create", "reject"] | None = None


class RunCancelBulk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None
