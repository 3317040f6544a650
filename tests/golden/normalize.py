"""Normalise recorded stream events so two servers' outputs compare structurally.

`normalize(events)` takes a list of `[event_name, data]` pairs (or `(event, data)`
tuples / StreamPart-like objects with `.event` and `.data`) and returns a new list of
`[event_name, data]` where volatile values are replaced by placeholders:

- UUIDs (also inside strings such as ``sub:<uuid>`` or ``lc_run--<uuid>``) -> ``<uuid>``
- 32-hex ids (interrupt ids) -> ``<hex>``
- ISO-8601 timestamps -> ``<ts>``
- checkpoint channel versions ``000…02.0.123`` -> ``<version>``
- values under VOLATILE_KEYS (versions, hosts, request times, …) -> ``<volatile>``

Dict keys are normalised with the same string rules (``messages/metadata`` is keyed by
message id). Event names are normalised too (``values|sub:<uuid>``). Event names, key
sets, list lengths and all stable values are kept.

With ``numbered=True`` each distinct volatile value gets a stable index in order of
first appearance (``<uuid:3>``) so identity relations (same run id in two places) are
compared too. Traversal visits dict keys in sorted order so key order does not matter.

`normalize_value(obj)` applies the same rules to any JSON value (e.g. a /wait body).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX32_RE = re.compile(r"(?<![0-9a-fA-F-])[0-9a-f]{32}(?![0-9a-fA-F-])")
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
VERSION_RE = re.compile(r"^\d{32}\.\d+(?:\.\d+)?$")
EVENT_ID_RE = re.compile(r"^\d{13}-\d+$")

VOLATILE_KEYS = frozenset(
    {
        "langgraph_api_version",
        "langgraph_version",
        "langgraph_plan",
        "langgraph_host",
        "langgraph_api_url",
        "langgraph_request_id",
        "__request_start_time_ms__",
        "created_at",
        "updated_at",
        "timestamp",
        "ts",
        "x-request-id",
        "run_started_at",
        "thread_ts",
        "langsmith_session_name",
        "langsmith_project",
        "revision_id",
        "ls_run_depth",
        "LANGGRAPH_API_URL",
        "LANGSMITH_LANGGRAPH_API_VARIANT",
        "LANGSMITH_LANGGRAPH_API_REVISION",
        "LANGGRAPH_API_REVISION",
        "lc_versions",
    }
)


class _Namer:
    def __init__(self, numbered: bool) -> None:
        self.numbered = numbered
        self.seen: dict[tuple[str, str], int] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str, value: str) -> str:
        if not self.numbered:
            return f"<{kind}>"
        key = (kind, value)
        if key not in self.seen:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.seen[key] = self.counts[kind]
        return f"<{kind}:{self.seen[key]}>"


def _norm_str(s: str, namer: _Namer) -> str:
    if VERSION_RE.match(s):
        return namer("version", s)
    if EVENT_ID_RE.match(s):
        return namer("eventid", s)
    s = UUID_RE.sub(lambda m: namer("uuid", m.group(0).lower()), s)
    s = TS_RE.sub(lambda m: namer("ts", m.group(0)), s)
    s = HEX32_RE.sub(lambda m: namer("hex", m.group(0)), s)
    return s


def _norm(obj: Any, namer: _Namer) -> Any:
    if isinstance(obj, str):
        return _norm_str(obj, namer)
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k in sorted(obj, key=str):
            v = obj[k]
            nk = _norm_str(k, namer) if isinstance(k, str) else k
            if isinstance(k, str) and k in VOLATILE_KEYS and v is not None:
                out[nk] = "<volatile>"
            else:
                out[nk] = _norm(v, namer)
        return out
    if isinstance(obj, (list, tuple)):
        return [_norm(v, namer) for v in obj]
    return obj


def _pair(ev: Any) -> tuple[str, Any]:
    if hasattr(ev, "event") and hasattr(ev, "data"):
        return ev.event, ev.data
    if isinstance(ev, dict) and "event" in ev:
        return ev["event"], ev.get("data")
    name, data = ev[0], ev[1]
    return name, data


def normalize(events: Iterable[Any], numbered: bool = False) -> list[list[Any]]:
    namer = _Namer(numbered)
    out = []
    for ev in events:
        name, data = _pair(ev)
        out.append([_norm_str(name, namer), _norm(data, namer)])
    return out


def normalize_value(obj: Any, numbered: bool = False) -> Any:
    return _norm(obj, _Namer(numbered))


def event_names(events: Iterable[Any]) -> list[str]:
    """Just the (normalised) event names, handy for order-only comparisons."""
    return [e[0] for e in normalize(events)]


def key_shape(obj: Any) -> Any:
    """Structure only: dicts -> {key: shape}, lists -> [shape of items], scalars -> type name."""
    if isinstance(obj, dict):
        return {k: key_shape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [key_shape(v) for v in obj]
    return type(obj).__name__
