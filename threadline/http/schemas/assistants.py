"""Request bodies and response shapes of the assistant endpoints, with the reference's
enums and limits, so that /openapi.json documents them.

Optional fields of create/patch bodies reject an explicit `null`, as the reference does
(its JSON schema types them as plain objects and strings); unknown fields are ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import JsonDict

IfExists = Literal["raise", "do_nothing"]
SortBy = Literal["assistant_id", "created_at", "updated_at", "name", "graph_id"]
SortOrder = Literal["asc", "desc"]
SelectField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]

_UUID: JsonDict = {"format": "uuid"}
_DATE_TIME: JsonDict = {"format": "date-time"}
T = TypeVar("T")


def _reject_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may be omitted, but not null")
    return value


def _without_null(schema: JsonDict) -> None:
    options = schema.pop("anyOf", None)
    if not isinstance(options, list):
        return
    kept = [option for option in options if option != {"type": "null"}]
    if len(kept) == 1 and isinstance(kept[0], dict):
        schema.update(kept[0])
    else:
        schema["anyOf"] = kept


# A field that may be left out but, when given, is not null.
Omittable = Annotated[T | None, BeforeValidator(_reject_null)]


def _uuid_without_null(schema: JsonDict) -> None:
    _without_null(schema)
    schema.update(_UUID)


def omittable(description: str, **kwargs: Any) -> Any:
    kwargs.setdefault("json_schema_extra", _without_null)
    return Field(default=None, description=description, **kwargs)


class AssistantConfig(BaseModel):
    """The assistant's RunnableConfig. Other keys are kept as given."""

    model_config = ConfigDict(extra="allow", title="Config")

    tags: Omittable[list[str]] = omittable("Tags of the runs.", title="Tags")
    recursion_limit: Omittable[int] = omittable("Maximum steps.", title="Recursion Limit")
    configurable: Omittable[dict[str, Any]] = omittable(
        "Values for the graph (mirrored into `context`).", title="Configurable"
    )

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class AssistantCreate(BaseModel):
    """Payload for creating an assistant."""

    assistant_id: Omittable[str] = omittable(
        "The ID of the assistant. If not provided, a random UUID will be generated.",
        json_schema_extra=_uuid_without_null,
    )
    graph_id: str = Field(
        description="The ID of the graph the assistant should use, as named in langgraph.json."
    )
    config: Omittable[AssistantConfig] = omittable("Configuration to use for the graph.")
    context: Omittable[dict[str, Any]] = omittable("Static context added to the assistant.")
    metadata: Omittable[dict[str, Any]] = omittable("Metadata to add to assistant.")
    if_exists: IfExists = Field(
        default="raise",
        description="How to handle duplicate creation: 'raise' (409) or 'do_nothing' "
        "(return the existing assistant).",
    )
    name: Omittable[str] = omittable("The name of the assistant. Defaults to 'Untitled'.")
    description: str | None = Field(
        default=None, description="The description of the assistant. Defaults to null."
    )


class AssistantPatch(BaseModel):
    """Payload for updating an assistant. Every update creates a new version."""

    graph_id: Omittable[str] = omittable(
        "The ID of the graph the assistant should use. If not provided, the "
        "assistant keeps pointing to the same graph.",
    )
    config: Omittable[AssistantConfig] = omittable(
        "Configuration to use for the graph (replaces the current one)."
    )
    context: Omittable[dict[str, Any]] = omittable("Static context added to the assistant.")
    metadata: Omittable[dict[str, Any]] = omittable(
        "Metadata to merge with existing assistant metadata."
    )
    name: Omittable[str] = omittable("The new name for the assistant.")
    description: Omittable[str] = omittable("The new description for the assistant.")


class AssistantSearchRequest(BaseModel):
    """Payload for listing assistants."""

    metadata: dict[str, Any] | None = Field(
        default=None, description="Metadata to filter by. Exact match filter for each KV pair."
    )
    graph_id: str | None = Field(default=None, description="The ID of the graph to filter by.")
    name: str | None = Field(
        default=None,
        description="Case-insensitive substring of the assistant name to filter by.",
    )
    limit: int = Field(
        default=10, ge=1, le=1000, description="The maximum number of results to return."
    )
    offset: int = Field(default=0, ge=0, description="The number of results to skip.")
    sort_by: SortBy | None = Field(default=None, description="The field to sort by.")
    sort_order: SortOrder | None = Field(default=None, description="The order to sort by.")
    select: list[SelectField] | None = Field(
        default=None,
        description="Specify which fields to return. If not provided, all fields are returned.",
    )


class AssistantCountRequest(BaseModel):
    """Payload for counting assistants."""

    metadata: dict[str, Any] | None = Field(
        default=None, description="Metadata to filter by. Exact match filter for each KV pair."
    )
    graph_id: str | None = Field(default=None, description="The ID of the graph to filter by.")
    name: str | None = Field(
        default=None,
        description="Case-insensitive substring of the assistant name to filter by.",
    )


class AssistantVersionsSearchRequest(BaseModel):
    """Payload for listing assistant versions."""

    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Metadata to filter versions by. Exact match filter for each KV pair.",
    )
    limit: int = Field(
        default=10, ge=1, le=1000, description="The maximum number of versions to return."
    )
    offset: int = Field(default=0, ge=0, description="The number of versions to skip.")


class AssistantVersionChange(BaseModel):
    """Payload for changing the current version of an assistant."""

    version: int | None = Field(default=None, description="The assistant version.")


# --- responses (documentation only; handlers write JSON themselves) -----------------


class Assistant(BaseModel):
    assistant_id: str = Field(json_schema_extra=_UUID)
    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    name: str
    created_at: str = Field(json_schema_extra=_DATE_TIME)
    updated_at: str = Field(json_schema_extra=_DATE_TIME)
    version: int
    description: str | None


class AssistantVersion(BaseModel):
    assistant_id: str = Field(json_schema_extra=_UUID)
    version: int
    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    created_at: str = Field(json_schema_extra=_DATE_TIME)
    name: str
    description: str | None


class GraphSchemaNoId(BaseModel):
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    state_schema: dict[str, Any] | None = None
    config_schema: dict[str, Any] | None = None
    context_schema: dict[str, Any] | None = None


class GraphSchema(GraphSchemaNoId):
    graph_id: str


class GraphDrawing(BaseModel):
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
