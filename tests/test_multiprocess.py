"""The scale-out deployment as several processes on loopback sharing one PostgreSQL
database (and Redis, or PostgreSQL's own broker): `serve` A (API and runs), `serve
--jobs 0` B (API only) and `worker` W (runs only). Any API process creates, streams,
joins and cancels any run, whichever process executes it; a killed executor's runs come
back; SIGTERM hands runs over."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests import serverproc
from tests.helpers import start_slow_run, wait_for_status
from tests.serverproc import ServerProcess
from tests.sse_client import Frame, frames, read_all
from tests.test_broker import PrivateRedis


def _services_up() -> bool:
    import redis

    try:
        psycopg.connect(serverproc.POSTGRES_ADMIN_URI, connect_timeout=2).close()
        redis.Redis.from_url(serverproc.REDIS_URI, socket_connect_timeout=1).ping()
    except Exception:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _services_up(), reason="needs PostgreSQL and Redis on this machine"
)


@dataclass
class Cluster:
    database_uri: str
    a: ServerProcess  # serve: API and runs
    b: ServerProcess  # serve --jobs 0: API only
    w: ServerProcess  # worker: runs only

    @property
    def executors(self) -> list[ServerProcess]:
        return [self.a, self.w]

    def client(self, proc: ServerProcess) -> LangGraphClient:
        return get_client(url=proc.url, api_key=None)

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.database_uri) as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

    async def executor_of(self, run_id: str, timeout: float = 10.0) -> ServerProcess:
        """The process holding a running run (from the worker id on its row)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = await self.query(
                "SELECT worker_id FROM runs WHERE run_id = %s AND status = 'running'", run_id
            )
            if rows and rows[0][0]:
                pid = int(rows[0][0].split(":")[1])
                for proc in self.executors:
                    if proc.proc is not None and proc.proc.pid == pid:
                        return proc
                raise AssertionError(f"run {run_id} is held by unknown process {pid}")
            await asyncio.sleep(0.02)
        raise AssertionError(f"run {run_id} was not claimed in {timeout}s")

    def ensure_running(self) -> None:
        for proc in (self.a, self.b, self.w):
            if proc.proc is None or proc.proc.poll() is not None:
                proc.start()


