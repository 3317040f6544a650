"""The Assistants API, driven through `langgraph_sdk` (and raw HTTP for statuses and headers)
against a real `threadline serve` process.

The server is shared by the whole session: every test tags what it creates with a unique
metadata value or name and filters on it.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from tests.serverproc import GRAPHS_CONFIG, ServerProcess
from threadline.ids import system_assistant_id

ASSISTANT_KEYS = {
    "assistant_id",
    "graph_id",
    "config",
    "context",
    "metadata",
    "name",
    "created_at",
    "updated_at",
    "version",
    "description",
}
VERSION_KEYS = ASSISTANT_KEYS - {"updated_at"}
SCHEMA_KEYS = {"input_schema", "output_schema", "state_schema", "config_schema", "context_schema"}
ECHO_ID = "046b5dc7-2108-582c-9c6c-31d556d138f0"  # the reference's id for graph "echo"
MISSING = "00000000-0000-0000-0000-000000000000"
GRAPHS = sorted(json.loads(GRAPHS_CONFIG.read_text())["graphs"])
BOTH = (
    "Cannot specify both configurable and context. Prefer setting context alone. Context "
    "was introduced in LangGraph 0.6.0 and is the long term planned replacement for "
    "configurable."
)


def tag() -> str:
    return uuid.uuid4().hex


def detail(exc: pytest.ExceptionInfo[Any]) -> Any:
    body = exc.value.body
    assert isinstance(body, dict), body
    return body["detail"]


def parse_ts(value: str) -> datetime.datetime:
    ts = datetime.datetime.fromisoformat(value)
    assert ts.utcoffset() == datetime.timedelta(0), value
    assert value.endswith("+00:00"), value
    return ts


# --- system assistants --------------------------------------------------------------


async def test_system_assistants_have_deterministic_ids(client: LangGraphClient) -> None:
    assert system_assistant_id("echo") == ECHO_ID
    found = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    by_graph = {a["graph_id"]: a for a in found}
    assert set(GRAPHS) <= set(by_graph)
    for graph_id in GRAPHS:
        assistant = by_graph[graph_id]
        assert assistant["assistant_id"] == system_assistant_id(graph_id)
        assert set(assistant) == ASSISTANT_KEYS
        assert assistant["name"] == graph_id
        assert assistant["config"] == {}
        assert assistant["context"] == {}
        assert assistant["metadata"] == {"created_by": "system"}
        assert assistant["description"] is None
        assert assistant["version"] == 1

    echo = await client.assistants.get(ECHO_ID)
    assert echo["graph_id"] == "echo"
    # Upper-case UUIDs name the same assistant.
    assert (await client.assistants.get(ECHO_ID.upper()))["assistant_id"] == ECHO_ID


async def test_graph_id_is_not_an_assistant_id_for_get(http: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/assistants/echo"),
        ("PATCH", "/assistants/echo"),
        ("DELETE", "/assistants/echo"),
        ("GET", "/assistants/echo/schemas"),
        ("GET", "/assistants/echo/subgraphs"),
        ("GET", "/assistants/sub/subgraphs/sub"),
        ("POST", "/assistants/echo/versions"),
        ("POST", "/assistants/echo/latest"),
    ]:
        body = {"version": 1} if path.endswith("latest") else {}
        r = await http.request(method, path, json=None if method in ("GET", "DELETE") else body)
        assert r.status_code == 422, (method, path, r.text)
        assert r.json() == {"detail": "Invalid assistant ID: must be a UUID"}


# --- create -------------------------------------------------------------------------


async def test_create_defaults_and_get(client: LangGraphClient) -> None:
    marker = tag()
    created = await client.assistants.create("echo", metadata={"t": marker})
    assert set(created) == ASSISTANT_KEYS
    assert uuid.UUID(created["assistant_id"])
    assert created["graph_id"] == "echo"
    assert created["name"] == "Untitled"
    assert created["description"] is None
    assert created["config"] == {}
    assert created["context"] == {}
    assert created["metadata"] == {"t": marker}
    assert created["version"] == 1
    assert parse_ts(created["created_at"]) == parse_ts(created["updated_at"])
    assert await client.assistants.get(created["assistant_id"]) == created


async def test_create_with_every_field(client: LangGraphClient) -> None:
    assistant_id = str(uuid.uuid4())
    created = await client.assistants.create(
        "slow",
        config={"tags": ["a"], "recursion_limit": 7, "configurable": {"steps": 2}},
        metadata={"t": tag(), "n": 1},
        assistant_id=assistant_id,
        name="Full",
        description="every field",
    )
    assert created["assistant_id"] == assistant_id
    assert created["name"] == "Full"
    assert created["description"] == "every field"
    assert created["config"] == {"tags": ["a"], "recursion_limit": 7, "configurable": {"steps": 2}}
    # config.configurable is mirrored into context...
    assert created["context"] == {"steps": 2}

    # ...and context into config.configurable.
    other = await client.assistants.create(
        "slow", config={"tags": ["b"]}, context={"delay": 0.01}, metadata={"t": tag()}
    )
    assert other["context"] == {"delay": 0.01}
    assert other["config"] == {"tags": ["b"], "configurable": {"delay": 0.01}}

    # Unknown config keys are kept as given.
    raw = await client.assistants.create("echo", config={"custom_key": 1})
    assert raw["config"] == {"custom_key": 1}


async def test_create_if_exists(client: LangGraphClient) -> None:
    first = await client.assistants.create("echo", metadata={"t": tag()}, name="first")
    assistant_id = first["assistant_id"]
    with pytest.raises(ConflictError) as exc:
        await client.assistants.create("slow", assistant_id=assistant_id)
    assert detail(exc) == f"Assistant {assistant_id} already exists"

    again = await client.assistants.create(
        "slow", assistant_id=assistant_id, if_exists="do_nothing", name="ignored"
    )
    assert again == first  # the existing assistant, the new body ignored
    assert (await client.assistants.get(assistant_id))["name"] == "first"


async def test_create_errors(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    with pytest.raises(NotFoundError) as exc:
        await client.assistants.create("nope")
    assert detail(exc) == f"Graph 'nope' not found. Expected one of: {GRAPHS}"

    with pytest.raises(BadRequestError) as exc:
        await client.assistants.create(
            "slow", config={"configurable": {"steps": 1}}, context={"steps": 2}
        )
    assert detail(exc) == BOTH

    with pytest.raises(UnprocessableEntityError) as exc:
        await client.assistants.create("echo", assistant_id="not-a-uuid")
    assert detail(exc) == "Invalid assistant ID: must be a UUID"

    cases: list[dict[str, Any]] = [
        {"name": "no graph"},
        {"graph_id": "echo", "if_exists": "bogus"},
        {"graph_id": "echo", "name": 5},
        {"graph_id": "echo", "name": None},
        {"graph_id": "echo", "metadata": None},
        {"graph_id": "echo", "metadata": []},
        {"graph_id": "echo", "config": {"recursion_limit": "many"}},
        {"graph_id": "echo", "config": {"configurable": None}},
    ]
    for body in cases:
        r = await http.post("/assistants", json=body)
        assert r.status_code == 422, (body, r.text)
        assert isinstance(r.json()["detail"], str)
    r = await http.post("/assistants", json={"name": "no graph"})
    assert "graph_id" in r.json()["detail"]

    r = await http.post(
        "/assistants", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json() == {"detail": "Invalid JSON in request body"}
    r = await http.post("/assistants")
    assert r.status_code == 422


# --- get / update / delete ----------------------------------------------------------


async def test_get_unknown(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    with pytest.raises(NotFoundError) as exc:
        await client.assistants.get(MISSING)
    assert detail(exc) == "Not Found"
    r = await http.get("/assistants/not-a-uuid")
    assert r.status_code == 422
    assert r.json() == {"detail": "Invalid assistant ID: must be a UUID"}


async def test_update_creates_versions(client: LangGraphClient) -> None:
    marker = tag()
    created = await client.assistants.create(
        "slow",
        config={"tags": ["t"], "recursion_limit": 5},
        metadata={"t": marker, "keep": 1},
        name="v1",
    )
    aid = created["assistant_id"]

    v2 = await client.assistants.update(aid, metadata={"extra": True}, name="v2")
    assert v2["version"] == 2
    assert v2["name"] == "v2"
    assert v2["metadata"] == {"t": marker, "keep": 1, "extra": True}  # merged
    assert v2["config"] == created["config"]
    assert v2["created_at"] == created["created_at"]
    assert parse_ts(v2["updated_at"]) > parse_ts(created["updated_at"])

    # A config replaces the config; its configurable is mirrored into context.
    v3 = await client.assistants.update(aid, config={"configurable": {"steps": 4}})
    assert v3["version"] == 3
    assert v3["config"] == {"configurable": {"steps": 4}}
    assert v3["context"] == {"steps": 4}

    # A context replaces the context and is mirrored into config.configurable.
    v4 = await client.assistants.update(aid, context={"steps": 7})
    assert v4["context"] == {"steps": 7}
    assert v4["config"] == {"configurable": {"steps": 7}}

    v5 = await client.assistants.update(aid, graph_id="echo", description="now echo")
    assert (v5["graph_id"], v5["description"], v5["version"]) == ("echo", "now echo", 5)

    # An empty patch still writes a version.
    v6 = await client.assistants.update(aid)
    assert v6["version"] == 6
    assert {k: v6[k] for k in ("config", "context", "name")} == {
        k: v5[k] for k in ("config", "context", "name")
    }
    assert await client.assistants.get(aid) == v6


async def test_update_context_keeps_other_config_keys(client: LangGraphClient) -> None:
    # Deliberate difference from the reference, which drops tags/recursion_limit here.
    created = await client.assistants.create(
        "slow", config={"tags": ["t"], "recursion_limit": 5}, context={"steps": 1}
    )
    updated = await client.assistants.update(created["assistant_id"], context={"steps": 9})
    assert updated["config"] == {"tags": ["t"], "recursion_limit": 5, "configurable": {"steps": 9}}
    assert updated["context"] == {"steps": 9}


async def test_update_errors(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    created = await client.assistants.create("slow", metadata={"t": tag()})
    aid = created["assistant_id"]
    with pytest.raises(NotFoundError) as exc:
        await client.assistants.update(MISSING, name="x")
    assert detail(exc) == f"Assistant {MISSING} not found"
    with pytest.raises(NotFoundError) as exc:
        await client.assistants.update(aid, graph_id="nope")
    assert detail(exc).startswith("Graph 'nope' not found. Expected one of: [")
    with pytest.raises(BadRequestError) as exc:
        await client.assistants.update(
            aid, config={"configurable": {"steps": 1}}, context={"steps": 2}
        )
    assert detail(exc) == BOTH
    r = await http.patch(f"/assistants/{aid}", json={"description": None})
    assert r.status_code == 422
    r = await http.patch("/assistants/nope", json={})
    assert r.status_code == 422
    assert r.json() == {"detail": "Invalid assistant ID: must be a UUID"}
    # Nothing above wrote a version.
    assert (await client.assistants.get(aid))["version"] == 1


async def test_delete(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    created = await client.assistants.create("echo", metadata={"t": tag()})
    aid = created["assistant_id"]
    await client.assistants.update(aid, name="second")

    r = await http.delete(f"/assistants/{aid}")
    assert r.status_code == 204
    assert r.content == b""

    with pytest.raises(NotFoundError) as exc:
        await client.assistants.delete(aid)
    assert detail(exc) == f"Assistant with ID {aid} not found"
    with pytest.raises(NotFoundError) as exc:
        await client.assistants.get(aid)
    assert detail(exc) == "Not Found"
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(aid)
    r = await http.delete("/assistants/not-a-uuid")
    assert r.status_code == 422


async def test_delete_with_threads(client: LangGraphClient) -> None:
    doomed = await client.assistants.create("echo", metadata={"t": tag()})
    kept = await client.assistants.create("echo", metadata={"t": tag()})
    doomed_threads = [str(uuid.uuid4()) for _ in range(2)]
    kept_thread = str(uuid.uuid4())
    hello = {"messages": [{"type": "human", "content": "hi"}]}
    for thread_id in doomed_threads:
        await client.runs.wait(
            thread_id, doomed["assistant_id"], input=hello, if_not_exists="create"
        )
    await client.runs.wait(kept_thread, kept["assistant_id"], input=hello, if_not_exists="create")

    await client.assistants.delete(doomed["assistant_id"], delete_threads=True)

    for thread_id in doomed_threads:
        with pytest.raises(NotFoundError):
            await client.runs.list(thread_id)
    assert len(await client.runs.list(kept_thread)) == 1
    # The checkpoints went too: the same thread id starts afresh.
    values = await client.runs.wait(
        doomed_threads[0], kept["assistant_id"], input=hello, if_not_exists="create"
    )
    assert isinstance(values, dict)
    assert len(values["messages"]) == 2


async def test_delete_with_threads_stops_their_runs(client: LangGraphClient) -> None:
    doomed = await client.assistants.create("slow", context={"steps": 100, "delay": 0.05})
    thread_id = str(uuid.uuid4())
    run = await client.runs.create(
        thread_id, doomed["assistant_id"], input={}, if_not_exists="create"
    )
    for _ in range(200):
        if (await client.runs.get(thread_id, run["run_id"]))["status"] == "running":
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the run never started")

    await client.assistants.delete(doomed["assistant_id"], delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.runs.list(thread_id)

    # The interrupted run left nothing behind on the thread id.
    fresh = await client.assistants.create("slow", context={"steps": 1, "delay": 0.01})
    values = await client.runs.wait(
        thread_id, fresh["assistant_id"], input={}, if_not_exists="create"
    )
    assert values == {"count": 1, "log": ["step-1"]}


async def test_assistant_config_reaches_runs(client: LangGraphClient) -> None:
    created = await client.assistants.create("slow", context={"steps": 1, "delay": 0.01})
    values = await client.runs.wait(None, created["assistant_id"], input={})
    assert values == {"count": 1, "log": ["step-1"]}


# --- search and count ---------------------------------------------------------------


async def _make_named(client: LangGraphClient, marker: str, names: list[str]) -> list[dict]:
    made = []
    for name in names:
        made.append(await client.assistants.create("echo", name=name, metadata={"t": marker}))
    return made


async def test_search_filters_and_sorting(client: LangGraphClient) -> None:
    marker = tag()
    made = await _make_named(client, marker, ["Zed", "alpha", "Beta", "_x"])
    slow = await client.assistants.create("slow", name="slow one", metadata={"t": marker})

    found = await client.assistants.search(metadata={"t": marker})
    # Newest first by default.
    assert [a["assistant_id"] for a in found] == [
        a["assistant_id"] for a in reversed([*made, slow])
    ]

    assert [
        a["name"] for a in await client.assistants.search(metadata={"t": marker}, graph_id="slow")
    ] == ["slow one"]

    # `name` is a case-insensitive substring; % and _ are literal.
    names = {a["name"] for a in await client.assistants.search(metadata={"t": marker}, name="A")}
    assert names == {"alpha", "Beta"}
    names = {a["name"] for a in await client.assistants.search(metadata={"t": marker}, name="_")}
    assert names == {"_x"}
    assert await client.assistants.search(metadata={"t": marker}, name="%") == []

    # Names sort case-insensitively.
    asc = await client.assistants.search(
        metadata={"t": marker}, graph_id="echo", sort_by="name", sort_order="asc"
    )
    assert [a["name"] for a in asc] == ["_x", "alpha", "Beta", "Zed"]
    desc = await client.assistants.search(
        metadata={"t": marker}, graph_id="echo", sort_by="name", sort_order="desc"
    )
    assert [a["name"] for a in desc] == ["Zed", "Beta", "alpha", "_x"]
    oldest = await client.assistants.search(metadata={"t": marker}, sort_order="asc")
    assert oldest[0]["assistant_id"] == made[0]["assistant_id"]

    projected = await client.assistants.search(
        metadata={"t": marker}, select=["name", "assistant_id"], limit=2
    )
    assert [set(a) for a in projected] == [{"assistant_id", "name"}] * 2


async def test_search_pagination(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    marker = tag()
    made = await _make_named(client, marker, [f"p{i}" for i in range(5)])
    newest_first = [a["assistant_id"] for a in reversed(made)]

    body = {"metadata": {"t": marker}, "limit": 2}
    r = await http.post("/assistants/search", json=body)
    assert r.status_code == 200
    assert [a["assistant_id"] for a in r.json()] == newest_first[:2]
    assert r.headers["X-Pagination-Total"] == "5"  # the true total
    assert r.headers["X-Pagination-Next"] == "2"

    r = await http.post("/assistants/search", json={**body, "offset": 4})
    assert [a["assistant_id"] for a in r.json()] == newest_first[4:]
    assert r.headers["X-Pagination-Total"] == "5"
    assert "X-Pagination-Next" not in r.headers

    r = await http.post("/assistants/search", json={**body, "offset": 10})
    assert r.json() == []
    assert r.headers["X-Pagination-Total"] == "5"

    page = await client.assistants.search(
        metadata={"t": marker}, limit=3, offset=0, response_format="object"
    )
    assert isinstance(page, dict)
    assert page["next"] == "3"
    assert len(page["assistants"]) == 3


async def test_search_errors(http: httpx.AsyncClient) -> None:
    for body in [
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"sort_by": "nope"},
        {"sort_order": "up"},
        {"select": ["nope"]},
    ]:
        r = await http.post("/assistants/search", json=body)
        assert r.status_code == 422, (body, r.text)
    r = await http.post("/assistants/search", json={"limit": 1000})
    assert r.status_code == 200
    r = await http.post("/assistants/search", json={"graph_id": "nope"})
    assert r.status_code == 404
    assert r.json()["detail"] == f"Graph 'nope' not found. Expected one of: {GRAPHS}"


async def test_count(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    marker = tag()
    await _make_named(client, marker, ["one", "two", "three"])
    await client.assistants.create("slow", name="four", metadata={"t": marker})
    assert await client.assistants.count(metadata={"t": marker}) == 4
    assert await client.assistants.count(metadata={"t": marker}, graph_id="echo") == 3
    assert await client.assistants.count(metadata={"t": marker}, name="O") == 3
    assert await client.assistants.count(metadata={"t": tag()}) == 0
    assert await client.assistants.count() >= len(GRAPHS)

    r = await http.post("/assistants/count", json={"metadata": {"t": marker}})
    assert r.status_code == 200
    assert r.content == b"4"  # a bare integer
    r = await http.post("/assistants/count", json={"graph_id": "nope"})
    assert r.status_code == 404


# --- versions -----------------------------------------------------------------------


async def test_versions(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    created = await client.assistants.create("echo", metadata={"stage": "a"}, name="n1")
    aid = created["assistant_id"]
    await client.assistants.update(aid, name="n2")
    await client.assistants.update(aid, name="n3", metadata={"stage": "b"})

    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [3, 2, 1]  # newest first
    assert [v["name"] for v in versions] == ["n3", "n2", "n1"]
    assert all(set(v) == VERSION_KEYS for v in versions)
    assert versions[2]["created_at"] == created["created_at"]

    paged = await client.assistants.get_versions(aid, limit=1, offset=1)
    assert [v["version"] for v in paged] == [2]
    staged = await client.assistants.get_versions(aid, metadata={"stage": "a"})
    assert [v["version"] for v in staged] == [2, 1]
    # Deliberate fix: the reference answers 404 when the filter matches nothing.
    assert await client.assistants.get_versions(aid, metadata={"stage": "zzz"}) == []

    # The body is optional.
    r = await http.post(f"/assistants/{aid}/versions")
    assert r.status_code == 200
    assert len(r.json()) == 3

    with pytest.raises(NotFoundError) as exc:
        await client.assistants.get_versions(MISSING)
    assert detail(exc) == f"Assistant {MISSING} not found"
    r = await http.post(f"/assistants/{aid}/versions", json={"limit": 0})
    assert r.status_code == 422


async def test_set_latest(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    created = await client.assistants.create(
        "slow", context={"steps": 1}, metadata={"m": 1}, name="first"
    )
    aid = created["assistant_id"]
    await client.assistants.update(aid, context={"steps": 2}, metadata={"m": 2}, name="second")

    back = await client.assistants.set_latest(aid, 1)
    assert back["version"] == 1
    assert back["name"] == "first"
    assert back["metadata"] == {"m": 1}
    assert back["config"] == {"configurable": {"steps": 1}}
    # Deliberate fix: the reference keeps the replaced version's context here.
    assert back["context"] == {"steps": 1}
    assert parse_ts(back["updated_at"]) > parse_ts(created["updated_at"])
    assert await client.assistants.get(aid) == back
    # The versions themselves are untouched; a new update continues from the highest.
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [2, 1]
    assert (await client.assistants.update(aid))["version"] == 3

    # The openapi of the reference documents a query parameter; it works too.
    r = await http.post(f"/assistants/{aid}/latest", params={"version": 2})
    assert r.status_code == 200
    assert r.json()["name"] == "second"

    with pytest.raises(NotFoundError) as exc:
        await client.assistants.set_latest(aid, 99)
    assert detail(exc) == f"Version 99 not found for assistant {aid}"
    with pytest.raises(NotFoundError) as exc:
        await client.assistants.set_latest(MISSING, 1)
    assert detail(exc) == f"Assistant {MISSING} not found"
    r = await http.post(f"/assistants/{aid}/latest", json={})
    assert r.status_code == 422
    r = await http.post(f"/assistants/{aid}/latest", json={"version": "x"})
    assert r.status_code == 422


# --- graph, schemas, subgraphs ------------------------------------------------------


async def test_graph(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    drawn = await client.assistants.get_graph(ECHO_ID)
    assert drawn == {
        "nodes": [
            {"id": "__start__", "type": "runnable", "data": {"name": "__start__"}},
            {"id": "echo", "type": "runnable", "data": {"name": "echo"}},
            {"id": "__end__"},
        ],
        "edges": [
            {"source": "__start__", "target": "echo"},
            {"source": "echo", "target": "__end__"},
        ],
    }
    # A graph id stands for its system assistant here.
    assert await client.assistants.get_graph("echo") == drawn

    slow = await client.assistants.get_graph("slow")
    assert {"source": "loop", "target": "loop", "conditional": True} in slow["edges"]

    flat = await client.assistants.get_graph("sub")
    assert [n["id"] for n in flat["nodes"]] == ["__start__", "prep", "sub", "__end__"]
    for xray in (True, 1, 2):
        expanded = await client.assistants.get_graph("sub", xray=xray)
        assert [n["id"] for n in expanded["nodes"]] == ["__start__", "prep", "__end__", "sub:inner"]
        assert {"source": "prep", "target": "sub:inner"} in expanded["edges"]

    # A factory graph is built with the assistant's config.
    factory = await client.assistants.create("factory", context={"greeting": "yo"})
    drawn = await client.assistants.get_graph(factory["assistant_id"])
    assert [n["id"] for n in drawn["nodes"]] == ["__start__", "greet", "__end__"]

    for bad in ("0", "-1", "maybe"):
        r = await http.get("/assistants/sub/graph", params={"xray": bad})
        assert r.status_code == 422
        assert r.json() == {"detail": "Invalid xray value"}
    r = await http.get("/assistants/nope/graph")
    assert r.status_code == 422
    assert r.json() == {"detail": "Invalid assistant ID: must be a UUID"}
    with pytest.raises(NotFoundError) as exc:
        await client.assistants.get_graph(MISSING)
    assert detail(exc) == "Not Found"


async def test_schemas(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    slow = await client.assistants.get_schemas(system_assistant_id("slow"))
    assert set(slow) == {"graph_id", *SCHEMA_KEYS}
    assert slow["graph_id"] == "slow"
    assert slow["state_schema"] == {
        "properties": {
            "count": {"default": None, "title": "Count", "type": "integer"},
            "log": {"default": None, "items": {"type": "string"}, "title": "Log", "type": "array"},
        },
        "title": "slow_state",
        "type": "object",
    }
    assert slow["input_schema"]["title"] == "State"
    assert set(slow["input_schema"]["properties"]) == {"count", "log"}
    assert slow["output_schema"] == slow["input_schema"]
    context = {
        "properties": {
            "steps": {"title": "Steps", "type": "integer"},
            "delay": {"title": "Delay", "type": "number"},
        },
        "title": "Context",
        "type": "object",
    }
    assert slow["context_schema"] == context
    assert slow["config_schema"] == context

    echo = await client.assistants.get_schemas(ECHO_ID)
    assert echo["context_schema"] is None
    assert echo["config_schema"] == {}
    assert echo["state_schema"]["title"] == "echo_state"
    assert "messages" in echo["state_schema"]["properties"]
    assert "AIMessage" in echo["state_schema"]["$defs"]

    # A user assistant, and a graph built by a factory.
    mine = await client.assistants.create("factory_async", context={"greeting": "hey"})
    schemas = await client.assistants.get_schemas(mine["assistant_id"])
    assert schemas["graph_id"] == "factory_async"
    assert schemas["state_schema"]["title"] == "factory_async_state"

    with pytest.raises(NotFoundError) as exc:
        await client.assistants.get_schemas(MISSING)
    assert detail(exc) == "Not Found"


async def test_subgraphs(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    sub_id = system_assistant_id("sub")
    found = await client.assistants.get_subgraphs(sub_id)
    assert set(found) == {"sub"}
    assert set(found["sub"]) == SCHEMA_KEYS
    assert found["sub"]["state_schema"]["title"] == "LangGraphState"
    assert set(found["sub"]["state_schema"]["properties"]) == {"trail"}
    assert found["sub"]["context_schema"] is None

    assert await client.assistants.get_subgraphs(sub_id, recurse=True) == found
    assert await client.assistants.get_subgraphs(sub_id, namespace="sub") == found
    assert await client.assistants.get_subgraphs(sub_id, namespace="nope") == {}
    assert await client.assistants.get_subgraphs(ECHO_ID) == {}

    with pytest.raises(NotFoundError) as exc:
        await client.assistants.get_subgraphs(MISSING)
    assert detail(exc) == "Not Found"
    r = await http.get("/assistants/sub/subgraphs")
    assert r.status_code == 422


# --- documentation ------------------------------------------------------------------


async def test_openapi_documents_assistant_bodies(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    create = schemas["AssistantCreate"]
    assert create["required"] == ["graph_id"]
    assert create["properties"]["if_exists"]["enum"] == ["raise", "do_nothing"]
    search = schemas["AssistantSearchRequest"]["properties"]
    assert (search["limit"]["minimum"], search["limit"]["maximum"]) == (1, 1000)
    assert "enum" in str(search["sort_by"])
    paths = spec["paths"]
    for path in [
        "/assistants",
        "/assistants/search",
        "/assistants/count",
        "/assistants/{assistant_id}",
        "/assistants/{assistant_id}/graph",
        "/assistants/{assistant_id}/schemas",
        "/assistants/{assistant_id}/subgraphs",
        "/assistants/{assistant_id}/subgraphs/{namespace}",
        "/assistants/{assistant_id}/versions",
        "/assistants/{assistant_id}/latest",
    ]:
        assert path in paths, path


# --- system assistants on a server of their own -------------------------------------


@pytest.fixture
async def own_server(backend: str) -> AsyncIterator[ServerProcess]:
    proc = ServerProcess(jobs=0, backend=backend).start()
    yield proc
    proc.stop()


async def test_system_assistant_can_be_deleted_and_comes_back(own_server: ServerProcess) -> None:
    sdk = get_client(url=own_server.url, api_key=None)
    try:
        await sdk.assistants.delete(ECHO_ID)
        with pytest.raises(NotFoundError):
            await sdk.assistants.get(ECHO_ID)
        with pytest.raises(NotFoundError):
            await sdk.assistants.get_graph("echo")
    finally:
        await sdk.http.client.aclose()

    own_server.restart()
    sdk = get_client(url=own_server.url, api_key=None)
    try:
        echo = await sdk.assistants.get(ECHO_ID)
        assert echo["graph_id"] == "echo"
        assert echo["version"] == 1
    finally:
        await sdk.http.client.aclose()
