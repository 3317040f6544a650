"""Crash safety of the embedded deployment: kill -9 mid-run, start again, nothing is lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from langgraph_sdk import get_client

from tests.helpers import wait_for_status
from tests.serverproc import ServerProcess


@pytest.fixture
def own_server(backend: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(backend=backend).start()
    yield proc
    proc.stop()


async def test_run_resumes_from_its_last_checkpoint_after_kill_9(
    own_server: ServerProcess,
) -> None:
    client = get_client(url=own_server.url)
    thread_id = str(uuid.uuid4())
    run = await client.runs.create(
        thread_id,
        "slow",
        input={},
        context={"steps": 20, "delay": 0.1},
        durability="sync",
        if_not_exists="create",
    )
    await wait_for_status(client, thread_id, run["run_id"], {"running"})
    while (await client.threads.get_state(thread_id))["values"].get("count", 0) < 3:
        await asyncio.sleep(0.05)
    own_server.kill()

    own_server.start()
    client = get_client(url=own_server.url)
    await client.runs.join(thread_id, run["run_id"])
    done = await client.runs.get(thread_id, run["run_id"])
    assert done["status"] == "success"
    state = await client.threads.get_state(thread_id)
    # resumed, not restarted: each step ran exactly once
    assert state["values"]["log"] == [f"step-{i}" for i in range(1, 21)]
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_pending_runs_execute_after_a_restart(own_server: ServerProcess) -> None:
    client = get_client(url=own_server.url)
    thread_id = str(uuid.uuid4())
    run = await client.runs.create(
        thread_id,
        "echo",
        input={"messages": [{"role": "user", "content": "later"}]},
        after_seconds=1,
        if_not_exists="create",
    )
    own_server.kill()
    own_server.start()
    client = get_client(url=own_server.url)
    result = await client.runs.join(thread_id, run["run_id"])
    assert result["messages"][-1]["content"] == "echo: later"
