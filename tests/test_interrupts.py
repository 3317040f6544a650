"""Interrupts and resume, several assistants on one thread (issue: cancel/multitask/HITL)."""

from __future__ import annotations

from langgraph_sdk.client import LangGraphClient

from tests.helpers import new_thread

HUMAN = {"messages": [{"role": "user", "content": "hi"}]}


async def test_interrupt_then_resume(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(thread_id, "hitl", input={"question": "ship it?"})
    assert out["__interrupt__"][0]["value"] == {"question": "ship it?"}
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    [(_task_id, interrupts)] = thread["interrupts"].items()
    assert interrupts[0]["value"] == {"question": "ship it?"}
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["review"]
    assert state["interrupts"][0]["id"] == interrupts[0]["id"]
    runs = await client.runs.list(thread_id)
    assert runs[0]["status"] == "success"  # as the reference: only the thread says interrupted

    out = await client.runs.wait(thread_id, "hitl", command={"resume": "yes"})
    assert out["answer"] == "yes"
    assert out["messages"][-1]["content"] == "answer: yes"
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["interrupts"] == {}


async def test_several_interrupts_resumed_by_id(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(thread_id, "hitl_multi", input={})
    pending = {i["value"]["side"]: i["id"] for i in out["__interrupt__"]}
    assert set(pending) == {"left", "right"}
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    out = await client.runs.wait(
        thread_id,
        "hitl_multi",
        command={"resume": {pending["left"]: "L", pending["right"]: "R"}},
    )
    assert sorted(out["answers"]) == ["left=L", "right=R"]
    assert out["done"] is True


async def test_interrupt_inside_a_subgraph(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(thread_id, "hitl_sub", input={})
    assert out["__interrupt__"][0]["value"] == {"approve": "deploy?"}
    state = await client.threads.get_state(thread_id, subgraphs=True)
    assert state["next"] == ["child"]
    assert state["tasks"][0]["state"]["next"] == ["approve"]
    parts = [
        p
        async for p in client.runs.stream(
            thread_id, "hitl_sub", command={"resume": "ok"}, stream_mode="updates"
        )
    ]
    assert parts[0].event == "metadata"
    final = await client.threads.get_state(thread_id)
    # the child returns its whole state, so the parent's reducer sees "start" twice
    assert final["values"]["trail"] == ["start", "start", "approve", "finish:ok"]
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt_before_and_continue(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input=HUMAN, interrupt_before=["echo"])
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["echo"]
    out = await client.runs.wait(thread_id, "echo", input=None)
    assert out["messages"][-1]["content"] == "echo: hi"
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_update_state_while_interrupted_then_resume(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "hitl", input={"question": "q?"})
    await client.threads.update_state(thread_id, {"question": "changed?"})
    state = await client.threads.get_state(thread_id)
    assert state["values"]["question"] == "changed?"
    assert state["next"] == ["review"]
    out = await client.runs.wait(thread_id, "hitl", command={"resume": "fine"})
    assert out["answer"] == "fine"


async def test_command_update_and_goto(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "hitl", input={"question": "q?"}, interrupt_before=["echo"])
    out = await client.runs.wait(thread_id, "hitl", command={"resume": "yes"})
    # stopped before echo; jump there with an update instead of continuing
    out = await client.runs.wait(
        thread_id, "hitl", command={"update": {"answer": "forced"}, "goto": "echo"}
    )
    assert out["messages"][-1]["content"] == "answer: forced"


async def test_assistants_of_different_graphs_share_a_thread(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input=HUMAN)
    await client.runs.wait(thread_id, "slow", input={}, context={"steps": 1, "delay": 0})
    thread = await client.threads.get(thread_id)
    assert thread["metadata"]["graph_id"] == "slow"
    custom = await client.assistants.create("echo", context={"x": 1}, name="custom-echo")
    out = await client.runs.wait(thread_id, custom["assistant_id"], input=HUMAN)
    # the checkpoint keeps the channels of both graphs; echo's view shows its own
    assert [m["content"] for m in out["messages"]] == ["hi", "echo: hi", "hi", "echo: hi"]
    thread = await client.threads.get(thread_id)
    assert thread["metadata"]["assistant_id"] == custom["assistant_id"]
    assert thread["metadata"]["graph_id"] == "echo"
    assert thread["config"]["configurable"]["x"] == 1
    state = await client.threads.get_state(thread_id)
    assert "messages" in state["values"]
