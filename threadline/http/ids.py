"""Path and body identifiers: the reference's 422 messages for values that are not UUIDs."""

from __future__ import annotations

from threadline.core.errors import InvalidInput
from threadline.ids import is_uuid


def require_uuid(value: str, kind: str) -> str:
    if not is_uuid(value):
        raise InvalidInput(f"Invalid {kind} ID: must be a UUID")
    return str(value).lower()
