"""The thread-centric protocol through the SDK's own high-level API: `client.threads.stream`
(values, messages, tool calls, extensions, subgraphs, interrupts), its WebSocket
transport, `RemoteGraph.astream_events(version="v3")`, and the wire contract of
`/threads/{id}/commands` and `/threads/{id}/stream/events`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command
from langgraph_sdk.client import LangGraphClient

from tests.serverproc import ROOT, ServerProcess

WEATHER = {"messages": [{"role": "user", "content": "weather?"}]}
FINAL_WEATHER = "The forecast: It is sunny in Paris."
ALL_CHANNELS = ["values", "updates", "messages", "tools", "lifecycle", "input", "tasks", "custom"]

pytestmark = pytest.mark.timeout(60)


def _last_text(values: dict[str, Any]) -> str:
    content = values["messages"][-1]["content"]
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content)
    return str(content)


async def _events(
    http: httpx.AsyncClient, thread_id: str, body: dict[str, Any], *, until_seq: int
) -> list[dict[str, Any]]:
    """Events of the thread's log (raw SSE) up to number `until_seq`."""
    events: list[dict[str, Any]] = []
    async with http.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line:
                name, _, value = line.partition(": ")
                frame[name] = value
                continue
            if "data" in frame:
                event = orjson.loads(frame["data"])
                assert frame["event"] == event["method"]
                assert frame["id"] == str(event["seq"]) == event["event_id"]
                events.append(event)
                if event["seq"] >= until_seq:
                    return events
            frame = {}
    return events


async def _command(
    http: httpx.AsyncClient,
    thread_id: str,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    command_id: int = 1,
) -> dict[str, Any]:
    """POST one command; its response envelope."""
    body = {"id": command_id, "method": method, "params": params or {}}
    response = await http.post(f"/threads/{thread_id}/commands", json=body)
    envelope: dict[str, Any] = response.json()
    return envelope


async def _start_run(
    http: httpx.AsyncClient, thread_id: str, params: dict[str, Any], *, command_id: int = 1
) -> str:
    """`run.start`, which must succeed; the run's id."""
    started = await _command(http, thread_id, "run.start", params, command_id=command_id)
    assert started["type"] == "success", started
    return str(started["result"]["run_id"])


async def _finished_seq(http: httpx.AsyncClient, thread_id: str) -> int:
    """The number of the run's terminal lifecycle event (waiting for it)."""
    events = await asyncio.wait_for(_terminal(http, thread_id), timeout=20)
    return int(events[-1]["seq"])


async def _terminal(http: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with http.stream(
        "POST", f"/threads/{thread_id}/stream/events", json={"channels": ["lifecycle"]}
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                event = orjson.loads(line[len("data: ") :])
                seen.append(event)
                data = event["params"]["data"]
                if not event["params"]["namespace"] and data["event"] in (
                    "completed",
                    "failed",
                    "interrupted",
                ):
                    return seen
    raise AssertionError("the stream ended before the run did")


# --- the SDK's high-level API ---------------------------------------------------------


async def test_values_and_output_of_a_tool_calling_agent(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="tool_agent") as thread:
        result = await thread.run.start(input=WEATHER)
        assert uuid.UUID(result["run_id"])
        snapshots = [snapshot async for snapshot in thread.values]
        output = await thread.output
    assert _last_text(output) == FINAL_WEATHER
    assert [len(s.get("messages", [])) for s in snapshots][-1] == 4
    assert snapshots[-1]["messages"][-1]["type"] == "ai"
    state = await client.threads.get_state(thread.thread_id)
    assert state["values"]["messages"][-1]["id"] == output["messages"][-1]["id"]


async def test_messages_are_assembled_from_deltas(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="tool_agent") as thread:
        await thread.run.start(input=WEATHER)
        # a message completes as the iteration feeds it: read it once the run is over
        messages = [message async for message in thread.messages]
        texts = [await message.text for message in messages]
        calls = [[call["name"] for call in (await m.output).tool_calls] for m in messages]
    assert texts == ["", FINAL_WEATHER]
    assert calls == [["get_weather"], []]


async def test_tool_calls_carry_input_and_output(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="tool_agent") as thread:
        await thread.run.start(input=WEATHER)
        handles = [call async for call in thread.tool_calls]
        calls = [(call.name, call.input, await call.output) for call in handles]
    assert len(calls) == 1
    name, tool_input, output = calls[0]
    assert (name, tool_input) == ("get_weather", {"city": "Paris"})
    assert output["content"] == "It is sunny in Paris."
    assert output["tool_call_id"] == "call_1"


async def test_named_extension_events(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="extension") as thread:
        await thread.run.start(input={"n": 3})
        progress = [item async for item in thread.extensions["progress"]]
        assert (await thread.output) == {"n": 3, "done": 3}
    assert [item["payload"] for item in progress] == [{"step": 0}, {"step": 1}, {"step": 2}]
    assert {item["name"] for item in progress} == {"progress"}


async def test_subagent_events_carry_their_namespace(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="deep_agent") as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "go"}]})
        children = [child async for child in thread.subgraphs]
        assert len(children) == 1
        child = children[0]
        assert child.graph_name == "tools"
        assert len(child.namespace) == 1 and child.namespace[0].startswith("tools:")
        child_messages = [message async for message in child.messages]
        child_texts = [await message.text for message in child_messages]
        child_tools = [call.name async for call in child.tool_calls]
        output = await thread.output
    assert child_texts == ["", "Found: 3 results for otters."]
    assert child_tools == ["search"]
    assert _last_text(output).startswith("Report:")


