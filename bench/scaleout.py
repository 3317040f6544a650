#!/usr/bin/env python3
"""Scale-out benchmarks: background-run throughput, claim latency, thread search at size.

Run by hand, never in CI, as a script (it imports its helpers from bench/run.py):

    .venv/bin/python bench/scaleout.py --help
    .venv/bin/python bench/scaleout.py --only throughput --topologies pg-1w pg-2w
    .venv/bin/python bench/scaleout.py --only claim
    .venv/bin/python bench/scaleout.py --only search --search-backends postgres sqlite

Every PostgreSQL case gets a database of its own (`threadline_bench_<purpose>_<hex>`),
created here and dropped afterwards, together with its Redis keys: Threadline prefixes
them with `threadline:<database name>:`, so they never meet anyone else's. Servers listen
on free loopback ports. Timestamps the server records (runs.created_at, started_at,
ended_at) are read straight from the database; the client and the servers share the
machine's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
import redis
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import MultitaskStrategy
from run import (
    BENCH_DIR,
    DEFAULT_CONFIG,
    DEFAULT_REFERENCE_CMD,
    ECHO_INPUT,
    REPO_DIR,
    BenchError,
    Server,
    TargetSpec,
    _spawn,
    fmt_num,
    lat_stats,
    machine_note,
    start_server,
    tree_pids,
    wait_for_reference_install,
)

from threadline.ids import new_id
from threadline.serialization import utcnow
from threadline.storage.database import Connection, Database, Params, Row
from threadline.storage.postgres.database import PostgresDatabase
from threadline.storage.runs import TERMINAL, RunRepository
from threadline.storage.sqlite.database import SqliteDatabase
from threadline.storage.threads import ThreadRepository

THREADLINE = REPO_DIR / ".venv" / "bin" / "threadline"
DEFAULT_ADMIN_URI = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URI = "redis://127.0.0.1:6379/0"
BENCHMARKS = ("throughput", "claim", "search")
TOPOLOGIES = ("sqlite", "pg-serve", "pg-1w", "pg-2w")
SEARCH_BACKENDS = ("postgres", "sqlite", "reference")
WORKER_READY = re.compile(r"worker \S+: graphs")
POLL_SECONDS = 0.05
RUN_INPUT: dict[str, Any] = dict(ECHO_INPUT)  # the same input as bench/run.py's echo runs

T = TypeVar("T")

# --------------------------------------------------------------------------------------
# small helpers


def ms_stats(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """lat_stats (milliseconds) without the keys the tables never show."""
    stats = lat_stats(list(seconds))
    return {k: stats[k] for k in ("n", "min", "p50", "p90", "p99", "max")}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def gather_limited(
    count: int, concurrency: int, fn: Callable[[int], Awaitable[T]]
) -> list[T]:
    """fn(0) ... fn(count - 1), at most `concurrency` at a time; results in order."""
    results: list[T | None] = [None] * count
    indexes = iter(range(count))

    async def lane() -> None:
        for i in indexes:
            results[i] = await fn(i)

    await asyncio.gather(*(lane() for _ in range(min(concurrency, count))))
    return cast(list[T], results)


def best_of(reps: list[dict[str, Any]], key: str, higher: bool) -> dict[str, Any]:
    """The better repetition by one metric (the machine is shared: keep the less disturbed)."""
    ok = [r for r in reps if r.get(key) is not None]
    if not ok:
        raise BenchError(f"no repetition produced {key}")
    return (max if higher else min)(ok, key=lambda r: float(r[key]))


# --------------------------------------------------------------------------------------
# PostgreSQL databases and Redis keys of one case


def database_uri(admin_uri: str, name: str) -> str:
    base, _, query = admin_uri.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


async def _admin(admin_uri: str, sql: str) -> None:
    async with await psycopg.AsyncConnection.connect(admin_uri, autocommit=True) as conn:
        await conn.execute(sql.encode())


def _drop_redis_keys(redis_uri: str, name: str) -> None:
    client = redis.Redis.from_url(redis_uri)
    try:
        keys = list(client.scan_iter(match=f"threadline:{name}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


@contextlib.asynccontextmanager
async def bench_database(opts: argparse.Namespace, purpose: str) -> AsyncIterator[str]:
    """A fresh `threadline_bench_*` database; yields its URI, drops it (and its keys)."""
    name = f"threadline_bench_{purpose}_{uuid.uuid4().hex[:8]}"
    await _admin(opts.postgres_admin_uri, f'CREATE DATABASE "{name}"')
    try:
        yield database_uri(opts.postgres_admin_uri, name)
    finally:
        await _admin(opts.postgres_admin_uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await asyncio.to_thread(_drop_redis_keys, opts.redis_uri, name)


# --------------------------------------------------------------------------------------
# processes


def _serve_template(database: str, redis_uri: str | None) -> str:
    """A bench/run.py command template ({config} {host} {port} {jobs}) for one database."""
    extra = f" --redis-uri {redis_uri}" if redis_uri else ""
    return (
        f"{THREADLINE} serve --config {{config}} --host {{host}} --port {{port}}"
        f" --jobs {{jobs}} --database-uri {database}{extra}"
    )


async def start_api(
    opts: argparse.Namespace, database: str, redis_uri: str | None, jobs: int, tag: str
) -> Server:
    """`threadline serve` on a free port, ready (GET /ok answers)."""
    spec = TargetSpec("threadline", _serve_template(database, redis_uri), None, None, False)
    args = argparse.Namespace(config=opts.config, jobs=jobs, ready_timeout=opts.ready_timeout)
    return await start_server(spec, args, tag, opts.logs_dir)


async def start_reference(opts: argparse.Namespace, tag: str) -> Server:
    """The reference (`langgraph dev`, in memory) through bench/run.py's launcher."""
    await asyncio.to_thread(wait_for_reference_install)
    spec = TargetSpec("reference", DEFAULT_REFERENCE_CMD, None, None, True)
    args = argparse.Namespace(config=opts.config, jobs=1, ready_timeout=opts.ready_timeout)
    return await start_server(spec, args, tag, opts.logs_dir)


