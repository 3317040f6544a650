"""The Threads API, driven through `langgraph_sdk` (and raw HTTP for statuses, headers and
bodies the SDK hides) against a real `threadline serve` process.

State is written with update_state and create-time supersteps, not with runs. The server
is shared: every test tags what it creates with a unique metadata value and filters on it.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, cast

import httpx
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_sdk import get_client
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from tests.graphs import echo, hitl
from tests.serverproc import ServerProcess
from threadline.core.errors import InvalidInput
from threadline.core.state import snapshot_to_json, thread_summary_from_snapshot
from threadline.core.threads import extract_values, parse_extract

THREAD_KEYS = {
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "status",
    "config",
    "values",
    "interrupts",
    "error",
}
STATE_KEYS = {
    "values",
    "next",
    "tasks",
    "metadata",
    "created_at",
    "checkpoint",
    "parent_checkpoint",
    "interrupts",
    "checkpoint_id",
    "parent_checkpoint_id",
}
EMPTY_STATE: dict[str, Any] = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}
NO_GRAPH = "has no assigned graph ID"
# The SDK's TypedDicts lag behind the wire format (no `config` on Thread, no
# `checkpoint_id` on ThreadState...), so results are checked as plain JSON.
Client = Any


def marker() -> dict[str, str]:
    return {"test_marker": uuid.uuid4().hex}


def human(text: str) -> dict[str, Any]:
    return {"type": "human", "content": text}


def ai(text: str) -> dict[str, Any]:
    return {"type": "ai", "content": text}


def contents(values: dict[str, Any]) -> list[str]:
    return [m["content"] for m in values.get("messages", [])]


async def echo_thread(client: Client, **metadata: Any) -> dict[str, Any]:
    """An echo thread with three checkpoints: input "a", reply "b", input "c"."""
    thread = await client.threads.create(metadata={"graph_id": "echo", **metadata})
    tid = thread["thread_id"]
    await client.threads.update_state(tid, {"messages": [human("a")]})
    await client.threads.update_state(tid, {"messages": [ai("b")]}, as_node="echo")
    await client.threads.update_state(tid, {"messages": [human("c")]}, as_node="__start__")
    return thread


# --- create, get, patch, delete -------------------------------------------------------


async def test_create_and_get(client: Client) -> None:
    tag = marker()
    thread = await client.threads.create(metadata=tag)
    assert set(thread) == THREAD_KEYS
    assert thread["metadata"] == tag
    assert thread["status"] == "idle"
    assert thread["values"] is None
    assert thread["config"] == {}
    assert thread["interrupts"] == {}
    assert uuid.UUID(thread["thread_id"]).version == 7
    created = datetime.datetime.fromisoformat(thread["created_at"])
    assert created.tzinfo is not None and thread["created_at"].endswith("+00:00")
    assert await client.threads.get(thread["thread_id"]) == thread


async def test_create_with_id_and_if_exists(client: Client, http: httpx.AsyncClient) -> None:
    tid = str(uuid.uuid4())
    first = await client.threads.create(thread_id=tid, metadata={"n": 1})
    assert first["thread_id"] == tid
    with pytest.raises(ConflictError) as exc:
        await client.threads.create(thread_id=tid)
    assert exc.value.response.json() == {"detail": f"Thread with ID {tid} already exists"}
    again = await client.threads.create(thread_id=tid, metadata={"n": 2}, if_exists="do_nothing")
    assert again == first  # the existing thread; the new metadata is ignored

    r = await http.post("/threads", json={"thread_id": "not-a-uuid"})
    assert r.status_code == 422
    assert r.json() == {"detail": "Invalid thread ID: must be a UUID"}
    r = await http.post("/threads", content=b"")
    assert r.status_code == 422
    r = await http.post("/threads", json={"if_exists": "sometimes"})
    assert r.status_code == 422


async def test_patch_merges_metadata(client: Client, http: httpx.AsyncClient) -> None:
    thread = await client.threads.create(metadata={"a": 1, "b": 1})
    tid = thread["thread_id"]
    patched = await client.threads.update(tid, metadata={"b": 2, "c": 3})
    assert patched["metadata"] == {"a": 1, "b": 2, "c": 3}
    assert patched["updated_at"] > thread["updated_at"]
    assert patched["created_at"] == thread["created_at"]
    assert await client.threads.update(tid, metadata={"d": 4}, return_minimal=True) is None
    assert (await client.threads.get(tid))["metadata"] == {"a": 1, "b": 2, "c": 3, "d": 4}

    missing = str(uuid.uuid4())
    r = await http.patch(f"/threads/{missing}", json={"metadata": {}})
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})


async def test_ttl(client: Client, http: httpx.AsyncClient) -> None:
    thread = await client.threads.create(ttl=30)
    tid = thread["thread_id"]
    r = await http.get(f"/threads/{tid}", params={"include": "ttl"})
    ttl = r.json()["ttl"]
    assert ttl["strategy"] == "delete" and ttl["ttl_minutes"] == 30
    created = datetime.datetime.fromisoformat(thread["created_at"])
    expires = datetime.datetime.fromisoformat(ttl["expires_at"])
    assert abs((expires - created) - datetime.timedelta(minutes=30)) < datetime.timedelta(seconds=5)
    assert "ttl" not in (await http.get(f"/threads/{tid}")).json()

    await client.threads.update(tid, metadata={}, ttl={"strategy": "delete", "ttl": 120})
    ttl = (await http.get(f"/threads/{tid}", params={"include": "ttl"})).json()["ttl"]
    assert ttl["ttl_minutes"] == 120
    assert datetime.datetime.fromisoformat(ttl["expires_at"]) - created > datetime.timedelta(
        minutes=110
    )
    plain = await client.threads.create()
    r = await http.get(f"/threads/{plain['thread_id']}", params={"include": "ttl"})
    assert "ttl" not in r.json()


async def test_delete_removes_thread_and_checkpoints(
    client: Client, http: httpx.AsyncClient
) -> None:
    thread = await echo_thread(client)
    tid = thread["thread_id"]
    r = await http.delete(f"/threads/{tid}")
    assert (r.status_code, r.content) == (204, b"")
    with pytest.raises(NotFoundError) as exc:
        await client.threads.get(tid)
    assert exc.value.response.json() == {"detail": f"Thread with ID {tid} not found"}
    with pytest.raises(NotFoundError):
        await client.threads.delete(tid)
    # A new thread under the same id starts from nothing: the checkpoints went too.
    await client.threads.create(thread_id=tid, metadata={"graph_id": "echo"})
    assert await client.threads.get_state(tid) == EMPTY_STATE
    assert await client.threads.get_history(tid) == []


async def test_unknown_and_invalid_ids(client: Client, http: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    not_found = {"detail": f"Thread with ID {missing} not found"}
    for call in (
        client.threads.get(missing),
        client.threads.get_state(missing),
        client.threads.get_history(missing),
        client.threads.update_state(missing, {"messages": []}),
        client.threads.delete(missing),
    ):
        with pytest.raises(NotFoundError) as exc:
            await call
        assert exc.value.response.json() == not_found
    r = await http.get(f"/threads/{missing}/history")
    assert (r.status_code, r.json()) == (404, not_found)
    with pytest.raises(ConflictError) as conflict:
        await client.threads.copy(missing)
    assert conflict.value.response.json() == {"detail": "Conflict"}

    invalid = {"detail": "Invalid thread ID: must be a UUID"}
    with pytest.raises(UnprocessableEntityError) as unprocessable:
        await client.threads.get("nope")
    assert unprocessable.value.response.json() == invalid
    for method, path in (
        ("GET", "/threads/nope"),
        ("PATCH", "/threads/nope"),
        ("DELETE", "/threads/nope"),
        ("GET", "/threads/nope/state"),
        ("POST", "/threads/nope/state"),
        ("GET", "/threads/nope/history"),
        ("POST", "/threads/nope/history"),
        ("POST", "/threads/nope/copy"),
    ):
        body: dict[str, Any] | None = None if method in ("GET", "DELETE") else {}
        r = await http.request(method, path, json=body)
        assert (r.status_code, r.json()) == (422, invalid), (method, path)


# --- search and count -----------------------------------------------------------------


async def test_search_filters_and_pagination(client: Client, http: httpx.AsyncClient) -> None:
    tag = marker()
    made = [await client.threads.create(metadata={**tag, "i": i}) for i in range(5)]
    found = await client.threads.search(metadata=tag, limit=10)
    assert [t["thread_id"] for t in found] == [t["thread_id"] for t in reversed(made)]

    r = await http.post("/threads/search", json={"metadata": tag, "limit": 2, "offset": 0})
    assert len(r.json()) == 2
    assert r.headers["X-Pagination-Total"] == "5"
    assert r.headers["X-Pagination-Next"] == "2"
    r = await http.post("/threads/search", json={"metadata": tag, "limit": 2, "offset": 4})
    assert len(r.json()) == 1
    assert r.headers["X-Pagination-Total"] == "5"
    assert "X-Pagination-Next" not in r.headers

    asc = await client.threads.search(metadata=tag, sort_by="thread_id", sort_order="asc")
    assert [t["thread_id"] for t in asc] == sorted(t["thread_id"] for t in made)
    one = await client.threads.search(metadata={**tag, "i": 3})
    assert [t["thread_id"] for t in one] == [made[3]["thread_id"]]
    ids = [made[0]["thread_id"], made[4]["thread_id"]]
    by_id = await client.threads.search(ids=ids, metadata=tag)
    assert {t["thread_id"] for t in by_id} == set(ids)
    assert await client.threads.search(metadata=tag, status="busy") == []
    assert len(await client.threads.search(metadata=tag, status="idle")) == 5

    assert await client.threads.count(metadata=tag) == 5
    assert await client.threads.count(metadata={**tag, "i": 1}) == 1
    assert await client.threads.count(metadata=tag, status="interrupted") == 0

    r = await http.post("/threads/search", json={"limit": 1001})
    assert r.status_code == 422
    r = await http.post("/threads/search", json={"limit": 0})
    assert r.status_code == 422
    r = await http.post("/threads/search", json={"ids": ["nope"]})
    assert r.status_code == 400


async def test_search_values_select_extract(client: Client, http: httpx.AsyncClient) -> None:
    tag = marker()
    thread = await echo_thread(client, **tag)
    tid = thread["thread_id"]
    await client.threads.create(metadata={**tag, "graph_id": "echo"})  # never written

    hits = await client.threads.search(metadata=tag, values={"messages": [{"content": "b"}]})
    assert [t["thread_id"] for t in hits] == [tid]
    # A list-valued filter is containment, not a server error.
    hits = await client.threads.search(metadata=tag, values={"messages": []})
    assert [t["thread_id"] for t in hits] == [tid]
    assert await client.threads.search(metadata=tag, values={"messages": [{"content": "zz"}]}) == []
    assert await client.threads.count(metadata=tag, values={"messages": []}) == 1
    assert await client.threads.count(metadata=tag, values={"nothing": 1}) == 0

    projected = await client.threads.search(
        metadata=tag,
        values={"messages": []},
        select=["thread_id", "status"],
        extract={
            "last": "values.messages[-1].content",
            "first_type": "values.messages[0].type",
            "graph": "metadata.graph_id",
            "absent": "values.messages[10].content",
        },
    )
    assert projected == [
        {
            "thread_id": tid,
            "status": "interrupted",
            "extracted": {"last": "c", "first_type": "human", "graph": "echo", "absent": None},
        }
    ]
    r = await http.post("/threads/search", json={"extract": {"x": "bogus.path"}})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "Extract path 'bogus.path' must start with one of: config, interrupts, metadata, values"
    )
    r = await http.post("/threads/search", json={"select": ["nope"]})
    assert r.status_code == 422


def test_extract_paths() -> None:
    paths = parse_extract({"a": "values.messages[-1].content", "b": "metadata.x.y", "c": "values"})
    assert paths == {
        "a": ["values", "messages", -1, "content"],
        "b": ["metadata", "x", "y"],
        "c": ["values"],
    }
    thread = {"values": {"messages": [{"content": "hi"}]}, "metadata": {"x": 1}}
    assert extract_values(thread, paths) == {
        "a": "hi",
        "b": None,
        "c": {"messages": [{"content": "hi"}]},
    }
    for bad in ("values..x", "values[x]", "values.a[", "status", ""):
        with pytest.raises(InvalidInput):
            parse_extract({"x": bad})


# --- state ----------------------------------------------------------------------------


async def test_never_run_state_and_history(client: Client) -> None:
    for metadata in ({}, {"graph_id": "echo"}):
        thread = await client.threads.create(metadata=metadata)
        assert await client.threads.get_state(thread["thread_id"]) == EMPTY_STATE
        assert await client.threads.get_history(thread["thread_id"]) == []


async def test_create_with_supersteps(client: Client) -> None:
    tag = marker()
    thread = await client.threads.create(
        metadata={**tag, "graph_id": "echo"},
        supersteps=[
            {"updates": [{"values": {"messages": [human("hi")]}, "as_node": "__start__"}]},
            {"updates": [{"values": {"messages": [ai("yo")]}, "as_node": "echo"}]},
        ],
    )
    assert contents(thread["values"]) == ["hi", "yo"]
    assert thread["status"] == "idle"
    state = await client.threads.get_state(thread["thread_id"])
    assert set(state) == STATE_KEYS
    assert contents(state["values"]) == ["hi", "yo"]
    assert state["next"] == []
    message = state["values"]["messages"][1]
    assert message["type"] == "ai" and {"id", "tool_calls", "additional_kwargs"} <= set(message)
    assert len(await client.threads.get_history(thread["thread_id"])) == 2


async def test_supersteps_with_command(client: Client) -> None:
    thread = await client.threads.create(
        graph_id="hitl",
        supersteps=[
            {
                "updates": [
                    {
                        "values": None,
                        "command": {"update": {"question": "Q?"}, "goto": "review"},
                        "as_node": "ask",
                    }
                ]
            }
        ],
    )
    assert thread["values"]["question"] == "Q?"
    assert thread["status"] == "interrupted"  # work is pending
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["review"]
    assert [t["name"] for t in state["tasks"]] == ["review"]


async def test_supersteps_errors_leave_no_thread(client: Client, http: httpx.AsyncClient) -> None:
    tag = marker()
    steps = [{"updates": [{"values": {"messages": []}, "as_node": "__start__"}]}]
    r = await http.post("/threads", json={"metadata": tag, "supersteps": steps})
    assert r.status_code == 400
    assert NO_GRAPH in r.json()["detail"]
    bad_node = [{"updates": [{"values": {"messages": []}, "as_node": "nope"}]}]
    r = await http.post(
        "/threads", json={"metadata": {**tag, "graph_id": "echo"}, "supersteps": bad_node}
    )
    assert (r.status_code, r.json()) == (400, {"detail": "Node nope does not exist"})
    assert await client.threads.count(metadata=tag) == 0


async def test_update_state(client: Client, http: httpx.AsyncClient) -> None:
    thread = await client.threads.create(graph_id="echo")
    tid = thread["thread_id"]
    result = await client.threads.update_state(tid, {"messages": [human("a")]})
    cid = result["checkpoint_id"]
    expected = {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": cid}
    assert result == {"checkpoint": expected, "configurable": expected, "checkpoint_id": cid}

    row = await client.threads.get(tid)
    assert contents(row["values"]) == ["a"]
    assert row["status"] == "interrupted"  # `echo` is scheduled next
    assert row["state_updated_at"] > thread["state_updated_at"]
    state = await client.threads.get_state(tid)
    assert state["next"] == ["echo"]
    assert state["checkpoint_id"] == cid
    assert state["checkpoint"] == {"checkpoint_id": cid, "thread_id": tid, "checkpoint_ns": ""}
    assert state["metadata"]["source"] == "update"
    assert state["metadata"]["graph_id"] == "echo"

    await client.threads.update_state(tid, {"messages": [ai("b")]}, as_node="echo")
    row = await client.threads.get(tid)
    assert contents(row["values"]) == ["a", "b"]
    assert row["status"] == "idle"
    state = await client.threads.get_state(tid)
    assert state["next"] == []
    assert state["parent_checkpoint_id"] == cid
    assert state["parent_checkpoint"]["checkpoint_id"] == cid

    with pytest.raises(BadRequestError) as exc:
        await client.threads.update_state(tid, {"messages": []}, as_node="nope")
    assert exc.value.response.json() == {"detail": "Node nope does not exist"}
    r = await http.post(f"/threads/{tid}/state", json={"values": [{"messages": []}]})
    assert r.status_code == 400

    graphless = await client.threads.create()
    with pytest.raises(BadRequestError) as exc:
        await client.threads.update_state(graphless["thread_id"], {"messages": []})
    detail = exc.value.response.json()["detail"]
    assert detail.startswith(f"Thread '{graphless['thread_id']}' {NO_GRAPH}.")


async def test_update_state_forks(client: Client) -> None:
    thread = await client.threads.create(graph_id="echo")
    tid = thread["thread_id"]
    first = await client.threads.update_state(tid, {"messages": [human("a")]})
    await client.threads.update_state(tid, {"messages": [ai("b")]}, as_node="echo")

    fork = await client.threads.update_state(
        tid, {"messages": [human("fork")]}, checkpoint={"checkpoint_id": first["checkpoint_id"]}
    )
    state = await client.threads.get_state(tid)
    assert state["checkpoint_id"] == fork["checkpoint_id"]
    assert state["parent_checkpoint_id"] == first["checkpoint_id"]
    assert contents(state["values"]) == ["a", "fork"]
    assert contents((await client.threads.get(tid))["values"]) == ["a", "fork"]

    # The deprecated checkpoint_id argument forks too.
    fork2 = await client.threads.update_state(
        tid, {"messages": [human("fork2")]}, checkpoint_id=first["checkpoint_id"]
    )
    state = await client.threads.get_state(tid)
    assert state["checkpoint_id"] == fork2["checkpoint_id"]
    assert contents(state["values"]) == ["a", "fork2"]


async def test_state_at_checkpoint(client: Client, http: httpx.AsyncClient) -> None:
    thread = await client.threads.create(graph_id="echo")
    tid = thread["thread_id"]
    first = await client.threads.update_state(tid, {"messages": [human("a")]})
    await client.threads.update_state(tid, {"messages": [ai("b")]}, as_node="echo")
    cid = first["checkpoint_id"]

    by_get = await client.threads.get_state(tid, checkpoint_id=cid)
    by_post = await client.threads.get_state(tid, checkpoint={"checkpoint_id": cid})
    assert by_get == by_post
    assert by_get["checkpoint_id"] == cid
    assert contents(by_get["values"]) == ["a"]
    assert by_get["next"] == ["echo"]
    # At a past checkpoint the task shows what it went on to write.
    assert by_get["tasks"][0]["result"] == {"messages": [ai("b")]}

    r = await http.post(f"/threads/{tid}/state/checkpoint", json={})
    assert r.status_code == 422


async def test_state_select(client: Client, http: httpx.AsyncClient) -> None:
    thread = await echo_thread(client)
    tid = thread["thread_id"]
    state = await client.threads.get_state(tid, select=["values.messages", "next"])
    assert set(state) == {"values", "next"}
    assert contents(state["values"]) == ["a", "b", "c"]
    history = await client.threads.get_history(tid, limit=2, select=["checkpoint", "metadata"])
    assert len(history) == 2 and all(set(s) == {"checkpoint", "metadata"} for s in history)
    r = await http.get(f"/threads/{tid}/state", params={"select": ["bogus"]})
    assert r.status_code == 422


async def test_subgraph_state(client: Client) -> None:
    thread = await client.threads.create(
        graph_id="sub",
        supersteps=[{"updates": [{"values": {"trail": ["x"]}, "as_node": "prep"}]}],
    )
    tid = thread["thread_id"]
    state = await client.threads.get_state(tid)
    assert state["next"] == ["sub"]
    (task,) = state["tasks"]
    assert task["name"] == "sub" and task["path"] == ["__pregel_pull", "sub"]
    assert task["checkpoint"] == {"thread_id": tid, "checkpoint_ns": f"sub:{task['id']}"}
    assert task["state"] is None
    nested = await client.threads.get_state(tid, subgraphs=True)
    (task,) = nested["tasks"]
    assert task["checkpoint"] is None
    assert task["state"] == EMPTY_STATE  # the subgraph has not run yet


# --- history --------------------------------------------------------------------------


async def test_history(client: Client, http: httpx.AsyncClient) -> None:
    thread = await echo_thread(client)
    tid = thread["thread_id"]
    history = await client.threads.get_history(tid)  # the SDK asks for 10
    assert [contents(s["values"]) for s in history] == [["a", "b", "c"], ["a", "b"], ["a"]]
    assert all(set(s) == STATE_KEYS for s in history)
    newest, middle, oldest = (s["checkpoint_id"] for s in history)
    assert history[0]["parent_checkpoint_id"] == middle
    assert history[2]["parent_checkpoint"] is None

    r = await http.get(f"/threads/{tid}/history")
    assert [s["checkpoint_id"] for s in r.json()] == [newest]  # GET defaults to 1
    r = await http.get(f"/threads/{tid}/history", params={"limit": 5, "before": newest})
    assert [s["checkpoint_id"] for s in r.json()] == [middle, oldest]

    two = await client.threads.get_history(tid, limit=2)
    assert [s["checkpoint_id"] for s in two] == [newest, middle]
    # `before` as a checkpoint id, as {"configurable": ...} and as a CheckpointConfig.
    for before in (
        middle,
        {"configurable": {"checkpoint_id": middle}},
        {"checkpoint_id": middle},
    ):
        r = await http.post(f"/threads/{tid}/history", json={"limit": 10, "before": before})
        assert r.status_code == 200, before
        assert [s["checkpoint_id"] for s in r.json()] == [oldest], before
    sdk_before = await client.threads.get_history(tid, before={"checkpoint_id": newest})
    assert [s["checkpoint_id"] for s in sdk_before] == [middle, oldest]

    by_step = await client.threads.get_history(tid, metadata={"step": 1})
    assert [s["checkpoint_id"] for s in by_step] == [middle]
    assert await client.threads.get_history(tid, metadata={"source": "loop"}) == []
    one = await client.threads.get_history(tid, checkpoint={"checkpoint_id": middle})
    assert [s["checkpoint_id"] for s in one] == [middle]

    r = await http.post(f"/threads/{tid}/history", json={"limit": 0})
    assert r.status_code == 422


# --- copy and prune -------------------------------------------------------------------


async def test_copy(client: Client) -> None:
    tag = marker()
    source = await echo_thread(client, **tag)
    sid = source["thread_id"]
    copy = await client.threads.copy(sid)
    cid = copy["thread_id"]
    assert cid != sid
    assert copy["metadata"] == {"graph_id": "echo", **tag}
    assert copy["config"] == {}
    assert contents(copy["values"]) == ["a", "b", "c"]

    source_history = await client.threads.get_history(sid)
    copy_history = await client.threads.get_history(cid)
    assert [s["checkpoint_id"] for s in copy_history] == [
        s["checkpoint_id"] for s in source_history
    ]
    assert [s["values"] for s in copy_history] == [s["values"] for s in source_history]
    assert all(s["checkpoint"]["thread_id"] == cid for s in copy_history)

    # The two threads go their own ways.
    await client.threads.update_state(cid, {"messages": [ai("only in copy")]}, as_node="echo")
    assert contents((await client.threads.get_state(sid))["values"]) == ["a", "b", "c"]
    assert contents((await client.threads.get_state(cid))["values"])[-1] == "only in copy"
    assert await client.threads.count(metadata=tag) == 2


async def test_prune_delete(client: Client) -> None:
    tag = marker()
    a = await echo_thread(client, **tag)
    b = await client.threads.create(metadata=tag)
    keep = await client.threads.create(metadata=tag)
    missing = str(uuid.uuid4())
    result = await client.threads.prune([a["thread_id"], b["thread_id"], missing])
    assert result == {"pruned_count": 2}
    remaining = await client.threads.search(metadata=tag)
    assert [t["thread_id"] for t in remaining] == [keep["thread_id"]]
    await client.threads.create(thread_id=a["thread_id"], metadata={"graph_id": "echo"})
    assert await client.threads.get_history(a["thread_id"]) == []  # checkpoints went too


async def test_prune_keep_latest(client: Client, http: httpx.AsyncClient) -> None:
    thread = await echo_thread(client)
    tid = thread["thread_id"]
    before = await client.threads.get_state(tid)
    assert len(await client.threads.get_history(tid)) == 3
    empty = await client.threads.create()

    result = await client.threads.prune([tid, empty["thread_id"]], strategy="keep_latest")
    assert result == {"pruned_count": 2}
    (latest,) = await client.threads.get_history(tid)
    assert latest["checkpoint_id"] == before["checkpoint_id"]
    assert latest["parent_checkpoint"] is None
    assert latest["values"] == before["values"]
    assert latest["next"] == before["next"] == ["echo"]
    assert (await client.threads.get(tid))["values"] == before["values"]

    # The thread goes on from its kept checkpoint.
    await client.threads.update_state(tid, {"messages": [ai("d")]}, as_node="echo")
    assert contents((await client.threads.get_state(tid))["values"]) == ["a", "b", "c", "d"]
    assert len(await client.threads.get_history(tid)) == 2

    r = await http.post("/threads/prune", json={"thread_ids": ["nope"]})
    assert (r.status_code, r.json()) == (422, {"detail": "Invalid thread ID: must be a UUID"})
    r = await http.post("/threads/prune", json={"thread_ids": [tid], "strategy": "other"})
    assert r.status_code == 422


# --- durability -----------------------------------------------------------------------


async def test_survives_restart(backend: str) -> None:
    server = ServerProcess(backend=backend).start()
    try:
        sdk: Client = get_client(url=server.url, api_key=None)
        thread = await echo_thread(sdk, kept="yes")
        tid = thread["thread_id"]
        await sdk.threads.update(tid, metadata={"patched": True}, ttl=60)
        state = await sdk.threads.get_state(tid)
        history = await sdk.threads.get_history(tid)
        row = await sdk.threads.get(tid)
        copy = await sdk.threads.copy(tid)
        await sdk.http.client.aclose()

        server.restart()
        sdk = get_client(url=server.url, api_key=None)
        assert await sdk.threads.get(tid) == row
        assert row["metadata"] == {"graph_id": "echo", "kept": "yes", "patched": True}
        assert await sdk.threads.get_state(tid) == state
        assert await sdk.threads.get_history(tid) == history
        assert [s["values"] for s in await sdk.threads.get_history(copy["thread_id"])] == [
            s["values"] for s in history
        ]
        assert await sdk.threads.count(metadata={"kept": "yes"}) == 2
        async with httpx.AsyncClient(base_url=server.url) as raw:
            r = await raw.get(f"/threads/{tid}", params={"include": "ttl"})
            assert r.json()["ttl"]["ttl_minutes"] == 60
        await sdk.http.client.aclose()
    finally:
        server.stop()


# --- the ThreadState serialisation the run executor shares ---------------------------


async def test_snapshot_serialisation_with_interrupt() -> None:
    graph = hitl.graph.copy(update={"checkpointer": InMemorySaver()})
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    start: Any = {"messages": [human("hey")]}
    await graph.ainvoke(start, config)
    snapshot = await graph.aget_state(config)

    state = snapshot_to_json(snapshot)
    assert set(state) == STATE_KEYS
    assert state["next"] == ["review"]
    (task,) = state["tasks"]
    (interrupt,) = task["interrupts"]
    assert interrupt == {"id": interrupt["id"], "value": {"question": "Proceed?"}}
    assert state["interrupts"] == [interrupt]
    assert state["values"]["messages"][0]["content"] == "hey"

    summary = thread_summary_from_snapshot(snapshot)
    assert summary == {
        "values": state["values"],
        "interrupts": {task["id"]: [interrupt]},
        "status": "interrupted",
    }

    done = echo.graph.copy(update={"checkpointer": InMemorySaver()})
    await done.ainvoke(cast(Any, {"messages": [human("x")]}), config)
    summary = thread_summary_from_snapshot(await done.aget_state(config))
    assert summary["status"] == "idle" and summary["interrupts"] == {}
    assert [m["content"] for m in summary["values"]["messages"]] == ["x", "echo: x"]
    empty = await done.aget_state(RunnableConfig(configurable={"thread_id": "never"}))
    assert snapshot_to_json(empty) == EMPTY_STATE
    assert thread_summary_from_snapshot(empty) == {
        "values": None,
        "interrupts": {},
        "status": "idle",
    }


@pytest.mark.parametrize("body", [b"", b"{not json"])
async def test_malformed_bodies(http: httpx.AsyncClient, body: bytes) -> None:
    for path in ("/threads", "/threads/search", "/threads/count"):
        r = await http.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, path
    r = await http.post(
        "/threads/search", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.json() == {"detail": "Invalid JSON in request body"}


async def test_thread_storage_report(client: Client, http: httpx.AsyncClient) -> None:
    thread = await client.threads.create()
    empty = (await http.get(f"/threads/{thread['thread_id']}/storage")).json()
    assert empty["total_bytes"] == 0
    assert empty["checkpoints"] == {"count": 0, "bytes": 0}
    await client.runs.wait(
        thread["thread_id"], "echo", input={"messages": [{"role": "user", "content": "hi"}]}
    )
    report = (await http.get(f"/threads/{thread['thread_id']}/storage")).json()
    assert report["thread_id"] == thread["thread_id"]
    assert report["checkpoints"]["count"] >= 2
    assert report["channel_values"]["by_channel"]["messages"]["bytes"] > 0
    assert report["total_bytes"] >= report["checkpoints"]["bytes"] > 0
    missing = await http.get(f"/threads/{uuid.uuid4()}/storage")
    assert missing.status_code == 404


async def test_metadata_search_matches_types_exactly(client: Client) -> None:
    """Strings, numbers and booleans match only their own kind (1 and 1.0 are one number),
    nested and list values by containment, keys with quotes or dots as written."""
    tag = str(uuid.uuid4())
    kinds = {
        "int": 1,
        "float": 1.0,
        "text": "1",
        "true": True,
        "nested": {"a": {"b": 2}},
        "list": [1, 2, 3],
    }
    made = {}
    for name, value in kinds.items():
        thread = await client.threads.create(metadata={"tag": tag, "v": value, 'k"e.y': name})
        made[name] = thread["thread_id"]

    async def found(**wanted: Any) -> set[str]:
        rows = await client.threads.search(metadata={"tag": tag, **wanted}, limit=100)
        return {
            name for name, thread_id in made.items() if thread_id in {r["thread_id"] for r in rows}
        }

    assert await found(v=1) == {"int", "float"}
    assert await found(v="1") == {"text"}
    assert await found(v=True) == {"true"}
    assert await found(v={"a": {"b": 2}}) == {"nested"}
    assert await found(v=[2]) == {"list"}
    assert await found(**{'k"e.y': "list"}) == {"list"}
