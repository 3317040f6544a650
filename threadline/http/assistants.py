"""HTTP routes for assistants."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Assistants"])
