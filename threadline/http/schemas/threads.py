"""Request bodies of the thread endpoints, as the official SDK sends them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
ThreadSortBy = Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"]
ThreadSelectField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
]


class _Body(BaseModel):
    # Like the reference, keys the schema does not know are ignored.
    model_config = ConfigDict(extra="ignore")


class CheckpointConfig(_Body):
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class ThreadTTL(_Body):
    strategy: Literal["delete", "keep_latest"] = "delete"
    ttl: float | None = Field(default=None, ge=0, description="Minutes from now.")


class GotoSend(_Body):
    node: str
    input: Any = None


class SuperstepCommand(_Body):
    update: dict[str, Any] | list[Any] | None = None
    resume: Any = None
    goto: GotoSend | str | list[GotoSend | str] | None = None


class SuperstepUpdate(_Body):
    values: dict[str, Any] | list[Any] | None = None
    command: SuperstepCommand | None = None
    as_node: str


class Superstep(_Body):
    updates: list[SuperstepUpdate]


class ThreadCreate(_Body):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: ThreadTTL | None = None
    supersteps: list[Superstep] | None = None


class ThreadPatch(_Body):
    metadata: dict[str, Any] | None = None
    ttl: ThreadTTL | None = None


class ThreadCountRequest(_Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: ThreadStatus | None = None


class ThreadSearchRequest(ThreadCountRequest):
    ids: list[str] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    sort_by: ThreadSortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[ThreadSelectField] | None = None
    extract: dict[str, str] | None = Field(default=None, max_length=10)


class ThreadPruneRequest(_Body):
    thread_ids: list[str]
    strategy: Literal["delete", "keep_latest"] = "delete"


class ThreadStateUpdate(_Body):
    values: dict[str, Any] | list[Any] | None = None
    checkpoint: CheckpointConfig | None = None
    checkpoint_id: str | None = Field(default=None, description="Deprecated; use checkpoint.")
    as_node: str | None = None


class ThreadStateCheckpointRequest(_Body):
    checkpoint: CheckpointConfig
    subgraphs: bool = False
    select: list[str] | None = None


class ThreadHistoryRequest(_Body):
    limit: int = Field(default=10, ge=1, le=1000)
    before: str | dict[str, Any] | None = Field(
        default=None,
        description="A checkpoint id, a CheckpointConfig, or {'configurable': {...}}.",
    )
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointConfig | None = None
    select: list[str] | None = None
