"""Cancel, bulk cancel and multitask strategies, through the SDK against a real server."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.helpers import new_thread, slow_context, wait_for_status, wait_for_thread_status


async def start_slow(client: LangGraphClient, thread_id: str, **kwargs: object) -> dict:
    run = await client.runs.create(thread_id, "slow", input={}, context=slow_context(), **kwargs)
    await wait_for_status(client, thread_id, run["run_id"], {"running"})
    # let it write a few checkpoints
    await asyncio.sleep(0.2)
    return dict(run)


async def test_cancel_interrupt_keeps_progress(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id)
    started = time.monotonic()
    await client.runs.cancel(thread_id, run["run_id"], wait=True)
    assert time.monotonic() - started < 5
    settled = await client.runs.get(thread_id, run["run_id"])
    assert settled["status"] == "interrupted"
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    state = await client.threads.get_state(thread_id)
    assert 0 < state["values"]["count"] < 50
    # the thread continues from the interrupted run's progress
    count = state["values"]["count"]
    out = await client.runs.wait(
        thread_id, "slow", input={}, context={"steps": count + 1, "delay": 0.01}
    )
    assert out["count"] == count + 1


async def test_cancel_rollback_erases_the_run(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "slow", input={}, context={"steps": 1, "delay": 0})
    before = await client.threads.get_state(thread_id)
    run = await start_slow(client, thread_id)
    await client.runs.cancel(thread_id, run["run_id"], wait=True, action="rollback")
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])
    after = await client.threads.get_state(thread_id)
    assert after["values"] == before["values"]
    assert after["checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"  # the reference leaves it busy


async def test_cancel_without_wait_answers_202(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id)
    response = await http.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel")
    assert response.status_code == 202
    await wait_for_status(client, thread_id, run["run_id"], {"interrupted"}, timeout=5)


async def test_cancel_pending_run_settles_at_once(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={}, after_seconds=60)
    await client.runs.cancel(thread_id, run["run_id"])
    settled = await client.runs.get(thread_id, run["run_id"])
    assert settled["status"] == "interrupted"
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_cancel_finished_or_unknown_run_is_404(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={})
    await client.runs.join(thread_id, run["run_id"])
    response = await http.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("No matching runs to cancel.")
    response = await http.post(f"/threads/{thread_id}/runs/{uuid.uuid4()}/cancel")
    assert response.status_code == 404
    assert response.json() == {"detail": "No runs found to cancel."}
    response = await http.post(f"/threads/{thread_id}/runs/not-a-uuid/cancel")
    assert response.status_code == 422


async def test_cancel_invalid_action_is_422(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={}, after_seconds=60)
    response = await http.post(
        f"/threads/{thread_id}/runs/{run['run_id']}/cancel", params={"action": "explode"}
    )
    assert response.status_code == 422
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "pending"
    await client.runs.cancel(thread_id, run["run_id"])


async def test_cancel_twice(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id)
    first, second = await asyncio.gather(
        http.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel"),
        http.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel"),
    )
    assert {first.status_code, second.status_code} <= {202, 404}
    assert 202 in {first.status_code, second.status_code}
    await wait_for_status(client, thread_id, run["run_id"], {"interrupted"}, timeout=5)


async def test_cancel_then_new_run_right_away(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id)
    await client.runs.cancel(thread_id, run["run_id"])
    out = await client.runs.wait(
        thread_id, "echo", input={"messages": [{"role": "user", "content": "x"}]}
    )
    assert out["messages"][-1]["content"] == "echo: x"
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"


async def test_rollback_of_run_with_many_checkpoints(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(
        thread_id, "slow", input={}, context={"steps": 200, "delay": 0.01}, durability="sync"
    )
    await wait_for_status(client, thread_id, run["run_id"], {"running"})
    await asyncio.sleep(0.5)
    await client.runs.cancel(thread_id, run["run_id"], wait=True, action="rollback")
    history = await client.threads.get_history(thread_id, limit=100)
    assert history == []
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_bulk_cancel_by_status_and_ids(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    threads = [await new_thread(client) for _ in range(2)]
    runs = [await client.runs.create(t, "echo", input={}, after_seconds=60) for t in threads]
    response = await http.post(
        "/runs/cancel", json={"thread_id": threads[0], "run_ids": [runs[0]["run_id"]]}
    )
    assert response.status_code == 204
    assert (await client.runs.get(threads[0], runs[0]["run_id"]))["status"] == "interrupted"
    response = await http.post(
        "/runs/cancel", json={"thread_id": threads[0], "run_ids": [runs[0]["run_id"]]}
    )
    assert response.status_code == 404
    response = await http.post("/runs/cancel", json={"status": "pending"})
    assert response.status_code == 204
    assert (await client.runs.get(threads[1], runs[1]["run_id"]))["status"] == "interrupted"
    assert (await http.post("/runs/cancel", json={})).status_code == 422
    assert (await http.post("/runs/cancel", json={"run_ids": []})).status_code == 422


@pytest.mark.parametrize("first", ["pending", "running"])
async def test_multitask_reject(client: LangGraphClient, first: str) -> None:
    thread_id = await new_thread(client)
    if first == "running":
        run = await start_slow(client, thread_id)
    else:
        run = await client.runs.create(thread_id, "echo", input={}, after_seconds=60)
    with pytest.raises(ConflictError):
        await client.runs.create(thread_id, "echo", input={}, multitask_strategy="reject")
    # runs.wait goes through the SDK's reconnecting request, which raises httpx's error
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await client.runs.wait(thread_id, "echo", input={}, multitask_strategy="reject")
    assert raised.value.response.status_code == 409
    runs = await client.runs.list(thread_id)
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    await client.runs.cancel(thread_id, run["run_id"], wait=True)


@pytest.mark.parametrize("first", ["pending", "running"])
async def test_multitask_interrupt(client: LangGraphClient, first: str) -> None:
    thread_id = await new_thread(client)
    if first == "running":
        run_a = await start_slow(client, thread_id)
    else:
        run_a = await client.runs.create(thread_id, "slow", input={}, after_seconds=60)
    run_b = await client.runs.create(
        thread_id,
        "slow",
        input={},
        context={"steps": 1, "delay": 0},
        multitask_strategy="interrupt",
    )
    await client.runs.join(thread_id, run_b["run_id"])
    assert (await client.runs.get(thread_id, run_a["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(thread_id, run_b["run_id"]))["status"] == "success"
    state = await client.threads.get_state(thread_id)
    if first == "running":  # A's progress is kept and B continued from it
        assert state["values"]["count"] >= 2
    else:
        assert state["values"]["count"] == 1


@pytest.mark.parametrize("first", ["pending", "running"])
async def test_multitask_rollback(client: LangGraphClient, first: str) -> None:
    thread_id = await new_thread(client)
    if first == "running":
        run_a = await start_slow(client, thread_id)
    else:
        run_a = await client.runs.create(thread_id, "slow", input={}, after_seconds=60)
    run_b = await client.runs.create(
        thread_id, "slow", input={}, context={"steps": 1, "delay": 0}, multitask_strategy="rollback"
    )
    await client.runs.join(thread_id, run_b["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run_a["run_id"])
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"count": 1, "log": ["step-1"]}


async def test_multitask_enqueue_runs_in_order(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    runs = [
        await client.runs.create(
            thread_id,
            "slow",
            input={},
            context={"steps": i + 1, "delay": 0.01},
            multitask_strategy="enqueue",
        )
        for i in range(4)
    ]
    for run in runs:
        await client.runs.join(thread_id, run["run_id"])
    state = await client.threads.get_state(thread_id)
    assert state["values"]["log"] == [f"step-{i}" for i in range(1, 5)]
    statuses = [(await client.runs.get(thread_id, r["run_id"]))["status"] for r in runs]
    assert statuses == ["success"] * 4
    await wait_for_thread_status(client, thread_id, "idle")


async def test_delete_running_run(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id)
    await client.runs.delete(thread_id, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])
    await wait_for_thread_status(client, thread_id, "idle")
    response = await http.delete(f"/threads/{thread_id}/runs/{run['run_id']}")
    assert response.status_code == 404
