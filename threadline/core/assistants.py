"""Assistants: versioned configurations of a graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadline.ids import system_assistant_id
from threadline.serialization import utcnow

if TYPE_CHECKING:
    from threadline.core.services import Services


async def ensure_system_assistants(services: Services) -> None:
    """Every graph has a default assistant with the reference's deterministic id."""
    now = utcnow()
    for graph_id in services.graphs.graph_ids:
        await services.assistants.upsert_system(
            {
                "assistant_id": system_assistant_id(graph_id),
                "graph_id": graph_id,
                "config": {},
                "context": {},
                "metadata": {"created_by": "system"},
                "name": graph_id,
                "description": None,
                "created_at": now,
                "updated_at": now,
            }
        )
