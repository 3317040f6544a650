"""Streams while Redis is away (a redis-server of the test's own, stopped and started):
a stream opened then is a 503 JSON answer before any SSE is sent (and creates no run), and
a stream whose broker fails after its headers went out ends with an `error` event."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from tests import serverproc
from tests.helpers import wait_for_status
from tests.serverproc import ServerProcess
from tests.sse_client import frames
from tests.test_broker import PrivateRedis
from threadline.broker.base import StreamEvent
from threadline.core.errors import Unavailable
from threadline.http.sse import EventStreamResponse


def _postgres_up() -> bool:
    try:
        psycopg.connect(serverproc.POSTGRES_ADMIN_URI, connect_timeout=2).close()
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    if not _postgres_up():
        pytest.skip("needs PostgreSQL on this machine")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proc(redis_server: PrivateRedis) -> Iterator[ServerProcess]:
    server = ServerProcess(backend="postgres", redis_uri=redis_server.url).start()
    yield server
    server.stop()


def _is_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Redis is not reachable" in response.json()["detail"]


async def test_streams_opened_while_redis_is_down_are_503_before_any_event(
    proc: ServerProcess, redis_server: PrivateRedis
) -> None:
    api = get_client(url=proc.url, api_key=None)
    thread_id = str((await api.threads.create())["thread_id"])
    running = await api.runs.create(
        thread_id, "slow", input={}, context={"steps": 100, "delay": 0.05}
    )
    run_id = str(running["run_id"])
    await wait_for_status(api, thread_id, run_id, {"running"})
    body = {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "x"}]}}
    redis_server.stop()
    try:
        async with httpx.AsyncClient(base_url=proc.url, timeout=30) as http:
            for method, path, payload in (
                ("POST", f"/threads/{thread_id}/runs/stream", body),
                ("POST", "/runs/stream", body),
                ("GET", f"/threads/{thread_id}/runs/{run_id}/stream", None),
                ("GET", f"/runs/{run_id}/stream", None),
                ("GET", f"/threads/{thread_id}/stream", None),
            ):
                async with http.stream(method, path, json=payload) as response:
                    await response.aread()
                    _is_unavailable(response)
        # the refused streams created no run
        assert [r["run_id"] for r in await api.runs.list(thread_id)] == [run_id]
    finally:
        redis_server.start()
    # streams work again once Redis is back
    parts = [
        part
        async for part in api.runs.stream(
            None, "echo", input={"messages": [{"role": "user", "content": "y"}]}
        )
    ]
    assert parts[0].event == "metadata"
    assert parts[-1].event == "values"
    await api.runs.cancel(thread_id, run_id)
    await api.http.client.aclose()


async def _events_then(failure: Exception) -> AsyncIterator[StreamEvent]:
    yield StreamEvent("1-0", "metadata", b'{"run_id": "r"}')
    raise failure


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (Unavailable("Redis is not reachable (stream): gone"), "Unavailable"),
        (RuntimeError("unexpected"), "RuntimeError"),
    ],
)
async def test_a_stream_that_fails_after_its_headers_ends_with_an_error_event(
    failure: Exception, error: str
) -> None:
    """Once the status line is out, a failure of the events becomes a last `error` event
    (the reference's shape) and the response ends cleanly."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await EventStreamResponse(_events_then(failure), heartbeat=60)(scope, receive, send)

    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        http.stream("GET", "/") as response,
    ):
        assert response.status_code == 200
        got = [f async for f in frames(response) if not f.is_comment]
    assert [(f.event, f.id) for f in got] == [("metadata", "1-0"), ("error", "1-0")]
    assert got[1].data == {"error": error, "message": str(failure)}
