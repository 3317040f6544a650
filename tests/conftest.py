from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.serverproc import ServerProcess


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """One shared server for tests that do not restart or kill it."""
    proc = ServerProcess().start()
    yield proc
    proc.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as raw:
        yield raw