async def test_interrupt_respond_and_output(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="hitl") as thread:
        await thread.run.start(input={"question": "Ship it?"})
        before = [snapshot async for snapshot in thread.values]  # ends at the interrupt
        assert before[-1]["question"] == "Ship it?"
        assert thread.interrupted
        [pending] = thread.interrupts
        assert pending["namespace"] == []
        await thread.run.respond("yes")
        output = await thread.output
    assert output["answer"] == "yes"
    assert output["messages"][-1]["content"] == "answer: yes"
    state = await client.threads.get_state(thread.thread_id)
    assert state["next"] == [] and state["interrupts"] == []


async def test_run_start_on_an_interrupted_thread_resumes_it(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = str(uuid.uuid4())
    await _start_run(http, thread_id, {"assistant_id": "hitl", "input": {}})
    await _finished_seq(http, thread_id)
    resume = {"assistant_id": "hitl", "input": "go ahead"}
    run_id = await _start_run(http, thread_id, resume, command_id=2)
    run = await client.runs.join(thread_id, run_id)
    assert run["answer"] == "go ahead"


async def test_two_concurrent_thread_streams(client: LangGraphClient) -> None:
    async def one(graph: str, run_input: dict[str, Any]) -> dict[str, Any]:
        async with client.threads.stream(assistant_id=graph) as thread:
            await thread.run.start(input=run_input)
            result: dict[str, Any] = await thread.output
            return result

    weather, extension = await asyncio.gather(
        one("tool_agent", WEATHER), one("extension", {"n": 2})
    )
    assert _last_text(weather) == FINAL_WEATHER
    assert extension == {"n": 2, "done": 2}


async def test_websocket_transport(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="tool_agent", transport="websocket") as thread:
        await thread.run.start(input=WEATHER)
        messages = [message async for message in thread.messages]
        texts = [await message.text for message in messages]
        output = await thread.output
    assert texts == ["", FINAL_WEATHER]
    assert _last_text(output) == FINAL_WEATHER


async def test_cancel_during_a_stream_ends_the_iterators(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="slow") as thread:
        started = await thread.run.start(
            input={}, config={"configurable": {"steps": 200, "delay": 0.05}}
        )
        seen: list[Any] = []

        async def consume() -> None:
            async for snapshot in thread.values:
                seen.append(snapshot)
                if snapshot.get("count") == 2:
                    await client.runs.cancel(thread.thread_id, started["run_id"])

        await asyncio.wait_for(consume(), timeout=20)
        with pytest.raises(RuntimeError, match="cancelled"):
            await thread.output.with_timeout(10)
    run = await client.runs.get(thread.thread_id, started["run_id"])
    assert run["status"] == "interrupted"
    assert max(s.get("count", 0) for s in seen) < 200


async def test_failed_run_fails_the_output(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="fail") as thread:
        await thread.run.start(input={})
        with pytest.raises(RuntimeError, match="boom"):
            await thread.output.with_timeout(10)


async def test_remote_graph_v3_with_resume(server: ServerProcess) -> None:
    remote = RemoteGraph("hitl", url=server.url)
    thread_id = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread_id}}
    async with await remote.astream_events({"question": "Deploy?"}, config, version="v3") as run:
        snapshots = [snapshot async for snapshot in run.values]
        assert snapshots[-1]["question"] == "Deploy?"
        assert await run.interrupted()
        [pending] = await run.interrupts()
        assert pending["value"] == {"question": "Deploy?"}
    async with await remote.astream_events(Command(resume="ok"), config, version="v3") as run:
        output = await run.output()
    assert output["answer"] == "ok"


