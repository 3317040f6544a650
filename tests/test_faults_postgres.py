"""Faults around the database: PostgreSQL restarting under running scale-out servers (a
cluster of the test's own, to stop and start at will), and a run whose worker died once
too often, failed by the sweeper (or the embedded server's start-up) with its webhook."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from tests import serverproc
from tests.helpers import start_slow_run, wait_for_status
from tests.serverproc import ServerProcess, free_port
from tests.test_webhooks import WEBHOOK_ENV, Receiver


def _postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on the PATH, or Debian's versioned folders."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return Path(folders[-1]) if folders and Path(folders[-1], "initdb").exists() else None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder, on a free port: initdb'd once, then
    stopped and started at will. PostgreSQL refuses to run as root; as root its commands
    run as the `postgres` user, which then owns the folder."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="threadline-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, user="postgres")

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin_dir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed:\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off"
        )
        log = str(self.dir / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)


def _can_run_postgres() -> str | None:
    """Why a private cluster cannot be started here, or None."""
    if _postgres_bin() is None:
        return "initdb is not installed (PostgreSQL server binaries)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a `postgres` user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root without runuser"
    return None


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    reason = _can_run_postgres()
    if reason:
        pytest.skip(reason)
    bin_dir = _postgres_bin()
    assert bin_dir is not None
    cluster = PrivatePostgres(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


class Deployment:
    """`serve` (API and runs) and `worker` on a database of the private cluster, their
    events on the shared Redis under that database's own prefix."""

    def __init__(self, cluster: PrivatePostgres) -> None:
        self.name = f"threadline_t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(cluster.uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.uri = cluster.uri(self.name)
        common: dict[str, Any] = {
            "backend": "postgres",
            "database_uri": self.uri,
            "redis_uri": serverproc.REDIS_URI,
        }
        self.serve = ServerProcess(jobs=4, **common)
        self.worker = ServerProcess(jobs=4, command="worker", **common)

    def start(self) -> Deployment:
        self.serve.start()
        self.worker.start()
        return self

    def stop(self) -> None:
        for proc in (self.serve, self.worker):
            proc.stop()
        import redis

        client = redis.Redis.from_url(serverproc.REDIS_URI)
        try:
            keys = list(client.scan_iter(match=f"threadline:{self.name}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    def logs(self) -> str:
        return self.serve.log() + self.worker.log()

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.uri) as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()


async def _wait_until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.05)


async def _refused_while_down(url: str, thread_id: str, run_id: str) -> None:
    """What needs the database answers a 503 JSON error at once, not a hang or a 500."""
    body = {"assistant_id": "slow", "input": {}}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for method, path, payload in (
            ("GET", f"/threads/{thread_id}", None),
            ("GET", f"/threads/{thread_id}/runs/{run_id}", None),
            ("GET", f"/threads/{thread_id}/state", None),  # LangGraph's saver, on our pool
            ("POST", "/threads", {}),
            ("POST", f"/threads/{thread_id}/runs", body),
            ("GET", "/ok", None),
        ):
            asked = time.monotonic()
            response = await http.request(method, path, json=payload)
            took = time.monotonic() - asked
            assert response.status_code == 503, (method, path, response.text)
            assert "PostgreSQL is not reachable" in response.json()["detail"], response.text
            assert took < 5, f"{method} {path} took {took:.1f}s"


def _shared_redis_up() -> bool:
    import redis

    try:
        redis.Redis.from_url(serverproc.REDIS_URI, socket_connect_timeout=1).ping()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _shared_redis_up(), reason=f"needs Redis at {serverproc.REDIS_URI}")
