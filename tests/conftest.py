from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests import serverproc
from tests.serverproc import ServerProcess


@pytest.fixture(scope="session", params=serverproc.suite_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """The deployment a test runs on; every test using a server runs on each."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _default_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """`ServerProcess()` in a test follows the test's `backend` parametrization."""
    callspec = getattr(request.node, "callspec", None)
    serverproc.use_backend(callspec.params.get("backend") if callspec else None)
    yield
    serverproc.use_backend(None)


@pytest.fixture(scope="session")
def _shared_servers() -> Iterator[dict[str, ServerProcess]]:
    servers: dict[str, ServerProcess] = {}
    yield servers
    for proc in servers.values():
        proc.stop()


@pytest.fixture
def server(backend: str, _shared_servers: dict[str, ServerProcess]) -> ServerProcess:
    """One shared server per backend for tests that do not restart or kill it."""
    if backend not in _shared_servers:
        _shared_servers[backend] = ServerProcess(backend=backend).start()
    return _shared_servers[backend]


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as raw:
        yield raw
