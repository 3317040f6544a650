"""Raw SSE reading for tests where the wire framing matters (ids, comments, CRLF)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Frame:
    """One SSE block: an event (with its id) or a comment such as `: heartbeat`."""

    event: str | None
    data: Any
    id: str | None
    comment: str | None = None
    raw: bytes = b""

    @property
    def is_comment(self) -> bool:
        return self.comment is not None


def parse_block(block: bytes) -> Frame:
    event = data = event_id = comment = None
    for line in block.split(b"\r\n"):
        if line.startswith(b":"):
            comment = line[1:].strip().decode()
        elif line.startswith(b"event: "):
            event = line[len(b"event: ") :].decode()
        elif line.startswith(b"data: "):
            data = json.loads(line[len(b"data: ") :])
        elif line.startswith(b"id: "):
            event_id = line[len(b"id: ") :].decode()
    return Frame(event, data, event_id, comment, block)


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Blocks as they arrive; every block must end with CRLF CRLF."""
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk
        while b"\r\n\r\n" in buffer:
            block, buffer = buffer.split(b"\r\n\r\n", 1)
            yield parse_block(block)
    assert buffer == b"", f"trailing bytes not framed with CRLF CRLF: {buffer!r}"


async def read_all(response: httpx.Response, *, comments: bool = False) -> list[Frame]:
    return [f async for f in frames(response) if comments or not f.is_comment]


def id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)