async def test_postgres_restart_under_running_servers(private_postgres: PrivatePostgres) -> None:
    """PostgreSQL stops under `serve` and `worker` with six runs in flight, long enough
    for every lease to be given up, then starts again: the processes reconnect on their
    own and every run ends `success` once, each of its steps run once."""
    deployment = Deployment(private_postgres).start()
    receiver = Receiver().start()
    api = get_client(url=deployment.serve.url, api_key=None)
    try:
        runs = [
            await start_slow_run(api, steps=12, delay=0.25, webhook=receiver.url())
            for _ in range(6)
        ]
        run_ids = [run_id for _, run_id in runs]

        async def all_running() -> bool:
            rows = await deployment.query(
                "SELECT count(*) FROM runs WHERE run_id = ANY(%s) AND status = 'running'",
                run_ids,
            )
            return bool(rows[0][0] == len(run_ids))

        await _wait_until(all_running, "every run running", 15)
        private_postgres.stop()
        await _refused_while_down(deployment.serve.url, *runs[0])

        async def every_lease_given_up() -> bool:
            logs = deployment.logs()
            return all(f"run {run}: its lease could not be renewed" in logs for run in run_ids)

        await _wait_until(every_lease_given_up, "every run given up by its worker", 20)
        private_postgres.start()

        async def reconnected() -> bool:
            async with httpx.AsyncClient(base_url=deployment.serve.url, timeout=10) as http:
                return (await http.get("/ok")).status_code == 200

        await _wait_until(reconnected, "the API answering again", 15)
        for thread_id, run_id in runs:
            await wait_for_status(api, thread_id, run_id, {"success", "error"}, timeout=30)
        for thread_id, run_id in runs:
            assert (await api.runs.get(thread_id, run_id))["status"] == "success"
            assert [r["run_id"] for r in await api.runs.list(thread_id)] == [run_id]
            state = await api.threads.get_state(thread_id)
            assert state["values"]["log"] == [f"step-{i}" for i in range(1, 13)]
        attempts = await deployment.query(
            "SELECT attempt FROM runs WHERE run_id = ANY(%s)", run_ids
        )
        assert {attempt for (attempt,) in attempts} == {2}  # resumed once, elsewhere or here

        # new runs work, on whichever process claims them
        thread_id = str((await api.threads.create())["thread_id"])
        result = await api.runs.wait(thread_id, "slow", input={}, context={"steps": 2})
        assert result["log"] == ["step-1", "step-2"]

        # one webhook per run: none was carried to its end twice
        await receiver.wait_for(len(runs))
        bodies = [json.loads(request["body"]) for request in receiver.requests]
        assert sorted(body["run_id"] for body in bodies) == sorted(run_ids)
        assert {body["status"] for body in bodies} == {"success"}

        for proc in (deployment.serve, deployment.worker):
            log = proc.log()
            assert log.count("PostgreSQL is not reachable (") == 1, log
            assert log.count("renewing leases failed") == 1, log
            assert log.count("re-queueing runs with lapsed leases failed") == 1, log
            assert "re-queueing runs with lapsed leases works again" in log, log
    finally:
        await api.http.client.aclose()
        receiver.stop()
        deployment.stop()


async def test_run_failed_for_its_lost_workers_still_sends_its_webhook(backend: str) -> None:
    """One attempt allowed: the run's worker is killed, so the run fails (on SQLite when
    the server starts again, on PostgreSQL once the lease lapses) and its webhook goes out
    with the failure, from the outbox row written with it."""
    env = {
        **WEBHOOK_ENV,
        "THREADLINE_MAX_ATTEMPTS": "1",
        "THREADLINE_LEASE_SECONDS": "2",
        "THREADLINE_HEARTBEAT_SECONDS": "0.5",
    }
    proc = ServerProcess(backend=backend, env=env).start()
    receiver = Receiver().start()
    try:
        api = get_client(url=proc.url, api_key=None)
        thread_id, run_id = await start_slow_run(api, steps=200, delay=0.05, webhook=receiver.url())
        await wait_for_status(api, thread_id, run_id, {"running"})
        await api.http.client.aclose()
        proc.kill()
        proc.start()
        api = get_client(url=proc.url, api_key=None)
        run = await wait_for_status(api, thread_id, run_id, {"success", "error"}, timeout=20)
        assert run["status"] == "error"
        body = await receiver.delivered(timeout=15)
        assert (body["run_id"], body["thread_id"], body["status"]) == (run_id, thread_id, "error")
        assert body["error"]["error"] == "WorkerLost"
        assert (await api.threads.get(thread_id))["status"] == "error"
        await api.http.client.aclose()
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()
        proc.stop()