async def test_remote_graph_v3_messages(server: ServerProcess) -> None:
    remote = RemoteGraph("tool_agent", url=server.url)
    async with await remote.astream_events(WEATHER, version="v3") as run:
        messages = [message async for message in run.messages]
        texts = [await message.text for message in messages]
        output = await run.output()
    assert texts[-1] == FINAL_WEATHER
    assert _last_text(output) == FINAL_WEATHER


# --- the wire contract ----------------------------------------------------------------


async def test_events_have_increasing_numbers_and_the_reference_shape(
    http: httpx.AsyncClient,
) -> None:
    thread_id = str(uuid.uuid4())
    start = {"assistant_id": "tool_agent", "input": WEATHER}
    response = await http.post(
        f"/threads/{thread_id}/commands", json={"id": 7, "method": "run.start", "params": start}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["type"] == "success" and body["id"] == 7
    assert body["meta"] == {"applied_through_seq": 0}
    last = await _finished_seq(http, thread_id)
    events = await _events(http, thread_id, {"channels": ALL_CHANNELS}, until_seq=last)
    assert [e["seq"] for e in events] == list(range(1, last + 1))
    assert events[0]["params"]["data"] == {"event": "running", "graph_name": "tool_agent"}
    assert events[-1]["params"]["data"] == {"event": "completed", "graph_name": "tool_agent"}
    methods = {e["method"] for e in events}
    assert {"values", "messages", "tools", "lifecycle"} <= methods
    for event in events:
        assert event["type"] == "event"
        assert set(event["params"]) == {"namespace", "timestamp", "data"}
    starts = [e for e in events if e["params"]["data"].get("event") == "message-start"]
    assert [s["params"]["data"]["role"] for s in starts] == ["ai", "ai"]


async def test_filters_by_channel_namespace_and_depth(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    go = {"assistant_id": "deep_agent", "input": {"messages": [{"role": "user", "content": "go"}]}}
    await _start_run(http, thread_id, go)
    last = await _finished_seq(http, thread_id)
    everything = await _events(http, thread_id, {"channels": ALL_CHANNELS}, until_seq=last)
    nested = [e for e in everything if e["params"]["namespace"]]
    assert nested, "the subagent's events carry its namespace"
    child = nested[0]["params"]["namespace"][:1]

    root_tools = await _events(
        http,
        thread_id,
        {"channels": ["tools", "lifecycle"], "namespaces": [[]], "depth": 0},
        until_seq=last,
    )
    assert all(e["params"]["namespace"] == [] for e in root_tools)
    assert {e["method"] for e in root_tools} == {"tools", "lifecycle"}

    # a segment without its task id matches every task of that node
    scoped = await _events(
        http,
        thread_id,
        {"channels": ["messages", "lifecycle"], "namespaces": [["tools"]]},
        until_seq=max(e["seq"] for e in nested),
    )
    assert scoped and all(e["params"]["namespace"][:1] == child for e in scoped)
    started = next(e for e in scoped if e["method"] == "lifecycle")["params"]["data"]
    assert started["event"] == "started" and started["graph_name"] == "researcher"


async def test_resume_after_a_dropped_connection_repeats_and_loses_nothing(
    http: httpx.AsyncClient,
) -> None:
    thread_id = str(uuid.uuid4())
    await _start_run(http, thread_id, {"assistant_id": "tool_agent", "input": WEATHER})
    last = await _finished_seq(http, thread_id)
    first = await _events(http, thread_id, {"channels": ALL_CHANNELS}, until_seq=10)
    rest = await _events(
        http, thread_id, {"channels": ALL_CHANNELS, "since": first[-1]["seq"]}, until_seq=last
    )
    ids = [e["event_id"] for e in first + rest]
    assert len(ids) == len(set(ids)) == last


async def test_custom_channel_subscription(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    await _start_run(http, thread_id, {"assistant_id": "extension", "input": {}})
    last = await _finished_seq(http, thread_id)
    named = await _events(
        http, thread_id, {"channels": ["custom:progress", "lifecycle"]}, until_seq=last
    )
    custom = [e["params"]["data"] for e in named if e["method"] == "custom"]
    assert custom == [{"name": "progress", "payload": {"step": i}} for i in range(3)]
    every = await _events(http, thread_id, {"channels": ["custom", "lifecycle"]}, until_seq=last)
    plain = [e["params"]["data"] for e in every if e["method"] == "custom"]
    assert {"step": 0} in plain and len(plain) == 6


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "channels is required and must be a non-empty array"),
        ({"channels": []}, "channels is required and must be a non-empty array"),
        ({"channels": ["bogus"]}, "channels contains unsupported entries: bogus"),
        ({"channels": ["values"], "since": -1}, "since must be a non-negative integer"),
        ({"channels": ["values"], "namespaces": "x"}, "namespaces must be an array"),
    ],
)
async def test_bad_stream_requests_are_400(
    http: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    response = await http.post(f"/threads/{uuid.uuid4()}/stream/events", json=body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)


@pytest.mark.parametrize(
    ("command", "status", "error"),
    [
        ({"id": 1, "method": "nope"}, 200, "unknown_command"),
        ({"id": 2, "method": "run.start", "params": {}}, 200, "invalid_argument"),
        (
            {"id": 3, "method": "run.start", "params": {"assistant_id": "ghost"}},
            200,
            "invalid_argument",
        ),
        (
            {"id": 4, "method": "input.respond", "params": {"interrupt_id": "x", "response": 1}},
            200,
            "no_such_run",
        ),
        ({"id": 5, "method": "agent.getTree"}, 200, "no_such_run"),
        (
            {"id": 6, "method": "subscription.unsubscribe", "params": {"subscription_id": "x"}},
            200,
            "no_such_subscription",
        ),
        ({"method": "run.start"}, 400, "invalid_argument"),
        ({"id": "1", "method": "run.start"}, 400, "invalid_argument"),
    ],
)
async def test_command_errors(
    http: httpx.AsyncClient, command: dict[str, Any], status: int, error: str
) -> None:
    thread_id = uuid.uuid4()
    response = await http.post(f"/threads/{thread_id}/commands", json=command)
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["error"] == error and body["message"]
    assert body["id"] == (command.get("id") if status == 200 else None)
    # nothing was created by a refused command
    assert (await http.get(f"/threads/{thread_id}")).status_code == 404


async def test_respond_to_an_unknown_interrupt(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = str(uuid.uuid4())
    await _start_run(http, thread_id, {"assistant_id": "hitl", "input": {}})
    await _finished_seq(http, thread_id)
    respond = {"interrupt_id": "nope", "response": 1}
    body = await _command(http, thread_id, "input.respond", respond, command_id=2)
    assert body["error"] == "no_such_interrupt"
    assert (await client.threads.get(thread_id))["status"] == "interrupted"


async def test_non_uuid_thread_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/threads/abc/commands", json={"id": 1, "method": "run.start"})
    assert response.status_code == 422


async def test_websocket_subscriptions_and_commands(server: ServerProcess) -> None:
    from websockets.asyncio.client import ClientConnection, connect

    async def call(socket: ClientConnection, command_id: int, method: str, **params: Any) -> None:
        await socket.send(orjson.dumps({"id": command_id, "method": method, "params": params}))

    thread_id = str(uuid.uuid4())
    url = server.url.replace("http://", "ws://") + f"/threads/{thread_id}/stream/events"
    async with connect(url) as socket:
        await call(socket, 1, "subscription.subscribe", channels=["lifecycle"])
        subscribed = orjson.loads(await socket.recv())
        assert subscribed["type"] == "success" and subscribed["result"]["subscription_id"]
        await call(socket, 2, "subscription.subscribe", channels=["custom"])
        assert orjson.loads(await socket.recv())["id"] == 2
        await call(socket, 3, "run.start", assistant_id="extension", input={})
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1].get("params", {}).get("data", {}).get("event") != (
            "completed"
        ):
            frames.append(orjson.loads(await asyncio.wait_for(socket.recv(), 20)))
        started = [f for f in frames if f.get("type") == "success"]
        assert started and started[0]["id"] == 3
        events = [f for f in frames if f.get("type") == "event"]
        assert {e["method"] for e in events} == {"lifecycle", "custom"}
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(set(seqs))
        subscription_id = subscribed["result"]["subscription_id"]
        await call(socket, 4, "subscription.unsubscribe", subscription_id=subscription_id)
        assert orjson.loads(await socket.recv())["type"] == "success"
        await socket.send("not json")
        assert orjson.loads(await socket.recv())["error"] == "invalid_argument"


async def test_a_queued_run_cancelled_ends_the_wait(backend: str) -> None:
    """With no worker to take it, a cancelled run still tells its clients it is over."""
    from langgraph_sdk import get_client

    api_only = ServerProcess(backend=backend, jobs=0).start()
    client = get_client(url=api_only.url, api_key=None)
    try:
        async with client.threads.stream(assistant_id="echo") as thread:
            started = await thread.run.start(input={})
            await client.runs.cancel(thread.thread_id, started["run_id"])
            with pytest.raises(RuntimeError, match="cancelled"):
                await thread.output.with_timeout(10)
        run = await client.runs.get(thread.thread_id, started["run_id"])
        assert run["status"] == "interrupted"
    finally:
        await client.http.client.aclose()
        api_only.stop()


async def test_cancelling_a_queued_run_leaves_the_running_one_alone(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = str(uuid.uuid4())
    # long enough (3 s) that the queued run is cancelled while this one still runs
    knobs = {"steps": 10, "delay": 0.3}
    slow = {"assistant_id": "slow", "input": {}, "config": {"configurable": knobs}}
    first = await _start_run(http, thread_id, slow)
    second = await _start_run(http, thread_id, {"assistant_id": "echo", "input": {}}, command_id=2)
    await client.runs.cancel(thread_id, second)
    lifecycle = await asyncio.wait_for(_terminal(http, thread_id), timeout=20)
    ends = [e["params"]["data"] for e in lifecycle if e["params"]["data"]["event"] != "running"]
    assert ends == [{"event": "completed", "graph_name": "slow"}]
    run = await client.runs.get(thread_id, first)
    assert run["status"] == "success"


async def test_runtime_factory_graph_through_the_protocol(backend: str) -> None:
    """A graph factory taking a ServerRuntime gets the execution runtime for run.start."""
    from langgraph_sdk import get_client

    fixtures = ServerProcess(
        backend=backend, config=ROOT / "tests" / "fixtures" / "langgraph.json"
    ).start()
    client = get_client(url=fixtures.url, api_key=None)
    try:
        async with client.threads.stream(assistant_id="factory_runtime") as thread:
            await thread.run.start(input={"messages": [{"role": "user", "content": "hi"}]})
            output = await thread.output
        assert output["messages"][-1]["content"].startswith("runtime threads.create_run")
    finally:
        await client.http.client.aclose()
        fixtures.stop()


def test_sync_client_thread_stream(server: ServerProcess) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server.url, api_key=None)
    with client.threads.stream(assistant_id="tool_agent") as thread:
        thread.run.start(input=WEATHER)
        calls = [call.name for call in thread.tool_calls]
        output = thread.output
    assert calls == ["get_weather"]
    assert _last_text(output) == FINAL_WEATHER


async def test_legacy_checkpoints_channel_is_accepted(http: httpx.AsyncClient) -> None:
    """SDKs still list `checkpoints` among all channels (`thread.events`)."""
    body = {"channels": ["values", "checkpoints", "lifecycle"]}
    async with http.stream("POST", f"/threads/{uuid.uuid4()}/stream/events", json=body) as r:
        assert r.status_code == 200


async def test_interleave_subscribe_and_raw_events(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="tool_agent") as thread:
        await thread.run.start(input=WEATHER)
        kinds = [kind async for kind, _ in thread.interleave_projections(["values", "tool_calls"])]
        raw = []
        async for event in thread.events:  # a connection of its own: the log from the start
            raw.append(event)
            if event["method"] == "lifecycle" and event["params"]["data"]["event"] == "completed":
                break
    assert kinds.count("tool_calls") == 1 and kinds.count("values") >= 3
    assert [event["seq"] for event in raw] == list(range(1, len(raw) + 1))
    # a later session on the same thread reads the log again
    async with client.threads.stream(thread.thread_id, assistant_id="tool_agent") as again:
        lifecycle = [
            event["params"]["data"]["event"]
            async for event in again.subscribe(["lifecycle"], namespaces=[[]], depth=0)
        ]
    assert lifecycle == ["running", "completed"]


async def test_run_whose_workers_keep_dying_fails_in_the_log(backend: str) -> None:
    """With one attempt allowed, a killed executor's protocol run ends `failed` in the
    thread's log (scale-out: the log lives in Redis and outlives the process)."""
    if backend != "postgres":
        pytest.skip("the embedded deployment keeps event logs in memory")
    env = {
        "THREADLINE_MAX_ATTEMPTS": "1",
        "THREADLINE_LEASE_SECONDS": "2",
        "THREADLINE_HEARTBEAT_SECONDS": "0.5",
    }
    proc = ServerProcess(backend=backend, env=env).start()
    thread_id = str(uuid.uuid4())
    knobs = {"steps": 400, "delay": 0.05}
    slow = {"assistant_id": "slow", "input": {}, "config": {"configurable": knobs}}
    try:
        async with httpx.AsyncClient(base_url=proc.url, timeout=20) as http:
            await _start_run(http, thread_id, slow)
            await _events(http, thread_id, {"channels": ["values"]}, until_seq=3)
        proc.kill()
        proc.start()
        async with httpx.AsyncClient(base_url=proc.url, timeout=20) as http:
            lifecycle = await asyncio.wait_for(_terminal(http, thread_id), timeout=30)
        end = lifecycle[-1]["params"]["data"]
        assert end["event"] == "failed" and "giving up" in end["error"]
    finally:
        proc.stop()


async def test_agent_tree_of_the_running_run(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    knobs = {"steps": 100, "delay": 0.05}
    slow = {"assistant_id": "slow", "input": {}, "config": {"configurable": knobs}}
    run_id = await _start_run(http, thread_id, slow)
    await _events(http, thread_id, {"channels": ["values"]}, until_seq=2)
    tree = await _command(http, thread_id, "agent.getTree", command_id=2)
    assert tree["result"]["tree"] == {
        "namespace": [],
        "status": "running",
        "graph_name": "slow",
    }
    await http.post(f"/threads/{thread_id}/runs/{run_id}/cancel?wait=true")


async def test_plain_custom_writes_reach_the_custom_channel(client: LangGraphClient) -> None:
    """`get_stream_writer()` writes of a graph with no stream transformer of its own."""
    async with client.threads.stream(assistant_id="custom") as thread:
        await thread.run.start(input={"n": 4})
        written = [
            event["params"]["data"]
            async for event in thread.subscribe(["custom"], namespaces=[[]], depth=0)
        ]
    assert written == [{"i": i} for i in range(4)]


async def test_a_deleted_thread_takes_its_log_with_it(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = str(uuid.uuid4())
    await _start_run(http, thread_id, {"assistant_id": "extension", "input": {}})
    first_run = await _finished_seq(http, thread_id)
    await client.threads.delete(thread_id)
    await _start_run(http, thread_id, {"assistant_id": "custom", "input": {"n": 1}})
    last = await _finished_seq(http, thread_id)
    events = await _events(http, thread_id, {"channels": ALL_CHANNELS}, until_seq=last)
    assert [e["seq"] for e in events] == list(range(1, last + 1))
    assert {
        e["params"]["data"].get("graph_name") for e in events if e["method"] == "lifecycle"
    } == {"custom"}
    assert last < first_run
