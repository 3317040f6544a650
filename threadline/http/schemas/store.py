"""Request bodies of the store endpoints, as the official SDK sends them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    # Like the reference, keys the schema does not know are ignored.
    model_config = ConfigDict(extra="ignore")


class StorePutRequest(_Body):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    # minutes; absent: store.ttl.default_ttl; null: never expires
    ttl: float | None = None


class StoreDeleteRequest(_Body):
    namespace: list[str] = Field(default_factory=list)
    key: str


class StoreSearchRequest(_Body):
    namespace_prefix: list[str] | None = None
    filter: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=0, le=1000)
    offset: int = Field(default=0, ge=0)
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreListNamespacesRequest(_Body):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = Field(default=None, ge=1)
    limit: int = Field(default=100, ge=0, le=1000)
    offset: int = Field(default=0, ge=0)
