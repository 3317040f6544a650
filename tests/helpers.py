"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from langgraph_sdk.client import LangGraphClient


def slow_context(steps: int = 50, delay: float = 0.05) -> dict[str, Any]:
    return {"steps": steps, "delay": delay}


async def start_slow_run(
    client: LangGraphClient,
    steps: int,
    delay: float,
    thread_id: str | None = None,
    **extra: Any,
) -> tuple[str, str]:
    """A background `slow` run checkpointing every step (creating its thread); returns
    (thread id, run id)."""
    thread_id = thread_id or str(uuid.uuid4())
    run = await client.runs.create(
        thread_id,
        "slow",
        input={},
        context=slow_context(steps, delay),
        durability="sync",
        if_not_exists="create",
        **extra,
    )
    return thread_id, str(run["run_id"])


async def new_thread(client: LangGraphClient, **metadata: Any) -> str:
    thread = await client.threads.create(metadata={"test": str(uuid.uuid4()), **metadata})
    return str(thread["thread_id"])


async def wait_for_status(
    client: LangGraphClient,
    thread_id: str,
    run_id: str,
    statuses: set[str],
    timeout: float = 20.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = await client.runs.get(thread_id, run_id)
        if run["status"] in statuses:
            return dict(run)
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} stayed {run['status']}, wanted {statuses}")
        await asyncio.sleep(0.02)


async def wait_for_thread_status(
    client: LangGraphClient, thread_id: str, status: str, timeout: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        thread = await client.threads.get(thread_id)
        if thread["status"] == status:
            return dict(thread)
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {thread_id} stayed {thread['status']}, wanted {status}")
        await asyncio.sleep(0.02)
