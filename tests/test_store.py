"""The long-term store through `client.store`: items, search, namespaces, TTL, semantic
search, graphs sharing the store, and every error status."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests import serverproc
from tests.fixtures.clirun import run_cli
from tests.serverproc import ROOT, ServerProcess

STORE_GRAPH = ROOT / "tests" / "graphs" / "store_graph.py"
EMBEDDINGS = ROOT / "tests" / "fixtures" / "embeddings.py"


def _ns() -> list[str]:
    """A namespace of the test's own on the shared server."""
    return ["t", uuid.uuid4().hex]


def _config(folder: Path, store: dict[str, Any]) -> Path:
    path = folder / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"store": f"{STORE_GRAPH}:graph"}, "store": store}))
    return path


async def _gone(client: LangGraphClient, ns: list[str], key: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while await client.store.get_item(ns, key, refresh_ttl=False) is not None:
        assert time.monotonic() < deadline, f"{key} did not expire"
        await asyncio.sleep(0.2)


# --- items ------------------------------------------------------------------------------------
async def test_put_get_update_delete(client: LangGraphClient) -> None:
    ns = _ns()
    assert await client.store.put_item(ns, "prefs", {"theme": "dark", "n": 1}) is None
    item = await client.store.get_item(ns, "prefs")
    assert item["namespace"] == ns and item["key"] == "prefs"
    assert item["value"] == {"theme": "dark", "n": 1}
    created = datetime.datetime.fromisoformat(item["created_at"])
    assert created.tzinfo is not None
    assert abs((datetime.datetime.now(datetime.UTC) - created).total_seconds()) < 60
    assert set(item) == {"namespace", "key", "value", "created_at", "updated_at"}

    await asyncio.sleep(1.1)  # SQLite keeps whole seconds
    await client.store.put_item(ns, "prefs", {"theme": "light"})
    updated = await client.store.get_item(ns, "prefs")
    assert updated["value"] == {"theme": "light"}  # replaced, not merged
    assert updated["created_at"] == item["created_at"]
    assert updated["updated_at"] > item["updated_at"]

    await client.store.delete_item(ns, "prefs")
    assert await client.store.get_item(ns, "prefs") is None


async def test_missing_items_read_as_null_and_leave_no_trace(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    ghost = ["ghost", uuid.uuid4().hex]
    response = await http.get("/store/items", params={"namespace": ".".join(ghost), "key": "x"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() is None
    # the reference listed the namespace of a missing item afterwards
    assert await client.store.list_namespaces(prefix=ghost) == {"namespaces": []}
    assert await client.store.search_items(ghost) == {"items": []}
    # deleting what is not there is fine
    response = await http.request("DELETE", "/store/items", json={"namespace": ghost, "key": "x"})
    assert response.status_code == 204 and response.content == b""
    assert await client.store.list_namespaces(prefix=ghost) == {"namespaces": []}


async def test_get_takes_repeated_namespace_parameters(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    ns = _ns()
    await client.store.put_item(ns, "k", {"v": 1})
    response = await http.get(
        "/store/items", params=[("namespace", ns[0]), ("namespace", ns[1]), ("key", "k")]
    )
    assert response.json()["value"] == {"v": 1}


# --- search -----------------------------------------------------------------------------------
async def test_search_filters(client: LangGraphClient) -> None:
    ns = _ns()
    colors = ["red", "green", "blue"]
    for n in range(1, 13):
        value = {"n": n, "color": colors[n % 3], "even": n % 2 == 0, "tags": ["a", str(n)]}
        await client.store.put_item([*ns, "nums"], f"k{n}", value)
    await client.store.put_item([*ns, "other"], "text", {"n": "9", "color": "red"})

    async def keys(filter: dict[str, Any] | None = None, **kw: Any) -> set[str]:
        found = await client.store.search_items(ns, filter=filter, limit=100, **kw)
        for item in found["items"]:
            assert item["score"] is None
        return {item["key"] for item in found["items"]}

    nums = {f"k{n}" for n in range(1, 13)}
    assert await keys() == nums | {"text"}
    assert await keys({"n": 9}) == {"k9"}  # numbers are not strings
    assert await keys({"n": "9"}) == {"text"}
    assert await keys({"color": "red"}) == {"k3", "k6", "k9", "k12", "text"}
    assert await keys({"n": {"$eq": 4}}) == {"k4"}
    assert await keys({"color": {"$ne": "red"}}) == nums - {"k3", "k6", "k9", "k12"}
    # numbers compare as numbers (10 > 9), and only with numbers
    assert await keys({"n": {"$gt": 9}}) == {"k10", "k11", "k12"}
    assert await keys({"n": {"$gte": 9}}) == {"k9", "k10", "k11", "k12"}
    assert await keys({"n": {"$lt": 3}}) == {"k1", "k2"}
    assert await keys({"n": {"$lte": 3}}) == {"k1", "k2", "k3"}
    assert await keys({"n": {"$gt": 2, "$lt": 5}}) == {"k3", "k4"}
    # strings compare as strings, only with strings
    assert await keys({"color": {"$gt": "green"}}) == {"k3", "k6", "k9", "k12", "text"}
    assert await keys({"color": {"$lte": "blue"}}) == {"k2", "k5", "k8", "k11"}
    assert await keys({"n": {"$gte": "9"}}) == {"text"}
    assert await keys({"even": True, "color": "red"}) == {"k6", "k12"}
    assert await keys({"tags": ["a", "7"]}) == {"k7"}
    assert await keys({"tags": {"$eq": ["a", "8"]}}) == {"k8"}
    assert await keys({"missing": {"$gt": 0}}) == set()
    # the prefix scopes by whole labels
    found = await client.store.search_items([*ns, "nums"], filter={"n": {"$lt": 5}})
    assert {item["namespace"][-1] for item in found["items"]} == {"nums"}
    assert await client.store.search_items([*ns, "num"]) == {"items": []}
    # `query` without store.index: a filtered listing
    assert await keys({"n": 2}, query="anything") == {"k2"}


async def test_search_pages(client: LangGraphClient) -> None:
    ns = _ns()
    for n in range(7):
        await client.store.put_item(ns, f"k{n}", {"n": n})
    default = await client.store.search_items(ns, limit=10)
    assert len(default["items"]) == 7
    pages = []
    for offset in range(0, 8, 3):
        page = await client.store.search_items(ns, limit=3, offset=offset)
        pages.append([item["key"] for item in page["items"]])
    assert [len(page) for page in pages] == [3, 3, 1]
    assert sorted(key for page in pages for key in page) == [f"k{n}" for n in range(7)]
    # most recently updated first
    await asyncio.sleep(1.1)
    await client.store.put_item(ns, "k3", {"n": 33})
    first = await client.store.search_items(ns, limit=1)
    assert first["items"][0]["key"] == "k3"


# --- namespaces -------------------------------------------------------------------------------
async def test_list_namespaces(client: LangGraphClient) -> None:
    root = uuid.uuid4().hex
    for ns in (
        [root, "users", "u1", "prefs"],
        [root, "users", "u2", "prefs"],
        [root, "users", "u2", "notes"],
        [root, "docs"],
    ):
        await client.store.put_item(ns, "k", {"x": 1})

    async def names(**kw: Any) -> list[list[str]]:
        return (await client.store.list_namespaces(**kw))["namespaces"]

    assert await names(prefix=[root]) == [
        [root, "docs"],
        [root, "users", "u1", "prefs"],
        [root, "users", "u2", "notes"],
        [root, "users", "u2", "prefs"],
    ]
    assert await names(prefix=[root, "users"], suffix=["prefs"]) == [
        [root, "users", "u1", "prefs"],
        [root, "users", "u2", "prefs"],
    ]
    assert await names(prefix=[root, "users", "*", "notes"]) == [[root, "users", "u2", "notes"]]
    assert await names(prefix=[root], max_depth=3) == [
        [root, "docs"],
        [root, "users", "u1"],
        [root, "users", "u2"],
    ]
    assert await names(prefix=[root], max_depth=1) == [[root]]
    assert await names(prefix=[root], limit=2, offset=1) == [
        [root, "users", "u1", "prefs"],
        [root, "users", "u2", "notes"],
    ]
    assert await names(prefix=[root[:-1]]) == []  # whole labels
    await client.store.delete_item([root, "docs"], "k")
    assert [root, "docs"] not in await names(prefix=[root])


# --- TTL --------------------------------------------------------------------------------------
async def test_items_expire(client: LangGraphClient) -> None:
    ns = _ns()
    await client.store.put_item(ns, "short", {"x": 1}, ttl=0.01)  # minutes
    await client.store.put_item(ns, "long", {"x": 2}, ttl=60)
    await client.store.put_item(ns, "forever", {"x": 3})
    await client.store.put_item([*ns, "alone"], "short", {"x": 4}, ttl=0.01)
    await _gone(client, ns, "short")
    assert await client.store.get_item(ns, "long") is not None
    found = await client.store.search_items(ns)
    assert {item["key"] for item in found["items"]} == {"long", "forever"}
    assert await client.store.list_namespaces(prefix=ns) == {"namespaces": [ns]}


async def test_refresh_ttl(client: LangGraphClient) -> None:
    ns = _ns()
    for key in ("read", "searched", "untouched"):
        await client.store.put_item(ns, key, {"key": key}, ttl=0.05)  # 3 s
    await asyncio.sleep(2)
    assert await client.store.get_item(ns, "read", refresh_ttl=True) is not None
    found = await client.store.search_items(ns, filter={"key": "searched"}, refresh_ttl=True)
    assert len(found["items"]) == 1
    assert await client.store.get_item(ns, "untouched", refresh_ttl=False) is not None
    await _gone(client, ns, "untouched")
    # refreshed 2 s in: they live on past the original 3 s
    assert await client.store.get_item(ns, "read", refresh_ttl=False) is not None
    assert await client.store.get_item(ns, "searched", refresh_ttl=False) is not None
    await _gone(client, ns, "read")
    await _gone(client, ns, "searched")


@pytest.fixture(scope="module")
def ttl_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = _config(
        tmp_path_factory.mktemp("store-ttl"),
        {"ttl": {"default_ttl": 0.02, "refresh_on_read": False, "sweep_interval_minutes": 0.01}},
    )
    server = ServerProcess(config=config, backend=backend).start()
    yield server
    server.stop()


async def test_configured_ttl(ttl_server: ServerProcess) -> None:
    client = get_client(url=ttl_server.url, api_key=None)
    async with httpx.AsyncClient(base_url=ttl_server.url) as http:
        ns = _ns()
        await client.store.put_item(ns, "default", {"x": 1})  # store.ttl.default_ttl
        body = {"namespace": ns, "key": "never", "value": {"x": 2}, "ttl": None}
        assert (await http.put("/store/items", json=body)).status_code == 204
        # reads do not refresh by default (refresh_on_read: false)...
        deadline = time.monotonic() + 15
        while await client.store.get_item(ns, "default") is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        assert await client.store.get_item(ns, "never") is not None
        # ...but a read that asks does
        await client.store.put_item(ns, "asked", {"x": 3})
        for _ in range(3):
            await asyncio.sleep(0.8)
            assert await client.store.get_item(ns, "asked", refresh_ttl=True) is not None
    await client.http.client.aclose()
    assert "sweep iteration failed" not in ttl_server.log()


# --- graphs -----------------------------------------------------------------------------------
async def test_graphs_share_the_store(client: LangGraphClient) -> None:
    user = uuid.uuid4().hex
    out = await client.runs.wait(None, "store", input={"user": user, "note": "buy milk"})
    assert out["notes"] == ["buy milk"]
    item = await client.store.get_item(["notes", user], "note-0")
    assert item["value"] == {"text": "buy milk"}
    # written over HTTP, read by the graph (through get_store() in a sync node)
    await client.store.put_item(["notes", user], "note-1", {"text": "call mum"})
    thread = await client.threads.create()
    out = await client.runs.wait(thread["thread_id"], "store", input={"user": user})
    assert out["notes"] == ["buy milk", "call mum"]
    found = await client.store.search_items(["notes", user])
    assert {i["key"] for i in found["items"]} == {"note-0", "note-1"}


# --- semantic search --------------------------------------------------------------------------
def _pgvector_available() -> bool:
    import psycopg

    with psycopg.connect(serverproc.POSTGRES_ADMIN_URI) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return row.fetchone() is not None


def _semantic_config(folder: Path) -> Path:
    return _config(
        folder, {"index": {"embed": f"{EMBEDDINGS}:embed", "dims": 4, "fields": ["text"]}}
    )


@pytest.fixture(scope="module")
def semantic_server(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    if backend == "postgres" and not _pgvector_available():
        pytest.skip("this PostgreSQL has no pgvector (see test_semantic_search_needs_pgvector)")
    server = ServerProcess(
        config=_semantic_config(tmp_path_factory.mktemp("semantic")), backend=backend
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def semantic(semantic_server: ServerProcess) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=semantic_server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


async def test_semantic_search_ranks_by_meaning(semantic: LangGraphClient) -> None:
    ns = _ns()
    docs = {
        "pets": "my cat and my dog are good pets",
        "food": "a pizza recipe with cheese",
        "code": "python programming without a bug",
        "weather": "rain and snow in the forecast",
        "mixed": "cooking pasta while the cat watches",
    }
    for key, text in docs.items():
        await semantic.store.put_item([*ns, "docs"], key, {"text": text, "kind": "doc"})
    # not embedded: found by listing, never by a query
    await semantic.store.put_item([*ns, "docs"], "hidden", {"text": "python code"}, index=False)
    # another field than store.index.fields
    await semantic.store.put_item(
        [*ns, "docs"], "titled", {"title": "weather storm", "text": "x"}, index=["title"]
    )

    found = await semantic.store.search_items(ns, query="python software", limit=3)
    items = found["items"]
    assert items[0]["key"] == "code"
    scores = [item["score"] for item in items]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    assert scores[0] > 0.9 > scores[1]

    keys = [
        i["key"] for i in (await semantic.store.search_items(ns, query="cat", limit=2))["items"]
    ]
    assert keys == ["pets", "mixed"]
    keys = [
        i["key"] for i in (await semantic.store.search_items(ns, query="storm", limit=2))["items"]
    ]
    assert keys == ["titled", "weather"] or keys == ["weather", "titled"]
    # filter and query together; limit and offset over the ranking
    found = await semantic.store.search_items(ns, query="pizza", filter={"kind": "doc"}, limit=2)
    assert [i["key"] for i in found["items"]] == ["food", "mixed"]
    found = await semantic.store.search_items(ns, query="pizza", limit=1, offset=1)
    assert [i["key"] for i in found["items"]] == ["mixed"]
    everything = await semantic.store.search_items(ns, query="python code", limit=20)
    assert "hidden" not in {i["key"] for i in everything["items"]}
    listing = await semantic.store.search_items(ns, limit=20)
    assert "hidden" in {i["key"] for i in listing["items"]}
    assert all(i["score"] is None for i in listing["items"])

    # re-indexed on update, and gone with the item
    await semantic.store.put_item([*ns, "docs"], "food", {"text": "python bug report"})
    found = await semantic.store.search_items(ns, query="pizza cheese", limit=1)
    assert found["items"][0]["key"] != "food"
    await semantic.store.delete_item([*ns, "docs"], "code")
    found = await semantic.store.search_items(ns, query="python", limit=1)
    assert found["items"][0]["key"] == "food"


async def test_graphs_share_the_semantic_store(semantic: LangGraphClient) -> None:
    user = uuid.uuid4().hex
    await semantic.runs.wait(None, "store", input={"user": user, "note": "walk the dog"})
    await semantic.runs.wait(None, "store", input={"user": user, "note": "fix the python bug"})
    found = await semantic.store.search_items(["notes", user], query="puppy", limit=1)
    assert found["items"][0]["value"] == {"text": "walk the dog"}


def test_semantic_search_needs_pgvector(backend: str, tmp_path: Path) -> None:
    if backend != "postgres" or _pgvector_available():
        pytest.skip("only where PostgreSQL lacks pgvector")
    server = ServerProcess(config=_semantic_config(tmp_path), backend=backend)
    try:
        with pytest.raises(RuntimeError) as failure:
            server.start()
        assert "needs the pgvector extension" in str(failure.value)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("embed", "expected"),
    [
        ("openai:text-embedding-3-small", "looks like an embedding provider string"),
        ("cohere:embed-english-v3.0", "looks like an embedding provider string"),
        ("./embeddings.py", "must look like './path/to/file.py:function'"),
        ("./missing.py:embed", "file not found"),
        (f"{EMBEDDINGS}:nope", "has no attribute 'nope'"),
        (f"{EMBEDDINGS}:DIMS", "not a function"),
    ],
)
def test_bad_embed_stops_start_up(tmp_path: Path, embed: str, expected: str) -> None:
    config = _config(tmp_path, {"index": {"embed": embed, "dims": 4}})
    result = run_cli(
        "serve",
        "--config",
        str(config),
        "--port",
        str(serverproc.free_port()),
        "--database-uri",
        str(tmp_path / "db.sqlite"),
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "store.index.embed" in message and expected in message


# --- errors -----------------------------------------------------------------------------------
def _detail(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"}
    return str(body["detail"])


async def test_put_errors(http: httpx.AsyncClient) -> None:
    async def put(**body: Any) -> httpx.Response:
        return await http.put("/store/items", json={"key": "k", "value": {}, **body})

    detail = _detail(await put(namespace=["a.b"]), 422)
    assert detail == "Namespace label 'a.b' must be a non-empty string without periods"
    _detail(await put(namespace=["a", ""]), 422)
    assert _detail(await put(namespace=[]), 400) == "Namespace cannot be empty."
    assert "langgraph" in _detail(await put(namespace=["langgraph", "x"]), 422)
    _detail(await put(namespace=["a"], value=[1, 2]), 422)
    _detail(await put(namespace=["a"], value="text"), 422)
    _detail(await put(namespace=["a"], ttl=-1), 422)
    _detail(await put(namespace=["a"], ttl=0), 422)
    _detail(await put(namespace=["a"], index=True), 422)
    _detail(await put(namespace=["a"], value={"s": "nul\x00"}), 422)
    _detail(await put(namespace=["a", 1]), 422)
    _detail(await http.put("/store/items", json={"namespace": ["a"], "value": {}}), 422)
    _detail(await http.put("/store/items", json={"namespace": ["a"], "key": "k"}), 422)
    _detail(
        await http.put(
            "/store/items", content=b"{nope", headers={"content-type": "application/json"}
        ),
        422,
    )


async def test_get_and_delete_errors(http: httpx.AsyncClient) -> None:
    assert _detail(await http.get("/store/items", params={"namespace": "a"}), 400) == (
        "Key is required"
    )
    assert _detail(await http.get("/store/items", params={"key": "k"}), 400) == (
        "Namespace cannot be empty."
    )
    _detail(await http.get("/store/items", params={"namespace": "a..b", "key": "k"}), 422)
    _detail(
        await http.get(
            "/store/items", params=[("namespace", "a.b"), ("namespace", "c"), ("key", "k")]
        ),
        422,
    )
    _detail(
        await http.get("/store/items", params={"namespace": "a", "key": "k", "refresh_ttl": "x"}),
        422,
    )
    delete = await http.request("DELETE", "/store/items", json={"namespace": [], "key": "k"})
    assert _detail(delete, 400) == "Namespace cannot be empty."
    delete = await http.request("DELETE", "/store/items", json={"namespace": ["a.b"], "key": "k"})
    _detail(delete, 422)
    _detail(await http.request("DELETE", "/store/items", json={"namespace": ["a"]}), 422)


@pytest.mark.parametrize(
    "body",
    [
        {"namespace_prefix": ["a.b"]},
        {"filter": {"n": {"$regex": "x"}}},
        {"filter": {"n": {}}},
        {"filter": {"a.b": 1}},
        {"filter": {"a'b": 1}},
        {"filter": {"n": {"$gt": [1]}}},
        {"filter": {"n": {"$lt": True}}},
        {"filter": {"n": {"$gte": None}}},
        {"filter": "x"},
        {"limit": -1},
        {"limit": 1001},
        {"offset": -1},
    ],
)
async def test_search_errors(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    _detail(await http.post("/store/items/search", json=body), 422)


@pytest.mark.parametrize(
    "body",
    [
        {"prefix": ["a.b"]},
        {"suffix": ["a", ""]},
        {"max_depth": 0},
        {"limit": -1},
        {"offset": -1},
    ],
)
async def test_list_namespaces_errors(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    _detail(await http.post("/store/namespaces", json=body), 422)


async def test_a_bad_request_does_not_fail_its_neighbours(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    """The store batches concurrent operations; a refused one never reaches it."""
    ns = _ns()
    await client.store.put_item(ns, "k", {"n": 1})
    bad = http.post("/store/items/search", json={"filter": {"n": {"$regex": "."}}})
    results = await asyncio.gather(
        *(client.store.get_item(ns, "k") for _ in range(5)), bad, client.store.search_items(ns)
    )
    assert all(r["value"] == {"n": 1} for r in results[:5])
    assert results[5].status_code == 422
    assert len(results[6]["items"]) == 1
