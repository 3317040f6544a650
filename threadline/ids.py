"""Identifier rules shared by every layer."""

from __future__ import annotations

import uuid

from langchain_core.utils.uuid import uuid7

# The namespace the reference server derives system-assistant ids from, so a
# graph's default assistant has the same id on both servers.
SYSTEM_ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def new_id() -> str:
    """A time-ordered UUIDv7, as the reference generates for threads, runs and crons."""
    return str(uuid7())


def system_assistant_id(graph_id: str) -> str:
    return str(uuid.uuid5(SYSTEM_ASSISTANT_NAMESPACE, graph_id))


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True
