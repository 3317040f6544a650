"""JSON encoding of everything a graph can put in its state or stream."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="python")
    if callable(getattr(obj, "model_dump", None)):  # pydantic v1-style wrappers
        return obj.model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, datetime.timedelta):
        return obj.total_seconds()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("utf-8", errors="replace")
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        return list(obj)
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    return repr(obj)


_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def loads(data: bytes | str | None) -> Any:
    if data is None:
        return None
    return orjson.loads(data)


def to_jsonable(obj: Any) -> Any:
    """Round-trip through JSON: graph objects become plain JSON values."""
    return orjson.loads(dumps(obj))


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def isoformat(ts: datetime.datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None
