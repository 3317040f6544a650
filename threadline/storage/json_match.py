"""JSON containment, with the semantics of PostgreSQL's `@>`, for backends without it."""

from __future__ import annotations

from typing import Any


def contains(doc: Any, needle: Any) -> bool:
    if isinstance(needle, dict):
        return isinstance(doc, dict) and all(
            key in doc and contains(doc[key], value) for key, value in needle.items()
        )
    if isinstance(needle, list):
        if not isinstance(doc, list):
            return False
        return all(any(contains(item, wanted) for item in doc) for wanted in needle)
    if isinstance(needle, bool) or isinstance(doc, bool):
        return doc is needle
    return bool(doc == needle)
