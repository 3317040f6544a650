"""HTTP routes for threads."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Threads"])
