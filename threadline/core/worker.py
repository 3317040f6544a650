"""Placeholder worker (replaced by the run executor)."""

from __future__ import annotations

from typing import Any


class Worker:
    def __init__(self, services: Any) -> None:
        self.services = services

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"max": self.services.settings.jobs, "active": 0}