async def start_worker(
    opts: argparse.Namespace, database: str, redis_uri: str, jobs: int, tag: str, name: str
) -> Server:
    """`threadline worker`, once it logs that it is claiming."""
    argv = [str(THREADLINE), "worker", "--config", str(opts.config)]
    argv += ["--database-uri", database, "--redis-uri", redis_uri, "--jobs", str(jobs)]
    log_path = opts.logs_dir / f"worker-{tag}.log"
    proc = _spawn(argv, {**os.environ, "PYTHONUNBUFFERED": "1"}, log_path)
    worker = Server(name, "", pid=proc.pid, proc=proc, log_path=log_path)
    deadline = time.monotonic() + opts.ready_timeout
    while not WORKER_READY.search(log_path.read_text(errors="replace")):
        if proc.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise BenchError(f"worker did not start (log {log_path})")
        await asyncio.sleep(0.05)
    return worker


def stop_all(servers: Sequence[Server]) -> None:
    for server in reversed(servers):
        server.stop()


# --------------------------------------------------------------------------------------
# the runs table, read directly (both backends)


@dataclass(frozen=True)
class RunTimes:
    status: str
    created_at: float  # epoch seconds
    started_at: float | None
    ended_at: float | None


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return float(value.timestamp())


class RunsReader:
    """Status counts and timestamps of the runs table, without going through the API."""

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def close(self) -> None:
        return None

    async def status_counts(self) -> dict[str, int]:
        rows = await self.rows("SELECT status, COUNT(*) FROM runs GROUP BY status")
        return {str(status): int(n) for status, n in rows}

    async def times(self) -> list[RunTimes]:
        rows = await self.rows("SELECT status, created_at, started_at, ended_at FROM runs")
        return [
            RunTimes(str(s), cast(float, _epoch(c)), _epoch(b), _epoch(e)) for s, c, b, e in rows
        ]

    async def wait_terminal(self, expected: int, timeout: float) -> float:
        """Poll until `expected` runs have ended; returns when that was seen (epoch)."""
        deadline = time.monotonic() + timeout
        while True:
            counts = await self.status_counts()
            if sum(n for status, n in counts.items() if status in TERMINAL) >= expected:
                return time.time()
            if time.monotonic() > deadline:
                raise BenchError(f"runs not finished after {timeout:.0f}s: {counts}")
            await asyncio.sleep(POLL_SECONDS)


class PostgresRuns(RunsReader):
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self._conn is None:
            self._conn = await psycopg.AsyncConnection.connect(self.uri, autocommit=True)
        cursor = await self._conn.execute(sql.encode())
        return list(await cursor.fetchall())

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


class SqliteRuns(RunsReader):
    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
            return list(conn.execute(sql).fetchall())

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._query, sql)


# --------------------------------------------------------------------------------------
# CPU accounting (Linux /proc): what each process spent, and how busy the machine was

CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int | None) -> float:
    """User + system CPU seconds of a process and its descendants."""
    ticks = 0
    for pid in tree_pids(root) if root is not None else []:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0]
    values = [int(v) for v in first.split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def machine_busy_pct(seconds: float = 2.0) -> float:
    busy0, total0 = machine_ticks()
    await asyncio.sleep(seconds)
    busy1, total1 = machine_ticks()
    return 100 * (busy1 - busy0) / max(1, total1 - total0)


async def wait_for_quiet(max_wait: float, threshold: float = 25.0) -> None:
    """On a shared machine: wait up to `max_wait` seconds for it to be under `threshold`%
    busy (over 2 s) before a measurement starts."""
    deadline = time.monotonic() + max_wait
    while max_wait > 0:
        busy = await machine_busy_pct()
        if busy < threshold:
            return
        if time.monotonic() > deadline:
            log(f"  machine still {busy:.0f}% busy after {max_wait:.0f}s; measuring anyway")
            return
        log(f"  machine {busy:.0f}% busy; waiting")
        await asyncio.sleep(3.0)


@dataclass(frozen=True)
class CpuSample:
    processes: dict[str, float]
    busy: int
    total: int


def cpu_sample(servers: Sequence[Server]) -> CpuSample:
    processes = {s.name: tree_cpu_seconds(s.pid) for s in servers}
    processes["client"] = time.process_time()
    busy, total = machine_ticks()
    return CpuSample(processes, busy, total)


def cpu_usage(before: CpuSample, after: CpuSample, runs: int) -> dict[str, Any]:
    per_run = {
        name: (after.processes[name] - spent) * 1000 / runs
        for name, spent in before.processes.items()
    }
    busy = 100 * (after.busy - before.busy) / max(1, after.total - before.total)
    return {"cpu_ms_per_run": per_run, "machine_busy_pct": busy}


# --------------------------------------------------------------------------------------
# deployments


@dataclass(frozen=True)
class Topology:
    name: str
    label: str
    backend: str  # "sqlite" | "postgres"
    api_jobs: int  # jobs of the `serve` process (0: API only)
    workers: int  # `threadline worker` processes beside it


def topology(name: str, jobs: int) -> Topology:
    if name == "sqlite":
        return Topology(name, "SQLite, one serve", "sqlite", jobs, 0)
    if name == "pg-serve":
        return Topology(name, "PG+Redis, one serve (API and runs)", "postgres", jobs, 0)
    workers = int(name.removeprefix("pg-").removesuffix("w"))
    return Topology(name, f"PG+Redis, serve --jobs 0 + {workers} worker(s)", "postgres", 0, workers)


@dataclass
class Deployed:
    url: str
    runs: RunsReader
    servers: list[Server]


@contextlib.asynccontextmanager
async def deploy(opts: argparse.Namespace, topo: Topology, tag: str) -> AsyncIterator[Deployed]:
    if topo.backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
            path = Path(tmp) / "threadline.db"
            api = await start_api(opts, f"sqlite:///{path}", None, topo.api_jobs, tag)
            try:
                yield Deployed(api.url, SqliteRuns(path), [api])
            finally:
                api.stop()
        return
    async with bench_database(opts, "runs") as uri:
        servers = [await start_api(opts, uri, opts.redis_uri, topo.api_jobs, tag)]
        runs = PostgresRuns(uri)
        try:
            for i in range(topo.workers):
                worker = await start_worker(
                    opts, uri, opts.redis_uri, opts.jobs, f"{tag}-{i}", f"worker{i + 1}"
                )
                servers.append(worker)
            yield Deployed(servers[0].url, runs, servers)
        finally:
            await runs.close()
            stop_all(servers)


# --------------------------------------------------------------------------------------
# workload through langgraph_sdk


async def create_threads(
    client: LangGraphClient, count: int, concurrency: int, metadata: Callable[[int], Row]
) -> list[str]:
    async def one(i: int) -> str:
        thread = await client.threads.create(metadata=metadata(i))
        return str(thread["thread_id"])

    return await gather_limited(count, concurrency, one)


async def create_runs(
    client: LangGraphClient, thread_ids: list[str], count: int, concurrency: int
) -> None:
    """`count` background echo runs, round-robin over the threads (queued behind each other
    on a thread when there are more runs than threads)."""
    strategy: MultitaskStrategy | None = "enqueue" if count > len(thread_ids) else None

    async def one(i: int) -> None:
        tid = thread_ids[i % len(thread_ids)]
        await client.runs.create(tid, "echo", input=RUN_INPUT, multitask_strategy=strategy)

    await gather_limited(count, concurrency, one)


async def warm_up(client: LangGraphClient) -> None:
    """One run through every process's first-run costs (graph compile, pools)."""
    thread = await client.threads.create(metadata={"bench": "warmup"})
    run = await client.runs.create(thread["thread_id"], "echo", input=RUN_INPUT)
    await client.runs.join(thread["thread_id"], run["run_id"])


def _run_metadata(i: int) -> Row:
    return {"bench": "runs", "i": i}


# --------------------------------------------------------------------------------------
# 1. background-run throughput


async def throughput_case(opts: argparse.Namespace, topo: Topology, tag: str) -> dict[str, Any]:
    async with deploy(opts, topo, tag) as dep:
        client = get_client(url=dep.url)
        await warm_up(client)
        thread_count = max(1, opts.runs // opts.runs_per_thread)
        threads = await create_threads(client, thread_count, opts.concurrency, _run_metadata)
        before = cpu_sample(dep.servers)
        t0 = time.time()
        await create_runs(client, threads, opts.runs, opts.concurrency)
        t_created = time.time()
        t_seen = await dep.runs.wait_terminal(opts.runs + 1, opts.run_timeout)
        cpu = cpu_usage(before, cpu_sample(dep.servers), opts.runs)
        times = [r for r in await dep.runs.times() if r.created_at >= t0]
    return {**throughput_metrics(times, t0, t_created, t_seen), **cpu}


def throughput_metrics(
    times: list[RunTimes], t0: float, t_created: float, t_seen: float
) -> dict[str, Any]:
    ends = [r.ended_at for r in times if r.ended_at is not None]
    starts = [r.started_at for r in times if r.started_at is not None]
    last_end = max(ends)
    e2e = [r.ended_at - r.created_at for r in times if r.ended_at is not None]
    return {
        "runs": len(times),
        "success": sum(r.status == "success" for r in times),
        "runs_per_s": len(times) / (last_end - t0),
        "create_per_s": len(times) / (t_created - t0),
        "busy_runs_per_s": len(times) / (last_end - min(starts)),
        "client_runs_per_s": len(times) / (t_seen - t0),
        "wall_s": last_end - t0,
        "created_to_ended_ms": ms_stats(e2e),
    }


async def bench_throughput(opts: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in opts.topologies:
        topo = topology(name, opts.jobs)
        reps = []
        for rep in range(opts.repeats):
            log(f"throughput {topo.label}, {opts.runs} runs (rep {rep + 1}/{opts.repeats})")
            await wait_for_quiet(opts.wait_idle)
            reps.append(await throughput_case(opts, topo, f"tp-{name}-{rep}"))
            log(f"  -> {reps[-1]['runs_per_s']:.1f} runs/s")
        best = best_of(reps, "runs_per_s", higher=True)
        out[name] = {"topology": asdict(topo), "jobs_per_process": opts.jobs, "best": best}
        out[name]["reps"] = reps
    return out


# --------------------------------------------------------------------------------------
# 2. claim latency with a backlog


class _Rollback(Exception):
    pass


class _Pinned:
    """A Database stand-in whose statements all run on one open transaction."""

    def __init__(self, db: Database, conn: Connection) -> None:
        self._db = db
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        return await self._conn.fetch_one(sql, params)


async def time_claim_statement(uri: str, reps: int) -> list[float]:
    """RunRepository.claim, the worker's own statement, timed against the full queue: each
    claim runs in a transaction that is rolled back, so the queue stays as it is."""
    db = PostgresDatabase(uri, pool_size=1)
    await db.open()
    lats: list[float] = []
    try:
        for _ in range(reps):
            with contextlib.suppress(_Rollback):
                async with db.transaction() as conn:
                    repo = RunRepository(cast(Database, _Pinned(db, conn)))
                    now = utcnow()
                    t0 = time.perf_counter()
                    row = await repo.claim("bench-probe", now, now + dt.timedelta(seconds=30))
                    lats.append(time.perf_counter() - t0)
                    if row is None:
                        raise BenchError("the claim found nothing in a full queue")
                    raise _Rollback
    finally:
        await db.close()
    return lats


def slot_waits(starts: list[float], ends: list[float], capacity: int) -> list[float]:
    """How long each claim came after a job slot was free.

    A worker holds at most `capacity` runs, so the k-th claim (in time order) fills the
    slot the (k - capacity)-th end freed; the first `capacity` claims fill the slots that
    were free from the first claim on.
    """
    starts, ends = sorted(starts), sorted(ends)
    waits = []
    for k, start in enumerate(starts):
        freed = starts[0] if k < capacity else ends[k - capacity]
        waits.append(start - freed)
    return waits


async def claim_case(opts: argparse.Namespace, tag: str) -> dict[str, Any]:
    async with bench_database(opts, "claim") as uri:
        api = await start_api(opts, uri, opts.redis_uri, 0, tag)
        runs = PostgresRuns(uri)
        servers = [api]
        try:
            client = get_client(url=api.url)
            thread_count = max(1, opts.runs // opts.runs_per_thread)
            threads = await create_threads(client, thread_count, opts.concurrency, _run_metadata)
            await create_runs(client, threads, opts.runs, opts.concurrency)
            queued = (await runs.status_counts()).get("pending", 0)
            statement = await time_claim_statement(uri, opts.claim_probes)
            t_spawn = time.time()
            servers.append(await start_worker(opts, uri, opts.redis_uri, opts.jobs, tag, "worker"))
            before = cpu_sample(servers)
            await runs.wait_terminal(opts.runs, opts.run_timeout)
            cpu = cpu_usage(before, cpu_sample(servers), opts.runs)
            times = await runs.times()
        finally:
            await runs.close()
            stop_all(servers)
    return {**claim_metrics(times, queued, statement, t_spawn, opts.jobs), **cpu}


def claim_metrics(
    times: list[RunTimes], queued: int, statement: list[float], t_spawn: float, jobs: int
) -> dict[str, Any]:
    starts = [r.started_at for r in times if r.started_at is not None]
    ends = [r.ended_at for r in times if r.ended_at is not None]
    first = min(starts)
    waits = ms_stats(slot_waits(starts, ends, jobs))
    return {
        "queued": queued,
        "success": sum(r.status == "success" for r in times),
        "slot_to_claim_p50_ms": waits["p50"],
        "slot_to_claim": waits,
        "claim_statement": ms_stats(statement),
        "spawn_to_first_claim_ms": (first - t_spawn) * 1000,
        "since_first_claim": ms_stats([s - first for s in starts]),
        "since_spawn": ms_stats([s - t_spawn for s in starts]),
        "drain_runs_per_s": len(starts) / (max(ends) - first),
    }


async def bench_claim(opts: argparse.Namespace) -> dict[str, Any]:
    reps = []
    for rep in range(opts.repeats):
        log(f"claim latency, {opts.runs} runs queued, 1 worker (rep {rep + 1}/{opts.repeats})")
        await wait_for_quiet(opts.wait_idle)
        reps.append(await claim_case(opts, f"claim-{rep}"))
        log(f"  -> slot-to-claim p50 {reps[-1]['slot_to_claim_p50_ms']:.2f} ms")
    best = best_of(reps, "slot_to_claim_p50_ms", higher=False)
    return {"jobs": opts.jobs, "best": best, "reps": reps}


# --------------------------------------------------------------------------------------
# 3. thread search at size

KINDS = ("chat", "task", "eval")
# 70% idle, 10% each of the others; decorrelated from `group` (i % 100)
STATUSES = ("idle",) * 7 + ("busy", "interrupted", "error")


def thread_metadata(i: int) -> Row:
    return {
        "bench": "search",
        "i": i,
        "group": i % 100,
        "user": f"user-{i % 1000:04d}",
        "kind": KINDS[i % 3],
        "tags": ["even", "x"] if i % 2 == 0 else ["odd"],
    }


def thread_row(i: int, created_at: dt.datetime) -> Row:
    """A thread as core/threads.create_thread hands it to ThreadRepository.insert (the
    repository fills in config, values, interrupts, error and ttl), with a status runs
    would have left."""
    return {
        "thread_id": new_id(),
        "created_at": created_at,
        "updated_at": created_at,
        "state_updated_at": created_at,
        "metadata": thread_metadata(i),
        "status": STATUSES[(i // 10) % 10],
    }


async def insert_threads(db: Database, count: int, batch: int = 2000) -> float:
    """`count` threads through the storage layer's own INSERT, oldest first, 1 ms apart;
    returns the seconds it took."""
    repo = ThreadRepository(db)
    base = utcnow() - dt.timedelta(milliseconds=count)
    t0 = time.perf_counter()
    for start in range(0, count, batch):
        async with db.transaction() as conn:
            for i in range(start, min(start + batch, count)):
                created = base + dt.timedelta(milliseconds=i)
                if await repo.insert(thread_row(i, created), conn) is None:
                    raise BenchError("thread id collision")
    return time.perf_counter() - t0


@dataclass(frozen=True)
class Query:
    name: str
    kind: str  # "search" | "count"
    kwargs: Row

    def check(self, result: Any) -> None:
        """A wrong answer would make the timing meaningless."""
        if self.kind == "count":
            return
        metadata, status = self.kwargs.get("metadata") or {}, self.kwargs.get("status")
        for thread in result:
            wanted = {k: thread["metadata"].get(k) for k in metadata}
            if wanted != metadata or (status and thread["status"] != status):
                raise BenchError(f"{self.name}: a non-matching thread {thread['thread_id']}")


def search_queries(count: int) -> list[Query]:
    return [
        Query("search metadata 1% (limit 10)", "search", {"metadata": {"group": 7}, "limit": 10}),
        Query("search metadata 1 row", "search", {"metadata": {"i": count // 2 + 7}}),
        Query("search status 10% (limit 10)", "search", {"status": "interrupted", "limit": 10}),
        Query("search status 70% (limit 10)", "search", {"status": "idle", "limit": 10}),
        Query("list (limit 10)", "search", {"limit": 10}),
        Query("count metadata 1%", "count", {"metadata": {"group": 7}}),
    ]


async def call(client: LangGraphClient, query: Query) -> Any:
    if query.kind == "count":
        return await client.threads.count(**query.kwargs)
    return await client.threads.search(**query.kwargs)


async def time_queries(client: LangGraphClient, count: int, reps: int) -> dict[str, Any]:
    """Each query: 2 warm-up calls, then `reps` timed calls; returns stats and result sizes."""
    out: dict[str, Any] = {}
    for query in search_queries(count):
        for _ in range(2):
            query.check(await call(client, query))
        lats: list[float] = []
        results: list[Any] = []
        for _ in range(reps):
            t0 = time.perf_counter()
            results.append(await call(client, query))
            lats.append(time.perf_counter() - t0)
        last = results[-1]
        query.check(last)
        out[query.name] = {
            "ms": ms_stats(lats),
            "result": last if query.kind == "count" else len(last),
        }
    return out


def best_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per query, the round with the lower p50."""
    return {
        name: min((r[name] for r in rounds), key=lambda q: float(q["ms"]["p50"]))
        for name in rounds[0]
    }


async def measure_search(opts: argparse.Namespace, url: str, count: int) -> dict[str, Any]:
    client = get_client(url=url)
    rounds = []
    for _ in range(opts.repeats):
        await wait_for_quiet(opts.wait_idle)
        rounds.append(await time_queries(client, count, opts.search_reps))
    return {"threads": count, "best": best_rounds(rounds), "rounds": rounds}


async def search_threadline(opts: argparse.Namespace, backend: str) -> dict[str, Any]:
    count = opts.search_threads
    if backend == "postgres":
        async with bench_database(opts, "search") as uri:
            prepared = await prepare(PostgresDatabase(uri), count, opts.search_reps, opts.vacuum)
            result = await serve_and_measure(opts, uri, 0, count)
    else:
        with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
            path = Path(tmp) / "threadline.db"
            prepared = await prepare(SqliteDatabase(path), count, opts.search_reps, False)
            result = await serve_and_measure(opts, f"sqlite:///{path}", 1, count)
    return {**result, **prepared, "insert": "direct, ThreadRepository.insert"}


async def serve_and_measure(
    opts: argparse.Namespace, database: str, jobs: int, count: int
) -> dict[str, Any]:
    api = await start_api(opts, database, None, jobs, f"search-{database.split(':')[0]}")
    try:
        return await measure_search(opts, api.url, count)
    finally:
        api.stop()


async def prepare(db: Database, count: int, reps: int, vacuum: bool) -> dict[str, Any]:
    """Fill the table, then time the storage layer's own queries in process."""
    await db.open()
    try:
        log(f"  inserting {count:,} threads ({db.name}) ...")
        insert_s = await insert_threads(db, count)
        if vacuum and db.name == "postgres":
            # What autovacuum soon does after so many inserts. Right after a bulk load the
            # planner has no statistics and no page is all-visible (no index-only scans).
            await db.execute("VACUUM ANALYZE threads")
        storage = await time_storage(db, count, reps)
    finally:
        await db.close()
    return {"insert_s": insert_s, "vacuumed": vacuum and db.name == "postgres", **storage}


async def time_storage(db: Database, count: int, reps: int) -> dict[str, Any]:
    """ThreadRepository.search (one page) and .count apart: the API runs both whenever a
    page comes back full, the count for `X-Pagination-Total`."""
    repo = ThreadRepository(db)
    out: dict[str, Any] = {}
    for query in search_queries(count):
        filters = {k: v for k, v in query.kwargs.items() if k != "limit"}
        page = None
        if query.kind == "search":
            page = await timed_p50(reps, functools.partial(repo.search, **query.kwargs))
        total = await timed_p50(reps, functools.partial(repo.count, **filters))
        out[query.name] = {"page_p50_ms": page, "count_p50_ms": total}
    return {"storage": out}


async def timed_p50(reps: int, fn: Callable[[], Awaitable[Any]]) -> float:
    await fn()
    lats = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await fn()
        lats.append(time.perf_counter() - t0)
    return float(statistics.median(lats) * 1000)


async def fill_reference(
    client: LangGraphClient, count: int, concurrency: int, budget: float
) -> tuple[int, float]:
    """Create threads through the API until `count` or the time budget; returns how many
    were created and the seconds it took."""
    deadline = time.monotonic() + budget
    t0 = time.perf_counter()
    created = 0
    indexes = iter(range(count))

    async def lane() -> None:
        nonlocal created
        for i in indexes:
            if time.monotonic() > deadline:
                return
            await client.threads.create(metadata=thread_metadata(i))
            created += 1
            if created % 10_000 == 0:
                log(f"  reference: {created:,} threads")

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return created, time.perf_counter() - t0


async def search_reference(opts: argparse.Namespace) -> dict[str, Any]:
    server = await start_reference(opts, "search-reference")
    try:
        client = get_client(url=server.url)
        created, insert_s = await fill_reference(
            client, opts.search_threads, 16, opts.reference_budget
        )
        result = await measure_search(opts, server.url, created)
    finally:
        server.stop()
    return {**result, "insert_s": insert_s, "insert": "POST /threads, 16 clients"}


async def bench_search(opts: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in opts.search_backends:
        log(f"thread search, {opts.search_threads:,} threads, {backend}")
        if backend == "reference":
            out[backend] = await search_reference(opts)
        else:
            out[backend] = await search_threadline(opts, backend)
    return out


# --------------------------------------------------------------------------------------
# report


def print_rows(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def report_throughput(res: dict[str, Any]) -> None:
    rows = []
    for case in res.values():
        best = case["best"]
        reps = ", ".join(fmt_num(r["runs_per_s"]) for r in case["reps"])
        e2e = best["created_to_ended_ms"]
        rows.append(
            [
                case["topology"]["label"],
                str(case["jobs_per_process"]),
                f"{fmt_num(best['runs_per_s'])} [{reps}]",
                fmt_num(best["busy_runs_per_s"]),
                fmt_num(best["create_per_s"]),
                f"{fmt_num(e2e['p50'])} / {fmt_num(e2e['p99'])}",
                f"{best['success']}/{best['runs']}",
                _cpu_cell(best["cpu_ms_per_run"]),
                fmt_num(best["machine_busy_pct"]),
            ]
        )
    header = ["deployment", "jobs/proc", "runs/s best [reps]", "busy runs/s", "creates/s"]
    header += ["created->ended p50/p99 ms", "success", "CPU ms/run", "machine busy %"]
    print_rows("background-run throughput", header, rows)


def _cpu_cell(per_run: dict[str, float]) -> str:
    names = {"threadline": "serve"}
    return ", ".join(f"{names.get(k, k)} {fmt_num(v)}" for k, v in per_run.items())


def report_claim(res: dict[str, Any]) -> None:
    best = res["best"]
    rows = []
    for key in ("slot_to_claim", "claim_statement", "since_first_claim", "since_spawn"):
        st = best[key]
        rows.append([key, fmt_num(st["p50"]), fmt_num(st["p99"]), fmt_num(st["max"])])
    print_rows(
        f"claim latency, {best['queued']} queued, 1 worker, jobs={res['jobs']} "
        f"(spawn -> first claim {fmt_num(best['spawn_to_first_claim_ms'])} ms, "
        f"drain {fmt_num(best['drain_runs_per_s'])} runs/s; CPU ms/run "
        f"{_cpu_cell(best['cpu_ms_per_run'])}; machine busy {fmt_num(best['machine_busy_pct'])}%)",
        ["measure (ms)", "p50", "p99", "max"],
        rows,
    )


def report_search(res: dict[str, Any]) -> None:
    backends = list(res)
    names = list(next(iter(res.values()))["best"])
    rows = [
        ["threads", *(fmt_num(res[b]["threads"]) for b in backends)],
        ["insert s", *(fmt_num(res[b]["insert_s"]) for b in backends)],
    ]
    for name in names:
        cells = []
        for b in backends:
            q = res[b]["best"][name]
            cells.append(f"{fmt_num(q['ms']['p50'])} / {fmt_num(q['ms']['p90'])} ({q['result']})")
        rows.append([name, *cells])
    print_rows("thread search, p50 / p90 ms (results)", ["query", *backends], rows)
    ours = [b for b in backends if "storage" in res[b]]
    if not ours:
        return
    rows = []
    for name in names:
        timings = [res[b]["storage"][name] for b in ours]
        cells = [f"{fmt_num(t['page_p50_ms'])} / {fmt_num(t['count_p50_ms'])}" for t in timings]
        rows.append([name, *cells])
    print_rows("storage layer in process, page / count p50 ms", ["query", *ours], rows)


# --------------------------------------------------------------------------------------
# driver


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Scale-out benchmarks of Threadline (PostgreSQL + Redis, SQLite, reference).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmarks:\n"
        "  throughput  N background echo runs created as fast as possible; runs/s until all end\n"
        "  claim       N runs queued with no worker, then one worker: claim latency p50/p99\n"
        "  search      thread search/list/count at --search-threads threads\n",
    )
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    p.add_argument("--runs", type=int, default=1000, help="runs per case (1000)")
    p.add_argument("--runs-per-thread", type=int, default=1, help="runs per thread (1)")
    p.add_argument("--jobs", type=int, default=10, help="concurrent runs per process (10)")
    p.add_argument("--concurrency", type=int, default=32, help="client requests in flight (32)")
    p.add_argument("--topologies", nargs="+", choices=TOPOLOGIES, default=list(TOPOLOGIES))
    p.add_argument("--repeats", type=int, default=2, help="repetitions; the better one counts")
    p.add_argument("--claim-probes", type=int, default=200, help="claim statements timed (200)")
    p.add_argument("--search-threads", type=int, default=100_000, help="threads (100000)")
    p.add_argument(
        "--search-backends", nargs="+", choices=SEARCH_BACKENDS, default=list(SEARCH_BACKENDS)
    )
    p.add_argument("--search-reps", type=int, default=20, help="timed calls per query (20)")
    p.add_argument(
        "--no-vacuum",
        dest="vacuum",
        action="store_false",
        help="search on PostgreSQL right after the bulk load, without VACUUM ANALYZE",
    )
    p.add_argument(
        "--reference-budget", type=float, default=600.0, help="seconds to fill the reference"
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to SECONDS for the machine to be under 25%% "
        "busy (a shared machine); 0: never wait (default)",
    )
    p.add_argument("--postgres-admin-uri", default=DEFAULT_ADMIN_URI)
    p.add_argument("--redis-uri", default=DEFAULT_REDIS_URI)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="langgraph.json")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="results directory")
    p.add_argument("--run-timeout", type=float, default=600.0, help="seconds for runs to end")
    p.add_argument("--ready-timeout", type=float, default=90.0, help="seconds for start-up")
    args = p.parse_args(argv)
    args.config = args.config.resolve()
    return args


BENCH_FUNCTIONS: dict[str, Callable[[argparse.Namespace], Awaitable[dict[str, Any]]]] = {
    "throughput": bench_throughput,
    "claim": bench_claim,
    "search": bench_search,
}
REPORTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "throughput": report_throughput,
    "claim": report_claim,
    "search": report_search,
}


async def amain(opts: argparse.Namespace) -> int:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    opts.logs_dir = opts.out / "logs" / f"scaleout-{stamp}"
    opts.logs_dir.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    meta["machine"] = machine_note()
    meta["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()}
    results: dict[str, Any] = {}
    for name in (b for b in BENCHMARKS if b in opts.only):
        results[name] = await BENCH_FUNCTIONS[name](opts)
    meta["loadavg_end"] = machine_note()["loadavg"]
    for name, res in results.items():
        REPORTS[name](res)
    out_file = opts.out / f"scaleout-{stamp}.json"
    out_file.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nresults: {out_file}\nlogs: {opts.logs_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        return asyncio.run(amain(opts))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
