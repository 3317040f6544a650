"""The long-term store: items in namespaces, shared by the HTTP API and the graphs.

Everything a request asks for is checked here before it reaches LangGraph's store: the
store batches concurrent operations, and one bad operation would fail the whole batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import orjson
from langgraph.store.base import (
    NOT_PROVIDED,
    InvalidNamespaceError,
    Item,
    NamespacePath,
    NotProvided,
    SearchItem,
    tokenize_path,
)

from threadline.core.errors import BadRequest, InvalidInput

if TYPE_CHECKING:
    from threadline.core.services import Services

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
_COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
# Top-level fields only: SQLite would read dots as a path, PostgreSQL as part of the name.
_FILTER_KEY = re.compile(r"[A-Za-z0-9_-]+")


def parse_namespace(values: Sequence[str]) -> tuple[str, ...]:
    """The namespace of GET ?namespace=: one dot-joined string (as the SDK sends it), or the
    labels as repeated parameters (as openapi documents it)."""
    if len(values) == 1:
        return tuple(values[0].split(".")) if values[0] else ()
    return tuple(values)


def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    for label in labels:
        if not label or "." in label:
            raise InvalidInput(
                f"Namespace label '{label}' must be a non-empty string without periods"
            )
        if "\x00" in label:
            raise InvalidInput(f"Namespace label {label!r} must not contain NUL characters")
    return tuple(labels)


def _check_namespace(namespace: Sequence[str]) -> tuple[str, ...]:
    if not namespace:
        raise BadRequest("Namespace cannot be empty.")
    return _check_labels(namespace)


def _check_key(key: str) -> str:
    if "\x00" in key:
        raise InvalidInput("Key must not contain NUL characters")
    return key


def _has_nul(value: Any) -> bool:
    """PostgreSQL's jsonb cannot hold U+0000; refused on both databases alike."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _store(services: Services) -> Any:
    if services.store is None:
        raise RuntimeError("the store is not open")
    return services.store


async def put_item(
    services: Services,
    namespace: Sequence[str],
    key: str,
    value: Mapping[str, Any],
    *,
    index: Literal[False] | list[str] | None = None,
    ttl: float | NotProvided | None = NOT_PROVIDED,
) -> None:
    """Insert or replace an item. `ttl` in minutes; None never expires; not given, the
    configured `store.ttl.default_ttl` applies."""
    ns = _check_namespace(namespace)
    _check_key(key)
    if isinstance(ttl, int | float) and not ttl > 0:
        raise InvalidInput("ttl must be a positive number of minutes, or null")
    if _has_nul(value):
        raise InvalidInput("value must not contain NUL characters (\\u0000)")
    if index:
        for path in index:
            try:
                tokenize_path(path)
            except Exception as exc:
                raise InvalidInput(f"index path {path!r} is not valid: {exc}") from exc
    try:
        await _store(services).aput(ns, key, dict(value), index=index, ttl=ttl)
    except InvalidNamespaceError as exc:  # the reserved root label "langgraph"
        raise InvalidInput(str(exc)) from exc


async def get_item(
    services: Services,
    namespace: Sequence[str],
    key: str,
    *,
    refresh_ttl: bool | None = None,
) -> Item | None:
    """The item, or None. Reading never creates anything (the reference listed namespaces
    of missing items afterwards)."""
    ns = _check_namespace(namespace)
    _check_key(key)
    item: Item | None = await _store(services).aget(ns, key, refresh_ttl=refresh_ttl)
    return item


async def delete_item(services: Services, namespace: Sequence[str], key: str) -> None:
    """Delete the item; deleting a missing item is not an error."""
    ns = _check_namespace(namespace)
    _check_key(key)
    await _store(services).adelete(ns, key)


def check_filter(filter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`{field: value}` (equality) or `{field: {"$op": value, ...}}` with $eq, $ne, $gt,
    $gte, $lt, $lte; comparisons take a number or a string."""
    if not filter:
        return None
    for field, condition in filter.items():
        if not _FILTER_KEY.fullmatch(field):
            raise InvalidInput(
                f"filter field {field!r}: name a top-level field of the value "
                "(letters, digits, '_' and '-')"
            )
        if not isinstance(condition, dict):
            continue
        if not condition:
            raise InvalidInput(f"filter on {field!r}: give a value or at least one operator")
        for op, operand in condition.items():
            if op not in OPERATORS:
                raise InvalidInput(
                    f"filter on {field!r}: unsupported operator {op!r}; expected one of "
                    f"{', '.join(OPERATORS)} (to compare with an object, use $eq)"
                )
            if op in _COMPARISONS and (
                isinstance(operand, bool) or not isinstance(operand, int | float | str)
            ):
                raise InvalidInput(
                    f"filter on {field!r}: {op} compares with a number or a string, "
                    f"not {orjson.dumps(operand).decode()}"
                )
    return dict(filter)


async def search_items(
    services: Services,
    namespace_prefix: Sequence[str],
    *,
    filter: Mapping[str, Any] | None = None,
    limit: int = 10,
    offset: int = 0,
    query: str | None = None,
    refresh_ttl: bool | None = None,
) -> list[SearchItem]:
    """Items under `namespace_prefix`: most recently updated first, or, with a `query` and
    `store.index` configured, most similar first (with a score)."""
    prefix = _check_labels(namespace_prefix)
    items: list[SearchItem] = await _store(services).asearch(
        prefix,
        query=query or None,
        filter=check_filter(filter),
        limit=limit,
        offset=offset,
        refresh_ttl=refresh_ttl,
    )
    return items


async def list_namespaces(
    services: Services,
    *,
    prefix: Sequence[str] | None = None,
    suffix: Sequence[str] | None = None,
    max_depth: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[tuple[str, ...]]:
    """Namespaces holding at least one item, sorted; `*` in prefix or suffix matches any
    one label; `max_depth` truncates (and merges) deeper namespaces."""
    prefix_path: NamespacePath | None = _check_labels(prefix) if prefix else None
    suffix_path: NamespacePath | None = _check_labels(suffix) if suffix else None
    namespaces: list[tuple[str, ...]] = await _store(services).alist_namespaces(
        prefix=prefix_path,
        suffix=suffix_path,
        max_depth=max_depth,
        limit=limit,
        offset=offset,
    )
    return namespaces
