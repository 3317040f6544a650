"""Reading a thread's protocol log: replay from the start (or after `since`), then live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson

from threadline.broker.base import StreamEvent, parse_event_id
from threadline.core.protocol.events import envelope, log_stream
from threadline.core.protocol.filters import EventFilter

if TYPE_CHECKING:
    from threadline.core.services import Services


async def thread_events(
    services: Services, thread_id: str, event_filter: EventFilter
) -> AsyncIterator[StreamEvent]:
    """Matching events as wire envelopes (id: the event's number), until the subscription
    is ended (the server stops). The log of a thread that does not exist yet is empty:
    its first run may be on the way."""
    after = "-1" if event_filter.since is None else f"0-{event_filter.since}"
    events = services.broker.subscribe(log_stream(thread_id), after)
    try:
        async for item in events:
            if item.is_end:
                return
            if event_filter.matches(item.event, orjson.loads(item.data)):
                seq = parse_event_id(item.id)[1]
                yield StreamEvent(str(seq), item.event, envelope(seq, item.event, item.data))
    finally:
        await events.aclose()  # type: ignore[attr-defined]
