"""Runs through the SDK against a real server: create, get, list, delete, wait, join,
every run field, stateless runs and batches, failures and the error answers."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from typing import Any

import httpx
import pytest
from langgraph.pregel.remote import RemoteException, RemoteGraph
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.helpers import new_thread, slow_context, wait_for_status

HUMAN = {"messages": [{"role": "user", "content": "hi"}]}
ECHO_ID = "046b5dc7-2108-582c-9c6c-31d556d138f0"  # uuid5 of graph "echo", as the reference
MISSING = "00000000-0000-0000-0000-000000000000"
NOT_FOUND = "Thread or assistant not found."
RUN_KEYS = {
    "run_id",
    "thread_id",
    "assistant_id",
    "metadata",
    "status",
    "kwargs",
    "multitask_strategy",
    "created_at",
    "updated_at",
    "langsmith_session_name",
}
KWARGS_KEYS = {
    "input",
    "command",
    "config",
    "context",
    "stream_mode",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "feedback_keys",
    "temporary",
    "subgraphs",
    "resumable",
    "checkpoint_during",
    "durability",
}


def last_message(values: dict[str, Any]) -> str:
    return str(values["messages"][-1]["content"])


def parse_ts(value: str) -> datetime.datetime:
    assert value.endswith("+00:00"), value
    return datetime.datetime.fromisoformat(value)


async def history_len(client: LangGraphClient, thread_id: str) -> int:
    return len(await client.threads.get_history(thread_id, limit=100))


# --- create, get, list, delete ------------------------------------------------------


async def test_create_returns_a_pending_run(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "echo", "input": HUMAN, "metadata": {"who": "test"}},
    )
    assert response.status_code == 200
    run = response.json()
    assert set(run) == RUN_KEYS
    assert run["status"] == "pending"
    assert run["thread_id"] == thread_id
    assert run["assistant_id"] == ECHO_ID  # the graph name resolves to the system assistant
    assert run["multitask_strategy"] == "enqueue"
    assert run["langsmith_session_name"] is None
    assert run["metadata"] == {
        "created_by": "system",
        "graph_id": "echo",
        "assistant_id": ECHO_ID,
        "who": "test",
    }
    assert KWARGS_KEYS <= set(run["kwargs"])
    assert run["kwargs"]["stream_mode"] == ["values"]
    assert run["kwargs"]["temporary"] is False
    assert run["kwargs"]["input"] == HUMAN
    parse_ts(run["created_at"])
    parse_ts(run["updated_at"])
    assert uuid.UUID(run["run_id"]).version == 7
    assert response.headers["content-location"] == f"/threads/{thread_id}/runs/{run['run_id']}"
    assert "location" not in response.headers
    assert last_message(await client.runs.join(thread_id, run["run_id"])) == "echo: hi"
    done = await client.runs.get(thread_id, run["run_id"])
    assert done["status"] == "success"
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["metadata"]["graph_id"] == "echo"
    assert thread["metadata"]["assistant_id"] == ECHO_ID


async def test_every_run_field_is_kept(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs",
        json={
            "assistant_id": "echo",
            "input": HUMAN,
            "stream_mode": ["updates", "custom"],
            "stream_subgraphs": True,
            "stream_resumable": True,
            "interrupt_before": ["echo"],
            "interrupt_after": "*",
            "feedback_keys": ["score"],  # not a parameter of the SDK's runs.create
            "webhook": "http://127.0.0.1:9/hook",
            "durability": "sync",
            "multitask_strategy": "reject",
            "after_seconds": 3600,
        },
    )
    run = response.json()
    kwargs = run["kwargs"]
    assert kwargs["stream_mode"] == ["updates", "custom"]
    assert kwargs["subgraphs"] is True
    assert kwargs["resumable"] is True
    assert kwargs["interrupt_before"] == ["echo"]
    assert kwargs["interrupt_after"] == "*"
    assert kwargs["feedback_keys"] == ["score"]
    assert kwargs["webhook"] == "http://127.0.0.1:9/hook"
    assert kwargs["durability"] == "sync"
    assert run["multitask_strategy"] == "reject"
    stored = await client.runs.get(thread_id, run["run_id"])
    assert stored["kwargs"] == kwargs
    await client.runs.cancel(thread_id, run["run_id"])


async def test_graph_name_and_uuid_address_the_same_assistant(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    by_uuid = await client.runs.wait(thread_id, ECHO_ID, input=HUMAN)
    assert last_message(by_uuid) == "echo: hi"
    runs = await client.runs.list(thread_id)
    assert [r["assistant_id"] for r in runs] == [ECHO_ID]
    assistant = await client.assistants.create("echo", name=f"echo-{uuid.uuid4().hex}")
    run = await client.runs.create(thread_id, assistant["assistant_id"], input=HUMAN)
    assert run["assistant_id"] == assistant["assistant_id"]
    await client.runs.join(thread_id, run["run_id"])


async def test_list_runs(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    ids = []
    for _ in range(3):
        run = await client.runs.create(thread_id, "echo", input=HUMAN)
        ids.append(run["run_id"])
    await client.runs.join(thread_id, ids[-1])
    failed = await client.runs.create(thread_id, "fail", input={})
    await client.runs.join(thread_id, failed["run_id"])
    ids.append(failed["run_id"])

    listed = await client.runs.list(thread_id)
    assert [r["run_id"] for r in listed] == ids[::-1]  # newest first
    page = await client.runs.list(thread_id, limit=2, offset=1)
    assert [r["run_id"] for r in page] == ids[::-1][1:3]
    errors = await client.runs.list(thread_id, status="error")
    assert [r["run_id"] for r in errors] == [failed["run_id"]]
    assert len(await client.runs.list(thread_id, status="success")) == 3
    assert await client.runs.list(thread_id, status="pending") == []
    selected = await client.runs.list(thread_id, select=["run_id", "status"])
    assert all(set(r) == {"run_id", "status"} for r in selected)

    response = await http.get(f"/threads/{thread_id}/runs", params={"limit": 1})
    assert len(response.json()) == 1
    assert "x-pagination-total" not in response.headers  # as the reference: no headers here
    assert (
        await http.get(f"/threads/{thread_id}/runs", params={"status": "nope"})
    ).status_code == 422
    assert (await http.get(f"/threads/{thread_id}/runs", params={"limit": 0})).status_code == 422
    unknown = await http.get(f"/threads/{uuid.uuid4()}/runs")
    assert unknown.status_code == 404


async def test_get_and_delete_run(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=HUMAN)
    await client.runs.join(thread_id, run["run_id"])
    got = await client.runs.get(thread_id, run["run_id"])
    assert got["run_id"] == run["run_id"]
    assert got["status"] == "success"

    response = await http.delete(f"/threads/{thread_id}/runs/{run['run_id']}")
    assert response.status_code == 204
    assert response.content == b""
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])
    again = await http.delete(f"/threads/{thread_id}/runs/{run['run_id']}")
    assert again.status_code == 404
    assert again.json() == {"detail": "Run not found"}
    # a run is addressed through its own thread only
    other = await new_thread(client)
    run2 = await client.runs.create(other, "echo", input=HUMAN)
    assert (await http.get(f"/threads/{thread_id}/runs/{run2['run_id']}")).status_code == 404
    bad = await http.get(f"/threads/{thread_id}/runs/not-a-uuid")
    assert bad.status_code == 422
    assert bad.json() == {"detail": "Invalid run ID: must be a UUID"}
    await client.runs.join(other, run2["run_id"])


# --- wait and join -------------------------------------------------------------------


async def test_wait_returns_the_final_values(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "echo", "input": HUMAN}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    location = response.headers["location"]
    content_location = response.headers["content-location"]
    assert location == f"{content_location}/join"
    assert content_location.startswith(f"/threads/{thread_id}/runs/")
    assert last_message(response.json()) == "echo: hi"
    # the Location is a real route: joining the finished run gives the same values
    joined = await http.get(location)
    assert joined.json() == response.json()


async def test_join_of_finished_run_is_immediate(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=HUMAN)
    first = await client.runs.join(thread_id, run["run_id"])
    started = time.monotonic()
    again = await client.runs.join(thread_id, run["run_id"])
    # the reference polls and needs ~0.5 s here
    assert time.monotonic() - started < 0.4
    assert again == first


async def test_join_of_unknown_run(http: httpx.AsyncClient, client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    response = await http.get(f"/threads/{thread_id}/runs/{uuid.uuid4()}/join")
    # Deliberate difference: the reference answers 200 with
    # {"__error__": {"error": "HTTPException", "message": "404: Run not found"}} after 0.5 s;
    # Threadline says 404 at once, which the SDK raises as NotFoundError either way.
    assert response.status_code == 404
    assert response.json() == {"detail": "Run not found"}


async def test_join_waits_for_a_running_run(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={}, context={"steps": 4, "delay": 0.05})
    out = await client.runs.join(thread_id, run["run_id"])
    assert out == {"count": 4, "log": ["step-1", "step-2", "step-3", "step-4"]}
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"


async def test_join_of_a_run_cancelled_while_pending(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    # a pending run is settled by the cancel itself, not by a worker: its waiters must
    # still learn that it is over
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "slow", input={}, context={"steps": 1, "delay": 0})
    run = await client.runs.create(thread_id, "slow", input={}, after_seconds=60)
    join = asyncio.ensure_future(http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join"))
    stream = asyncio.ensure_future(
        http.get(
            f"/threads/{thread_id}/runs/{run['run_id']}/stream", headers={"Last-Event-ID": "-1"}
        )
    )
    await asyncio.sleep(0.05)  # both are waiting now
    await client.runs.cancel(thread_id, run["run_id"])
    async with asyncio.timeout(3):
        joined, streamed = await asyncio.gather(join, stream)
    # a cancelled run has no output of its own: the thread's values, as cancel?wait=true
    assert joined.json() == {"count": 1, "log": ["step-1"]}
    assert streamed.status_code == 200
    assert streamed.content == b""


async def test_join_of_a_run_deleted_while_pending(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=HUMAN, after_seconds=60)
    join = asyncio.ensure_future(http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join"))
    await asyncio.sleep(0.05)
    await client.runs.delete(thread_id, run["run_id"])
    async with asyncio.timeout(3):
        joined = await join
    # the reference's answer for a join of a run that does not exist
    assert joined.json() == {
        "__error__": {"error": "HTTPException", "message": "404: Run not found"}
    }


async def test_join_of_an_interrupted_run(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={}, context=slow_context(40, 0.05))
    await wait_for_status(client, thread_id, run["run_id"], {"running"})
    join = asyncio.ensure_future(client.runs.join(thread_id, run["run_id"]))
    await asyncio.sleep(0.2)
    await client.runs.cancel(thread_id, run["run_id"])
    out = await join
    assert 0 < out["count"] < 40
    assert out == (await client.threads.get_state(thread_id))["values"]


# --- failures --------------------------------------------------------------------------


async def test_failed_run(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "fail", "input": {}}
    )
    assert response.status_code == 200  # as the reference: the status line went out first
    assert response.json() == {"__error__": {"error": "ValueError", "message": "boom"}}
    with pytest.raises(Exception, match="ValueError: boom"):
        await client.runs.wait(thread_id, "fail", input={})
    runs = await client.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["error", "error"]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "error"
    assert thread["error"] == {"error": "ValueError", "message": "boom"}
    # joining the failed run gives the same error body
    joined = await client.runs.join(thread_id, runs[0]["run_id"])
    assert joined == {"__error__": {"error": "ValueError", "message": "boom"}}
    # the thread recovers with the next successful run
    await client.runs.wait(thread_id, "echo", input=HUMAN)
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["error"] is None


async def test_input_that_does_not_fit_fails_the_run(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(thread_id, "echo", input={"messages": 5}, raise_error=False)
    assert set(out) == {"__error__"}
    assert (await client.runs.list(thread_id))[0]["status"] == "error"


# --- if_not_exists, after_seconds, durability --------------------------------------------


async def test_if_not_exists(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    response = await http.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": "echo", "input": HUMAN}
    )
    assert response.status_code == 404
    assert response.json() == {"detail": NOT_FOUND}
    rejected = await http.post(
        f"/threads/{thread_id}/runs/stream",
        json={"assistant_id": "echo", "input": HUMAN, "if_not_exists": "reject"},
    )
    assert rejected.status_code == 404  # before the SSE response starts
    assert rejected.json() == {"detail": NOT_FOUND}
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)

    out = await client.runs.wait(thread_id, "echo", input=HUMAN, if_not_exists="create")
    assert last_message(out) == "echo: hi"
    thread = await client.threads.get(thread_id)
    assert thread["thread_id"] == thread_id
    assert thread["metadata"]["graph_id"] == "echo"
    # the thread exists now: "create" just uses it
    out = await client.runs.wait(thread_id, "echo", input=HUMAN, if_not_exists="create")
    assert len(out["messages"]) == 4


async def test_after_seconds_delays_the_run(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    before = datetime.datetime.now(datetime.UTC)
    run = await client.runs.create(thread_id, "echo", input=HUMAN, after_seconds=1)
    # as the reference: created_at is the not-before time, in the future
    assert parse_ts(run["created_at"]) >= before + datetime.timedelta(seconds=0.9)
    assert parse_ts(run["updated_at"]) < parse_ts(run["created_at"])
    await asyncio.sleep(0.5)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "pending"
    assert (await client.threads.get(thread_id))["status"] == "busy"
    await client.runs.join(thread_id, run["run_id"])
    assert datetime.datetime.now(datetime.UTC) >= before + datetime.timedelta(seconds=1)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"


@pytest.mark.parametrize(
    ("options", "checkpoints"),
    [
        ({"durability": "sync"}, 5),
        ({"durability": "async"}, 5),
        ({}, 5),
        ({"durability": "exit"}, 1),
        ({"checkpoint_during": False}, 1),
    ],
)
async def test_durability(
    client: LangGraphClient, http: httpx.AsyncClient, options: dict[str, Any], checkpoints: int
) -> None:
    # measured on the reference: slow with 3 steps writes 1 input + 4 loop checkpoints,
    # or only the final one with durability exit / checkpoint_during false
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs/wait",
        json={
            "assistant_id": "slow",
            "input": {},
            "context": {"steps": 3, "delay": 0},
            **options,
        },
    )
    assert response.json()["count"] == 3
    assert await history_len(client, thread_id) == checkpoints


# --- interrupts, commands, checkpoints ---------------------------------------------------


async def test_interrupt_and_resume(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(thread_id, "hitl", input={"question": "Ship it?"})
    assert out["question"] == "Ship it?"
    [interrupt] = out["__interrupt__"]
    assert interrupt["value"] == {"question": "Ship it?"}
    assert len(interrupt["id"]) == 32
    run = (await client.runs.list(thread_id))[0]
    assert run["status"] == "success"  # as the reference: interrupted is only for cancels
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    [(task_id, interrupts)] = thread["interrupts"].items()
    assert interrupts == [{"id": interrupt["id"], "value": {"question": "Ship it?"}}]
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["review"]
    assert state["tasks"][0]["id"] == task_id

    run = await client.runs.create(thread_id, "hitl", command={"resume": "yes"})
    assert run["kwargs"]["command"] == {"resume": "yes"}
    out = await client.runs.join(thread_id, run["run_id"])
    assert out["answer"] == "yes"
    assert last_message(out) == "answer: yes"
    assert "__interrupt__" not in out
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["interrupts"] == {}


async def test_command_update_and_goto(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(
        thread_id, "hitl", command={"update": {"answer": "direct"}, "goto": "echo"}
    )
    assert out["answer"] == "direct"
    assert last_message(out) == "answer: direct"
    # goto with a Send: {"node", "input"}
    other = await new_thread(client)
    out = await client.runs.wait(
        other, "hitl", command={"goto": {"node": "echo", "input": {"answer": "sent"}}}
    )
    assert last_message(out) == "answer: sent"


async def test_input_and_command_together_is_422(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "hitl", "input": {}, "command": {"resume": 1}},
    )
    # Deliberate difference: the reference accepts both and ignores one; the SDK documents
    # that they cannot be combined, so Threadline says so.
    assert response.status_code == 422


async def test_interrupt_before_and_after(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(thread_id, "echo", input=HUMAN, interrupt_before=["echo"])
    assert len(out["messages"]) == 1
    assert "__interrupt__" not in out
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["interrupts"] == {}
    assert (await client.threads.get_state(thread_id))["next"] == ["echo"]
    out = await client.runs.wait(thread_id, "echo", input=None)
    assert last_message(out) == "echo: hi"
    assert (await client.threads.get(thread_id))["status"] == "idle"

    other = await new_thread(client)
    await client.runs.wait(other, "hitl", input={}, interrupt_after="*")
    state = await client.threads.get_state(other)
    assert state["next"] == ["review"]
    assert state["values"]["question"] == "Proceed?"


async def test_run_from_an_earlier_checkpoint(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "slow", input={}, context={"steps": 3, "delay": 0})
    history = await client.threads.get_history(thread_id, limit=10)
    after_one = next(s for s in history if s["values"].get("count") == 1)
    checkpoint_id = after_one["checkpoint"]["checkpoint_id"]

    out = await client.runs.wait(
        thread_id, "slow", input=None, checkpoint_id=checkpoint_id, context={"steps": 2, "delay": 0}
    )
    assert out == {"count": 2, "log": ["step-1", "step-2"]}  # forked, not continued at 3
    history = await client.threads.get_history(thread_id, limit=100)
    assert history[0]["values"]["count"] == 2
    by_id = {s["checkpoint"]["checkpoint_id"]: s for s in history}
    lineage = []
    state: dict[str, Any] | None = history[0]
    while state is not None:
        lineage.append(state["checkpoint"]["checkpoint_id"])
        parent = state["parent_checkpoint"]
        state = by_id.get(parent["checkpoint_id"]) if parent else None
    assert checkpoint_id in lineage
    assert not any(by_id[c]["values"].get("count") == 3 for c in lineage)

    # the `checkpoint` object form does the same
    out = await client.runs.wait(
        thread_id,
        "slow",
        input=None,
        checkpoint={"checkpoint_id": checkpoint_id},
        context={"steps": 2, "delay": 0},
    )
    assert out["log"] == ["step-1", "step-2"]


# --- config, context, metadata, headers ----------------------------------------------------


async def test_config_is_merged_and_stamped(client: LangGraphClient) -> None:
    assistant = await client.assistants.create(
        "config_echo",
        config={"configurable": {"a": "assistant", "b": "assistant"}, "tags": ["t-assistant"]},
        metadata={"owner": "assistant"},
    )
    thread_id = await new_thread(client)
    run = await client.runs.create(
        thread_id,
        assistant["assistant_id"],
        input={},
        config={
            "configurable": {"b": "run", "run_id": "spoofed", "graph_id": "spoofed"},
            "tags": ["t-run"],
            "recursion_limit": 7,
        },
        metadata={"owner": "run", "extra": 1},
        headers={"x-custom-header": "forwarded", "authorization": "Bearer secret"},
    )
    out = await client.runs.join(thread_id, run["run_id"])
    configurable = out["conf"]
    assert configurable["a"] == "assistant"
    assert configurable["b"] == "run"
    # the server's keys win over the caller's
    assert configurable["run_id"] == run["run_id"]
    assert configurable["graph_id"] == "config_echo"
    assert configurable["assistant_id"] == assistant["assistant_id"]
    assert configurable["thread_id"] == thread_id
    assert configurable["user_id"] == ""
    assert configurable["langgraph_auth_user_id"] == ""
    assert configurable["langgraph_auth_permissions"] == []
    assert configurable["x-custom-header"] == "forwarded"
    assert "authorization" not in configurable
    assert not any(k.startswith("__") for k in run["kwargs"]["config"]["configurable"])
    assert out["tags"] == ["t-assistant", "t-run"]
    assert run["kwargs"]["config"]["recursion_limit"] == 7

    metadata = out["meta"]
    assert metadata["owner"] == "run"
    assert metadata["extra"] == 1
    assert metadata["graph_id"] == "config_echo"
    assert metadata["assistant_id"] == assistant["assistant_id"]
    assert metadata["run_id"] == run["run_id"]
    assert metadata["thread_id"] == thread_id
    assert metadata["run_attempt"] == 1
    assert run["metadata"] == {
        "owner": "run",
        "extra": 1,
        "graph_id": "config_echo",
        "assistant_id": assistant["assistant_id"],
    }


async def test_context_is_merged(client: LangGraphClient) -> None:
    assistant = await client.assistants.create(
        "config_echo", context={"c": "assistant", "d": "assistant"}
    )
    thread_id = await new_thread(client)
    out = await client.runs.wait(
        thread_id, assistant["assistant_id"], input={}, context={"d": "run", "e": "run"}
    )
    assert out["ctx"] == {"c": "assistant", "d": "run", "e": "run"}
    # a run context reaches graphs that read it through Runtime.context
    out = await client.runs.wait(thread_id, "slow", input={}, context={"steps": 1, "delay": 0})
    assert out["count"] == 1


async def test_recursion_limit_is_honoured(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(
        thread_id,
        "slow",
        input={},
        context={"steps": 10, "delay": 0},
        config={"recursion_limit": 3},
        raise_error=False,
    )
    assert out["__error__"]["error"] == "GraphRecursionError"
    assert (await client.threads.get(thread_id))["status"] == "error"


# --- validation -------------------------------------------------------------------------


async def test_unknown_assistant(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    for path in ("runs", "runs/wait", "runs/stream"):
        response = await http.post(
            f"/threads/{thread_id}/{path}", json={"assistant_id": MISSING, "input": {}}
        )
        assert response.status_code == 404, path
        assert response.json() == {"detail": NOT_FOUND}
    for name in ("nope", "ECHO"):  # graph names are case-sensitive
        response = await http.post(
            f"/threads/{thread_id}/runs", json={"assistant_id": name, "input": {}}
        )
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail.startswith(
            f"Invalid assistant: '{name}'. Must be either:\n- A valid assistant UUID, or\n"
            "- One of the registered graphs: echo, slow, hitl, chat, custom"
        )
    assert await client.runs.list(thread_id) == []


@pytest.mark.parametrize(
    "body",
    [
        {"input": {}},  # no assistant_id
        {"assistant_id": "echo", "stream_mode": "nope"},
        {"assistant_id": "echo", "stream_mode": ["values", "nope"]},
        {"assistant_id": "echo", "multitask_strategy": "nope"},
        {"assistant_id": "echo", "on_disconnect": "nope"},
        {"assistant_id": "echo", "if_not_exists": "nope"},
        {"assistant_id": "echo", "durability": "nope"},
        {"assistant_id": "echo", "interrupt_before": "echo"},
        {"assistant_id": "echo", "after_seconds": -1},
        {"assistant_id": "echo", "unknown_field": 1},
    ],
)
async def test_invalid_bodies_are_422(
    client: LangGraphClient, http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(f"/threads/{thread_id}/runs", json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)
    assert await client.runs.list(thread_id) == []


async def test_invalid_json_and_thread_ids(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid JSON in request body"}
    for path in ("runs", "runs/wait", "runs/stream"):
        response = await http.post(
            f"/threads/not-a-uuid/{path}", json={"assistant_id": "echo", "input": {}}
        )
        assert response.status_code == 422
        assert response.json() == {"detail": "Invalid thread ID"}
    response = await http.get("/threads/not-a-uuid/runs")
    assert response.json() == {"detail": "Invalid thread ID: must be a UUID"}


# --- on_disconnect for /wait -------------------------------------------------------------


async def _run_id_of(response: httpx.Response) -> str:
    return response.headers["content-location"].rsplit("/", 1)[-1]


@pytest.mark.parametrize(("mode", "final"), [("cancel", "interrupted"), ("continue", "success")])
async def test_wait_on_disconnect(
    client: LangGraphClient, server: Any, mode: str, final: str
) -> None:
    thread_id = await new_thread(client)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as raw:
        async with raw.stream(
            "POST",
            f"/threads/{thread_id}/runs/wait",
            json={
                "assistant_id": "slow",
                "input": {},
                "context": slow_context(steps=20, delay=0.05),
                "on_disconnect": mode,
            },
        ) as response:
            run_id = await _run_id_of(response)
            await wait_for_status(client, thread_id, run_id, {"running"})
    run = await wait_for_status(client, thread_id, run_id, {final}, timeout=10)
    assert run["status"] == final
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_join_cancel_on_disconnect(client: LangGraphClient, server: Any) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={}, context=slow_context(20, 0.05))
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as raw:
        async with raw.stream(
            "GET",
            f"/threads/{thread_id}/runs/{run['run_id']}/join",
            params={"cancel_on_disconnect": "true"},
        ):
            await wait_for_status(client, thread_id, run["run_id"], {"running"})
    await wait_for_status(client, thread_id, run["run_id"], {"interrupted"}, timeout=10)


# --- stateless runs and batches ------------------------------------------------------------


async def test_stateless_wait(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    response = await http.post("/runs/wait", json={"assistant_id": "echo", "input": HUMAN})
    assert response.status_code == 200
    assert last_message(response.json()) == "echo: hi"
    run_id = await _run_id_of(response)
    assert response.headers["content-location"] == f"/runs/{run_id}"
    assert response.headers["location"] == f"/runs/{run_id}/join"
    assert last_message(await client.runs.wait(None, "echo", input=HUMAN)) == "echo: hi"


async def test_stateless_on_completion_delete(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    run = await client.runs.create(None, "echo", input=HUMAN)
    assert run["kwargs"]["temporary"] is True
    assert run["multitask_strategy"] is None
    thread_id = run["thread_id"]
    # Threadline serves GET /runs/{id}/join (the reference's Location points at no route)
    joined = await http.get(f"/runs/{run['run_id']}/join")
    assert last_message(joined.json()) == "echo: hi"
    deadline = time.monotonic() + 5
    while True:
        try:
            await client.threads.get(thread_id)
        except NotFoundError:
            break
        assert time.monotonic() < deadline, "the temporary thread was not deleted"
        await asyncio.sleep(0.02)
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])


async def test_stateless_on_completion_keep(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/runs",
        json={"assistant_id": "echo", "input": HUMAN, "on_completion": "keep"},
    )
    run = response.json()
    assert response.headers["content-location"] == f"/runs/{run['run_id']}"
    assert "on_completion" not in run["kwargs"]
    out = await client.runs.join(run["thread_id"], run["run_id"])
    assert last_message(out) == "echo: hi"
    thread = await client.threads.get(run["thread_id"])
    assert thread["metadata"]["graph_id"] == "echo"
    assert (await client.runs.get(run["thread_id"], run["run_id"]))["status"] == "success"
    # a thread_id in a stateless body is not a field of RunCreateStateless
    ignored = await http.post(
        "/runs/wait", json={"assistant_id": "echo", "input": HUMAN, "thread_id": str(uuid.uuid4())}
    )
    assert ignored.status_code == 422


async def test_stateless_unknown_run(http: httpx.AsyncClient) -> None:
    run_id = uuid.uuid4()
    started = time.monotonic()
    async with asyncio.timeout(3):
        streamed = await http.get(f"/runs/{run_id}/stream")
        joined = await http.get(f"/runs/{run_id}/join")
    assert time.monotonic() - started < 2
    assert streamed.status_code == 200
    assert streamed.content == b""
    assert joined.json() == {
        "__error__": {"error": "HTTPException", "message": "404: Run not found"}
    }
    assert (await http.get(f"/runs/{run_id}")).status_code == 404


async def test_stateless_failure(client: LangGraphClient) -> None:
    out = await client.runs.wait(None, "fail", input={}, raise_error=False)
    assert out == {"__error__": {"error": "ValueError", "message": "boom"}}
    out = await client.runs.wait(None, "hitl", input={}, on_completion="keep")
    assert out["__interrupt__"][0]["value"] == {"question": "Proceed?"}


async def test_batch(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    assistant = await client.assistants.create("echo", name=f"batch-{uuid.uuid4().hex}")
    aid = assistant["assistant_id"]
    item = {"assistant_id": aid, "input": HUMAN, "on_completion": "keep"}

    empty = await http.post("/runs/batch", json=[])
    assert empty.status_code == 422
    for bad in ({"assistant_id": "nope"}, {"assistant_id": aid, "stream_mode": "nope"}, {}):
        response = await http.post("/runs/batch", json=[item, bad])
        assert response.status_code == 422, bad
    missing = await http.post("/runs/batch", json=[item, {"assistant_id": MISSING}])
    assert missing.status_code == 404
    assert missing.json() == {"detail": NOT_FOUND}
    # nothing was created by the rejected batches
    assert await client.threads.search(metadata={"assistant_id": aid}) == []

    runs = await client.runs.create_batch([item, {**item, "input": {"messages": "yo"}}])
    assert len(runs) == 2
    assert {r["status"] for r in runs} == {"pending"}
    assert len({r["thread_id"] for r in runs}) == 2
    assert all(r["kwargs"]["temporary"] for r in runs)
    for run in runs:
        await client.runs.join(run["thread_id"], run["run_id"])
    threads = await client.threads.search(metadata={"assistant_id": aid})
    assert len(threads) == 2


# --- isolation and RemoteGraph ---------------------------------------------------------------


async def test_blocking_graph_does_not_stall_the_api(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "blocking_async", input={"seconds": 1.0})
    await wait_for_status(client, thread_id, run["run_id"], {"running"})
    await asyncio.sleep(0.1)  # the node is inside time.sleep now
    started = time.monotonic()
    assert (await http.get("/ok")).status_code == 200
    assert time.monotonic() - started < 0.3
    out = await client.runs.join(thread_id, run["run_id"])
    assert out == {"seconds": 1.0, "slept": 1.0}


async def test_remote_graph(client: LangGraphClient) -> None:
    remote = RemoteGraph("echo", client=client)
    thread_id = await new_thread(client)
    config = {"configurable": {"thread_id": thread_id}}
    out = await remote.ainvoke(HUMAN, config)
    assert last_message(out) == "echo: hi"
    updates = [chunk async for chunk in remote.astream(HUMAN, config, stream_mode="updates")]
    assert updates[-1]["echo"]["messages"][0]["content"] == "echo: hi"
    state = await client.threads.get_state(thread_id)
    assert len(state["values"]["messages"]) == 4
    # without a thread: a stateless run
    out = await remote.ainvoke(HUMAN)
    assert len(out["messages"]) == 2
    parts = [part async for part in remote.astream(HUMAN, stream_mode=["values", "updates"])]
    assert [part.event for part in parts] == ["values", "updates", "values"]
    with pytest.raises(RemoteException):
        await RemoteGraph("fail", client=client).ainvoke({})
