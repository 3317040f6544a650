"""Which events of a thread's log a subscriber gets: channels, namespaces, depth, since."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from threadline.core.errors import BadRequest

CHANNELS = ("values", "updates", "messages", "tools", "custom", "lifecycle", "input", "tasks")
# Older clients still ask for these; they are accepted and match what carries the name.
LEGACY_CHANNELS = ("checkpoints", "debug")
_METHOD_CHANNEL = {"input.requested": "input"}


@dataclass(frozen=True)
class EventFilter:
    channels: frozenset[str]
    namespaces: tuple[tuple[str, ...], ...] | None = None
    depth: int | None = None
    since: int | None = None

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        channel = channel_of(method, params)
        if channel not in self.channels and not (
            channel.startswith("custom:") and "custom" in self.channels
        ):
            return False
        return self._in_namespaces(tuple(params.get("namespace") or ()))

    def _in_namespaces(self, namespace: tuple[str, ...]) -> bool:
        if not self.namespaces:
            return True
        return any(
            _starts_with(namespace, prefix)
            and (self.depth is None or len(namespace) - len(prefix) <= self.depth)
            for prefix in self.namespaces
        )


def channel_of(method: str, params: dict[str, Any]) -> str:
    if method == "custom":
        data = params.get("data")
        name = data.get("name") if isinstance(data, dict) else None
        return f"custom:{name}" if isinstance(name, str) and name else "custom"
    return _METHOD_CHANNEL.get(method, method)


def _starts_with(namespace: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    """A prefix segment without a task id (`tools`) matches any task of it (`tools:1`)."""
    if len(prefix) > len(namespace):
        return False
    return all(
        seg == want or (":" not in want and seg.split(":", 1)[0] == want)
        for seg, want in zip(namespace, prefix, strict=False)
    )


def parse_filter(body: Any, *, allow_since: bool = True) -> EventFilter:
    """A subscription from its JSON body; BadRequest (400) names what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    channels = body.get("channels")
    if not isinstance(channels, list) or not channels:
        raise BadRequest("channels is required and must be a non-empty array")
    unknown = [c for c in channels if not _known_channel(c)]
    if unknown:
        raise BadRequest(
            f"channels contains unsupported entries: {', '.join(map(str, unknown))}. "
            f"Allowed: {', '.join(CHANNELS)}, or any `custom:<name>`."
        )
    return EventFilter(
        channels=frozenset(channels),
        namespaces=_namespaces(body.get("namespaces")),
        depth=_non_negative(body, "depth"),
        since=_non_negative(body, "since") if allow_since else None,
    )


def _known_channel(channel: Any) -> bool:
    if not isinstance(channel, str):
        return False
    if channel.startswith("custom:"):
        return len(channel) > len("custom:")
    return channel in CHANNELS or channel in LEGACY_CHANNELS


def _namespaces(value: Any) -> tuple[tuple[str, ...], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(ns, list) and all(isinstance(seg, str) for seg in ns) for ns in value
    ):
        raise BadRequest("namespaces must be an array of arrays of strings")
    return tuple(tuple(ns) for ns in value)


def _non_negative(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{key} must be a non-negative integer")
    return value
