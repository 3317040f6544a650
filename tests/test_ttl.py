"""Thread TTLs: expired threads are swept with their runs and checkpoints."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from tests.serverproc import GRAPHS_CONFIG, ServerProcess


@pytest.fixture
def sweeping_server(tmp_path: Path, backend: str) -> Iterator[ServerProcess]:
    config = {
        "graphs": {"echo": f"{GRAPHS_CONFIG.parent / 'echo.py'}:graph"},
        # sweep every 0.3 s so the test does not wait minutes
        "checkpointer": {"ttl": {"strategy": "delete", "sweep_interval_minutes": 0.005}},
    }
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(config))
    proc = ServerProcess(config=path, backend=backend).start()
    yield proc
    proc.stop()


async def test_expired_threads_are_swept(sweeping_server: ServerProcess) -> None:
    client = get_client(url=sweeping_server.url)
    doomed = await client.threads.create(ttl={"strategy": "delete", "ttl": 0.01})  # 0.6 s
    kept = await client.threads.create()
    await client.runs.wait(doomed["thread_id"], "echo", input={"messages": []})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            await client.threads.get(doomed["thread_id"])
        except NotFoundError:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the expired thread was not swept")
    with pytest.raises(NotFoundError):
        await client.threads.get_state(doomed["thread_id"])
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]
