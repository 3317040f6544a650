"""Webhooks: a run's `webhook` is POSTed when it ends, from a durable outbox, with retries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from tests.serverproc import GRAPHS_CONFIG, ServerProcess, free_port

SECRET = "webhook-test-secret"
WEBHOOK_ENV = {"THREADLINE_WEBHOOK_BACKOFF_SECONDS": "0.2", "THREADLINE_WEBHOOK_SECRET": SECRET}
HUMAN = {"messages": [{"type": "human", "content": "hi"}]}


class Receiver:
    """A tiny HTTP server on a loopback port, in a thread of its own: records each request
    and answers with the next of `statuses` (200 once they run out)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.port = free_port()
        self.statuses = list(statuses or [])
        self.requests: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port)
            )
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        headers = {}
        for line in lines:
            if ":" in line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        status = self.statuses.pop(0) if self.statuses else 200
        self.requests.append(
            {"path": request_line.split()[1], "headers": headers, "body": body, "status": status}
        )
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} webhooks came"
            await asyncio.sleep(0.05)
        return self.requests

    async def delivered(self, timeout: float = 10.0) -> dict[str, Any]:
        """The body of the first request answered with a 2xx."""
        deadline = time.monotonic() + timeout
        while True:
            ok = [r for r in self.requests if r["status"] < 300]
            if ok:
                return dict(json.loads(ok[0]["body"]))
            assert time.monotonic() < deadline, f"not delivered: {self.requests}"
            await asyncio.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


_servers: dict[str, ServerProcess] = {}


@pytest.fixture(scope="module")
def _module_servers() -> Iterator[dict[str, ServerProcess]]:
    yield _servers
    for proc in _servers.values():
        proc.stop()
    _servers.clear()


@pytest.fixture
def hook_server(backend: str, _module_servers: dict[str, ServerProcess]) -> ServerProcess:
    """A server with a fast backoff and a signing secret."""
    if backend not in _module_servers:
        _module_servers[backend] = ServerProcess(backend=backend, env=WEBHOOK_ENV).start()
    return _module_servers[backend]


@pytest.fixture
async def client(hook_server: ServerProcess) -> Any:
    sdk = get_client(url=hook_server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


def _verify(request: dict[str, Any]) -> None:
    signature = request["headers"]["x-threadline-signature"]
    parts = dict(item.split("=", 1) for item in signature.split(","))
    assert abs(int(parts["t"]) - time.time()) < 60
    expected = hmac.new(
        SECRET.encode(), parts["t"].encode() + b"." + request["body"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)


async def test_success_payload_and_signature(client: LangGraphClient, receiver: Receiver) -> None:
    thread = await client.threads.create()
    url = receiver.url("/hook?token=abc")
    values = await client.runs.wait(thread["thread_id"], "echo", input=HUMAN, webhook=url)
    body = await receiver.delivered()
    request = receiver.requests[0]
    assert request["path"] == "/hook?token=abc"
    assert request["headers"]["content-type"] == "application/json"
    _verify(request)
    assert body["thread_id"] == thread["thread_id"]
    assert body["status"] == "success"
    assert body["values"] == values
    assert body["kwargs"]["webhook"] == url
    for key in ("run_id", "assistant_id", "metadata", "created_at", "updated_at"):
        assert key in body
    assert body["run_started_at"] <= body["run_ended_at"] <= body["webhook_sent_at"]
    assert "error" not in body
    run = await client.runs.get(thread["thread_id"], body["run_id"])
    assert run["status"] == "success"


async def test_failed_run_payload_has_error(client: LangGraphClient, receiver: Receiver) -> None:
    thread = await client.threads.create()
    await client.runs.wait(
        thread["thread_id"], "fail", input=HUMAN, webhook=receiver.url(), raise_error=False
    )
    body = await receiver.delivered()
    assert body["status"] == "error"
    assert body["error"] == {"error": "ValueError", "message": "boom"}


async def test_stateless_run_delivers_values(client: LangGraphClient, receiver: Receiver) -> None:
    values = await client.runs.wait(None, "echo", input=HUMAN, webhook=receiver.url())
    body = await receiver.delivered()
    assert body["values"] == values
    assert values["messages"]
    with pytest.raises(NotFoundError):  # its thread is gone; the payload was built before
        await client.threads.get(body["thread_id"])


async def test_cancelled_run_delivers_interrupted(
    client: LangGraphClient, receiver: Receiver
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "slow", input={}, webhook=receiver.url(), context={"steps": 50}
    )
    await asyncio.sleep(0.5)
    await client.runs.cancel(thread["thread_id"], run["run_id"])
    body = await receiver.delivered()
    assert body["run_id"] == run["run_id"]
    assert body["status"] == "interrupted"


async def test_retried_after_receiver_errors(client: LangGraphClient) -> None:
    receiver = Receiver(statuses=[500, 503, 429]).start()
    try:
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "echo", input=HUMAN, webhook=receiver.url())
        body = await receiver.delivered()
        assert [r["status"] for r in receiver.requests] == [500, 503, 429, 200]
        assert body["status"] == "success"
    finally:
        receiver.stop()


async def test_client_error_is_not_retried(client: LangGraphClient) -> None:
    receiver = Receiver(statuses=[404]).start()
    try:
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "echo", input=HUMAN, webhook=receiver.url())
        await receiver.wait_for(1)
        await asyncio.sleep(1.0)  # past the first retries' backoff
        assert [r["status"] for r in receiver.requests] == [404]
    finally:
        receiver.stop()


async def test_receiver_down_then_up(client: LangGraphClient) -> None:
    receiver = Receiver()  # not listening yet: connection refused
    try:
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "echo", input=HUMAN, webhook=receiver.url())
        await asyncio.sleep(0.5)
        receiver.start()
        body = await receiver.delivered(timeout=10)
        assert body["status"] == "success"
    finally:
        receiver.stop()


async def test_delivery_survives_restart(backend: str) -> None:
    receiver = Receiver()  # down while the first server runs
    proc = ServerProcess(backend=backend, env=WEBHOOK_ENV).start()
    try:
        client = get_client(url=proc.url, api_key=None)
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "echo", input=HUMAN, webhook=receiver.url())
        await asyncio.sleep(0.3)  # a failed attempt or two
        await client.http.client.aclose()
        proc._stop_process()
        receiver.start()
        await asyncio.sleep(0.5)
        assert receiver.requests == []  # nobody sends while the server is down
        proc.start()
        body = await receiver.delivered(timeout=15)
        assert body["thread_id"] == thread["thread_id"]
        assert len([r for r in receiver.requests if r["status"] == 200]) == 1
    finally:
        receiver.stop()
        proc.stop()


async def test_loopback_refused_without_webhooks_block(tmp_path: Path, backend: str) -> None:
    config = {"graphs": {"echo": f"{GRAPHS_CONFIG.parent / 'echo.py'}:graph"}}
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(config))
    proc = ServerProcess(config=path, backend=backend).start()
    try:
        client = get_client(url=proc.url, api_key=None)
        thread = await client.threads.create()
        with pytest.raises(UnprocessableEntityError) as caught:
            await client.runs.create(
                thread["thread_id"], "echo", input=HUMAN, webhook="http://127.0.0.1:9/hook"
            )
        assert "Webhook host blocked: loopback IP range" in str(caught.value.body)
        assert await client.runs.list(thread["thread_id"]) == []
        await client.http.client.aclose()
    finally:
        proc.stop()