@pytest.fixture(scope="module", params=["redis", "postgres-broker"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    name = serverproc.create_database()
    uri = serverproc.postgres_uri(name)
    redis_uri = serverproc.REDIS_URI if request.param == "redis" else None
    common: dict[str, Any] = {"backend": "postgres", "database_uri": uri, "redis_uri": redis_uri}
    a = ServerProcess(jobs=4, **common).start()
    b = ServerProcess(jobs=0, **common).start()
    w = ServerProcess(jobs=4, command="worker", **common).start()
    yield Cluster(uri, a, b, w)
    for proc in (a, b, w):
        proc.stop()
    serverproc.drop_database(name)


@pytest.fixture
def live(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with every process up (a test may have killed one)."""
    cluster.ensure_running()
    yield cluster
    cluster.ensure_running()


async def _log(client: LangGraphClient, thread_id: str) -> list[str]:
    state = await client.threads.get_state(thread_id)
    return list(state["values"].get("log") or [])


async def _wait_for_steps(client: LangGraphClient, thread_id: str, steps: int) -> None:
    deadline = time.monotonic() + 20
    while len(await _log(client, thread_id)) < steps:
        assert time.monotonic() < deadline, f"fewer than {steps} steps in 20s"
        await asyncio.sleep(0.05)


async def test_200_background_runs_on_50_threads_run_once_in_order(live: Cluster) -> None:
    api = [live.client(live.a), live.client(live.b)]
    threads = [str((await api[i % 2].threads.create())["thread_id"]) for i in range(50)]
    started = time.monotonic()
    run_ids: list[str] = []
    for k in range(4):  # round k is created after round k-1 on every thread
        created = await asyncio.gather(
            *(
                api[(i + k) % 2].runs.create(
                    thread_id, "echo", input={"messages": [{"role": "user", "content": f"{k}"}]}
                )
                for i, thread_id in enumerate(threads)
            )
        )
        run_ids += [str(run["run_id"]) for run in created]
    created_in = time.monotonic() - started
    executors: set[str] = set()
    deadline = time.monotonic() + 60
    while True:
        rows = await live.query(
            "SELECT status, worker_id FROM runs WHERE run_id = ANY(%s)", run_ids
        )
        executors |= {w.split(":")[1] for s, w in rows if s == "running" and w}
        if all(status == "success" for status, _ in rows) and len(rows) == 200:
            break
        assert time.monotonic() < deadline, f"not done in 60s: {sorted(s for s, _ in rows)}"
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - started
    print(f"200 runs: created in {created_in:.1f}s, all done in {elapsed:.1f}s")
    attempts = await live.query("SELECT attempt FROM runs WHERE run_id = ANY(%s)", run_ids)
    assert {a for (a,) in attempts} == {1}
    for i, thread_id in enumerate(threads):
        state = await api[i % 2].threads.get_state(thread_id)
        contents = [m["content"] for m in state["values"]["messages"]]
        assert contents == [x for k in range(4) for x in (f"{k}", f"echo: {k}")], thread_id
        assert (await api[(i + 1) % 2].threads.get(thread_id))["status"] == "idle"
    # both executing processes took part (the API-only one never does)
    assert executors <= {str(live.a.proc.pid), str(live.w.proc.pid)}  # type: ignore[union-attr]
    assert len(executors) == 2, executors


async def test_kill_9_of_the_executor_resumes_on_another_process(live: Cluster) -> None:
    api = live.client(live.b)  # API only: never the one killed
    thread_id, run_id = await start_slow_run(api, steps=12, delay=0.25)
    holder = await live.executor_of(run_id)
    await _wait_for_steps(api, thread_id, 3)
    killed_at = time.monotonic()
    holder.kill()
    await wait_for_status(api, thread_id, run_id, {"success", "error"}, timeout=15)
    recovered_in = time.monotonic() - killed_at
    print(f"kill -9 of {holder.command}: run completed {recovered_in:.1f}s after the kill")
    assert (await api.runs.get(thread_id, run_id))["status"] == "success"
    assert recovered_in < 10
    # resumed from its last checkpoint: every step exactly once
    assert await _log(api, thread_id) == [f"step-{i}" for i in range(1, 13)]
    ((attempt,),) = await live.query("SELECT attempt FROM runs WHERE run_id = %s", run_id)
    assert attempt == 2
    assert (await api.threads.get(thread_id))["status"] == "idle"


async def test_cancel_on_one_process_stops_the_run_on_another(live: Cluster) -> None:
    for via_name in ("b", "a"):
        starter = live.client(live.b)
        thread_id, run_id = await start_slow_run(starter, steps=200, delay=0.05)
        holder = await live.executor_of(run_id)
        via = live.b if via_name == "b" or holder is live.a else live.a
        assert via is not holder
        await _wait_for_steps(starter, thread_id, 2)
        asked = time.monotonic()
        await live.client(via).runs.cancel(thread_id, run_id, wait=True)
        stopped_in = time.monotonic() - asked
        run = await starter.runs.get(thread_id, run_id)
        assert run["status"] == "interrupted"
        print(
            f"cancel via {via.command}/{via.jobs} of a run on {holder.command}: {stopped_in:.2f}s"
        )
        assert stopped_in < 3
        steps = len(await _log(starter, thread_id))
        await asyncio.sleep(0.5)
        assert len(await _log(starter, thread_id)) == steps < 200


async def test_multitask_reject_and_interrupt_across_processes(live: Cluster) -> None:
    a, b = live.client(live.a), live.client(live.b)
    thread_id, first = await start_slow_run(a, steps=200, delay=0.05)
    await wait_for_status(b, thread_id, first, {"running"})
    with pytest.raises(httpx.HTTPStatusError) as info:
        await b.runs.create(
            thread_id, "slow", input={}, context={"steps": 1}, multitask_strategy="reject"
        )
    assert info.value.response.status_code == 409
    second = await b.runs.create(
        thread_id,
        "slow",
        input={},
        context={"steps": 1, "delay": 0.01},
        multitask_strategy="interrupt",
    )
    await a.runs.join(thread_id, second["run_id"])
    assert (await b.runs.get(thread_id, first))["status"] == "interrupted"
    assert (await a.runs.get(thread_id, second["run_id"]))["status"] == "success"
    runs = await b.runs.list(thread_id)
    assert sorted(r["status"] for r in runs) == ["interrupted", "success"]


async def _first_frames(
    http: httpx.AsyncClient, thread_id: str, count: int
) -> tuple[str, list[Frame]]:
    body = {
        "assistant_id": "slow",
        "input": {},
        "context": {"steps": 10, "delay": 0.2},
        "stream_mode": ["values", "updates", "custom"],
        "if_not_exists": "create",
    }
    got: list[Frame] = []
    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        assert response.status_code == 200
        run_id = response.headers["content-location"].rsplit("/", 1)[-1]
        async for frame in frames(response):
            if frame.is_comment:
                continue
            got.append(frame)
            if len(got) == count:
                break  # the client goes away; the run goes on
    return run_id, got


async def test_stream_started_on_one_process_resumes_on_another(live: Cluster) -> None:
    thread_id = str(uuid.uuid4())
    async with (
        httpx.AsyncClient(base_url=live.a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=live.b.url, timeout=30) as on_b,
    ):
        run_id, first = await _first_frames(on_a, thread_id, 4)
        last_id = first[-1].id
        assert last_id is not None
        path = f"/threads/{thread_id}/runs/{run_id}/stream"
        async with on_b.stream("GET", path, headers={"Last-Event-ID": last_id}) as response:
            rest = await read_all(response)
        async with on_a.stream("GET", path, headers={"Last-Event-ID": "-1"}) as response:
            everything = await read_all(response)
    combined = [(f.id, f.event, f.data) for f in first + rest]
    assert combined == [(f.id, f.event, f.data) for f in everything]
    assert len({f.id for f in everything}) == len(everything)
    values = [f.data for f in everything if f.event == "values"]
    assert values[-1]["log"] == [f"step-{i}" for i in range(1, 11)]


async def test_join_on_one_process_of_a_run_on_another(live: Cluster) -> None:
    a, b = live.client(live.a), live.client(live.b)
    thread_id, run_id = await start_slow_run(a, steps=5, delay=0.1)
    result = await b.runs.join(thread_id, run_id)
    assert result["log"] == [f"step-{i}" for i in range(1, 6)]


async def test_sigterm_hands_running_runs_over_after_the_grace(live: Cluster) -> None:
    """Grace 3 s (tests/serverproc.py): short runs finish where they run; a long one is put
    back in the queue at once and finishes elsewhere from its last checkpoint."""
    api = live.client(live.b)
    long_thread, long_run = await start_slow_run(api, steps=40, delay=0.2)
    holder = await live.executor_of(long_run)
    # 7 short runs on 7 free jobs (3 on the holder, 4 elsewhere): at least 3 land on it
    shorts = [await start_slow_run(api, steps=4, delay=0.25) for _ in range(7)]
    on_holder = [run for _, run in shorts if await live.executor_of(run) is holder]
    assert on_holder
    assert holder.proc is not None
    asked = time.monotonic()
    holder.proc.send_signal(signal.SIGTERM)
    holder.proc.wait(20)
    exited_in = time.monotonic() - asked
    for run_id in on_holder:  # finished within the grace, where they ran
        ((status, attempt),) = await live.query(
            "SELECT status, attempt FROM runs WHERE run_id = %s", run_id
        )
        assert (status, attempt) == ("success", 1)
    other = await live.executor_of(long_run, timeout=2)  # taken over at once: no lease wait
    assert other is not holder
    await wait_for_status(api, long_thread, long_run, {"success"}, timeout=30)
    print(f"SIGTERM of {holder.command}: exited after {exited_in:.1f}s, the long run went on")
    assert 2.5 < exited_in < 10
    assert await _log(api, long_thread) == [f"step-{i}" for i in range(1, 41)]


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[tuple[Cluster, PrivateRedis]]:
    """A (runs) and B (API only) on a redis-server of the test's own, to restart."""
    redis_server = PrivateRedis()
    redis_server.start()
    name = serverproc.create_database()
    uri = serverproc.postgres_uri(name)
    common: dict[str, Any] = {
        "backend": "postgres",
        "database_uri": uri,
        "redis_uri": redis_server.url,
    }
    a = ServerProcess(jobs=4, **common).start()
    b = ServerProcess(jobs=0, **common).start()
    yield Cluster(uri, a, b, a), redis_server
    for proc in (a, b):
        proc.stop()
    serverproc.drop_database(name)
    redis_server.stop()


async def test_redis_restart_mid_run_loses_no_run_and_runs_none_twice(
    redis_cluster: tuple[Cluster, PrivateRedis],
) -> None:
    cluster, redis_server = redis_cluster
    a, b = cluster.client(cluster.a), cluster.client(cluster.b)
    thread_id, run_id = await start_slow_run(b, steps=16, delay=0.25)
    await _wait_for_steps(b, thread_id, 2)
    joined = asyncio.create_task(b.runs.join(thread_id, run_id))
    await asyncio.sleep(0.2)

    redis_server.stop()
    # What needs only the database goes on; what needs Redis says so.
    other_thread, other_run = await start_slow_run(b, steps=2, delay=0.05)
    during = await b.runs.join(thread_id, run_id)
    assert during["__error__"]["error"] == "Unavailable", during
    await asyncio.sleep(1.0)
    redis_server.start()

    result = await asyncio.wait_for(joined, 30)
    assert result["log"] == [f"step-{i}" for i in range(1, 17)]
    ((status, attempt),) = await cluster.query(
        "SELECT status, attempt FROM runs WHERE run_id = %s", run_id
    )
    assert (status, attempt) == ("success", 1)
    # its wake-up was lost with Redis; the workers' poll finds it
    await wait_for_status(b, other_thread, other_run, {"success"}, timeout=15)
    # signals flow again: a cancel through B reaches the run on A
    thread_id, run_id = await start_slow_run(b, steps=200, delay=0.05)
    await _wait_for_steps(b, thread_id, 2)
    asked = time.monotonic()
    await b.runs.cancel(thread_id, run_id, wait=True)
    assert time.monotonic() - asked < 3
    assert (await a.runs.get(thread_id, run_id))["status"] == "interrupted"
    # and streams are resumable again
    async with httpx.AsyncClient(base_url=cluster.a.url, timeout=30) as http:
        _, first = await _first_frames(http, str(uuid.uuid4()), 2)
    assert first[0].event == "metadata" and len(first) == 2


async def test_thread_protocol_across_processes(live: Cluster) -> None:
    """Commands to the API-only process, the run on another, the thread's events read from
    each process, a dropped reader resumed on another process, cancel from a third."""
    api = live.client(live.b)
    async with api.threads.stream(assistant_id="tool_agent") as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "weather?"}]})
        messages = [message async for message in thread.messages]
        texts = [await message.text for message in messages]
        output = await thread.output
    assert texts[-1] == "The forecast: It is sunny in Paris."
    assert output["messages"][-1]["content"]

    body = {"channels": ["values", "messages", "tools", "lifecycle"]}
    seen: dict[str, list[int]] = {}
    for proc in (live.a, live.b):
        async with httpx.AsyncClient(base_url=proc.url, timeout=20) as http:
            numbers: list[int] = []
            since = {} if not seen else {"since": seen["a"][4]}
            async with http.stream(
                "POST", f"/threads/{thread.thread_id}/stream/events", json={**body, **since}
            ) as response:
                async for frame in frames(response):
                    if frame.is_comment:
                        continue
                    numbers.append(int(frame.id or 0))
                    if _lifecycle(frame) == "completed":
                        break
                    if not seen and len(numbers) == 5:
                        break  # the dropped connection
            seen["a" if not seen else "b"] = numbers
    resumed = seen["a"][:5] + seen["b"]
    assert resumed == sorted(set(resumed)) and resumed[0] == 1

    # cancel from A a protocol run executing on the worker or A
    thread_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=live.b.url, timeout=20) as http:
        started = await http.post(
            f"/threads/{thread_id}/commands",
            json={
                "id": 1,
                "method": "run.start",
                "params": {
                    "assistant_id": "slow",
                    "input": {},
                    "config": {"configurable": {"steps": 200, "delay": 0.05}},
                },
            },
        )
        run_id = started.json()["result"]["run_id"]
        await live.executor_of(run_id)
        await live.client(live.a).runs.cancel(thread_id, run_id)
        async with http.stream(
            "POST", f"/threads/{thread_id}/stream/events", json={"channels": ["lifecycle"]}
        ) as response:
            ends = []
            async for frame in frames(response):
                if not frame.is_comment and _lifecycle(frame) != "running":
                    ends.append(frame.data["params"]["data"])
                    break
    assert ends[0]["event"] == "failed" and "cancelled" in ends[0]["error"]


