"""Request bodies and response shapes of the cron endpoints, as the official SDK sends
them, with the reference's enums and limits.

Like the reference, keys the schemas do not know are ignored. Only the fields a request
sets are kept (they become the cron's `payload`).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from threadline.http.schemas.runs import MultitaskStrategy, RunConfig, StreamMode

OnRunCompleted = Literal["delete", "keep"]
Durability = Literal["sync", "async", "exit"]
CronSortBy = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "next_run_date",
    "end_time",
    "created_at",
    "updated_at",
]
SortOrder = Literal["asc", "desc"]
CronSelectField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
]
Input = dict[str, Any] | list[Any] | str | int | float | bool | None


def _utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value


# A time; one without an offset is UTC.
UtcDateTime = Annotated[datetime.datetime, AfterValidator(_utc)]


class _CronFields(BaseModel):
    """What a cron's runs are made of, shared by create and patch."""

    model_config = ConfigDict(extra="ignore")

    timezone: str | None = Field(
        default=None,
        description="IANA timezone for the cron schedule (e.g. 'America/New_York'). "
        "Defaults to null, which is treated as UTC.",
    )
    input: Input = Field(default=None, description="The input to the graph.")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Metadata to assign to the cron job runs."
    )
    config: RunConfig | None = Field(
        default=None, description="The configuration for the assistant."
    )
    context: dict[str, Any] | None = Field(
        default=None, description="Static context added to the assistant."
    )
    webhook: str | None = Field(
        default=None,
        min_length=1,
        max_length=65536,
        description="Webhook to call after each run is done.",
    )
    interrupt_before: Literal["*"] | list[str] | None = Field(
        default=None, description="Nodes to interrupt immediately before they get executed."
    )
    interrupt_after: Literal["*"] | list[str] | None = Field(
        default=None, description="Nodes to interrupt immediately after they get executed."
    )
    stream_mode: StreamMode | list[StreamMode] | None = Field(
        default=None, description="The stream mode(s) to use (default `values`)."
    )
    stream_subgraphs: bool | None = Field(
        default=None, description="Whether to stream output from subgraphs."
    )
    stream_resumable: bool | None = Field(
        default=None,
        description="Whether to persist the stream chunks in order to resume the stream later.",
    )
    durability: Durability | None = Field(
        default=None, description="Durability level for the runs (default `async`)."
    )
    checkpoint_during: bool | None = Field(
        default=None, description="Deprecated: use `durability`."
    )

    def fields(self) -> dict[str, Any]:
        """The fields the request set, JSON-ready except `end_time` (a datetime)."""
        data = self.model_dump(exclude_unset=True, mode="python")
        if self.config is not None:
            data["config"] = self.config.model_dump(exclude_none=True)
        return data


class _CronCreateBase(_CronFields):
    assistant_id: str = Field(
        description="The assistant ID or graph name to run. A graph name means the "
        "assistant the server created for that graph."
    )
    schedule: str = Field(
        description="The cron schedule (5 fields: minute hour day_of_month month "
        "day_of_week), read in `timezone`."
    )
    end_time: UtcDateTime | None = Field(
        default=None, description="The end date to stop running the cron."
    )
    enabled: bool = Field(
        default=True,
        description="Whether the cron job should be enabled. Disabled crons are not executed.",
    )


class CronCreate(_CronCreateBase):
    """Payload for creating a stateless cron job (creates a new thread for each execution)."""

    on_run_completed: OnRunCompleted = Field(
        default="delete",
        description="What to do with the thread after the run completes. 'delete' removes "
        "the thread after execution. 'keep' creates a new thread for each execution but does "
        "not clean them up.",
    )
    # The SDK may send it; each firing has a new thread of its own, so nothing to
    # multitask against: any value behaves the same.
    multitask_strategy: MultitaskStrategy | None = Field(
        default=None, description="Accepted for compatibility; a new thread never multitasks."
    )


class ThreadCronCreate(_CronCreateBase):
    """Payload for creating a thread-specific cron job (runs on the same thread)."""

    multitask_strategy: MultitaskStrategy = Field(
        default="enqueue",
        description="Multitask strategy to use when the thread is busy at a firing: "
        "'reject' skips that firing; 'interrupt', 'rollback' or 'enqueue' as for runs.",
    )


class CronPatch(_CronFields):
    """Payload for updating a cron job. All fields are optional."""

    schedule: str | None = Field(
        default=None, description="The cron schedule to execute this job on."
    )
    end_time: UtcDateTime | None = Field(
        default=None,
        description="The end date to stop running the cron. Send null to clear a previously "
        "set end time; omit this field to leave the existing value unchanged.",
    )
    on_run_completed: OnRunCompleted | None = Field(
        default=None,
        description="Stateless crons: 'delete' or 'keep' the thread of each run.",
    )
    enabled: bool | None = Field(default=None, description="Enable or disable the cron job.")

    @field_validator(
        "schedule",
        "on_run_completed",
        "enabled",
        "stream_subgraphs",
        "stream_resumable",
    )
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be omitted, but not null")
        return value


class CronSearch(BaseModel):
    """Payload for listing crons."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str | None = Field(
        default=None, description="The assistant ID or graph name to filter by."
    )
    thread_id: str | None = Field(default=None, description="The thread ID to search for.")
    enabled: bool | None = Field(
        default=None,
        description="Filter by enabled status. If not provided, returns both enabled and "
        "disabled crons.",
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Metadata to filter by. Exact match filter for each KV pair."
    )
    limit: int = Field(
        default=10, ge=1, le=1000, description="The maximum number of results to return."
    )
    offset: int = Field(default=0, ge=0, description="The number of results to skip.")
    sort_by: CronSortBy = Field(default="created_at", description="The field to sort by.")
    sort_order: SortOrder = Field(default="desc", description="The order to sort by.")
    select: list[CronSelectField] | None = Field(
        default=None,
        description="Specify which fields to return. If not provided, all fields are returned.",
    )


class CronCountRequest(BaseModel):
    """Payload for counting crons."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str | None = Field(
        default=None, description="The assistant ID or graph name to count for."
    )
    thread_id: str | None = Field(default=None, description="The thread ID to count for.")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Metadata to filter by. Exact match filter for each KV pair."
    )


class Cron(BaseModel):
    """A scheduled run (response shape)."""

    cron_id: str
    assistant_id: str
    thread_id: str | None
    user_id: str | None
    end_time: str | None
    schedule: str
    timezone: str | None
    payload: dict[str, Any]
    next_run_date: str | None
    metadata: dict[str, Any]
    on_run_completed: OnRunCompleted | None
    enabled: bool
    created_at: str
    updated_at: str