def _lifecycle(frame: Frame) -> str | None:
    if frame.event != "lifecycle":
        return None
    return str(frame.data["params"]["data"]["event"])


def test_worker_command_needs_a_shared_database(tmp_path: Any, capsys: Any) -> None:
    from threadline.cli import main

    code = main(
        [
            "worker",
            "--config",
            str(serverproc.GRAPHS_CONFIG),
            "--database-uri",
            f"sqlite:///{tmp_path / 'x.db'}",
        ]
    )
    assert code == 2
    assert "postgresql://" in capsys.readouterr().err


def test_liveness_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from threadline.settings import ConfigError, Settings

    monkeypatch.setenv("THREADLINE_LEASE_SECONDS", "6")
    monkeypatch.setenv("THREADLINE_HEARTBEAT_SECONDS", "1.5")
    monkeypatch.setenv("THREADLINE_SHUTDOWN_GRACE_SECONDS", "0")
    monkeypatch.setenv("THREADLINE_MAX_ATTEMPTS", "5")
    settings = Settings.build(serverproc.GRAPHS_CONFIG)
    assert (settings.lease_seconds, settings.heartbeat_seconds) == (6.0, 1.5)
    assert (settings.shutdown_grace_seconds, settings.max_attempts) == (0.0, 5)
    monkeypatch.setenv("THREADLINE_HEARTBEAT_SECONDS", "6")
    with pytest.raises(ConfigError, match="shorter than"):
        Settings.build(serverproc.GRAPHS_CONFIG)
