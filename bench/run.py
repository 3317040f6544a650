#!/usr/bin/env python3
"""Threadline benchmark harness: Threadline vs the reference Agent Server, side by side.

Run by hand, never in CI.  See bench/README.md.

    python bench/run.py                      # both servers, every scenario
    python bench/run.py --reference --jobs 1 --only wait-seq sse-ttfe
    python bench/run.py --threadline --threadline-url http://127.0.0.1:2024

Each (scenario, variant) case runs on a freshly started server (the reference's in-memory
runtime slows down as it accumulates threads and runs), with the same langgraph.json
(bench/graphs/langgraph.json) and the same number of jobs.  The client is one asyncio process
using raw httpx, so its overhead is small and identical for both servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_CONFIG = BENCH_DIR / "graphs" / "langgraph.json"
DEFAULT_THREADLINE_CMD = (
    f"{REPO_DIR / '.venv' / 'bin' / 'threadline'} serve --config {{config}} "
    "--host {host} --port {port} --jobs {jobs}"
)
DEFAULT_REFERENCE_CMD = (
    "/work/shared/reference/start-reference.sh {config} {port} --n-jobs-per-worker {jobs}"
)
REF_VENV = Path(os.environ.get("REF_VENV", Path.home() / ".cache" / "threadline-reference"))

ECHO_INPUT = {"messages": [{"role": "user", "content": "hi"}]}
TERMINAL = {"success", "error", "interrupted", "timeout"}

# --------------------------------------------------------------------------------------
# small helpers


def now() -> float:
    return time.perf_counter()


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def lat_stats(xs_s: list[float]) -> dict[str, float | int | None]:
    """Latency statistics in milliseconds from a list of seconds."""
    ms = [x * 1000.0 for x in xs_s]
    return {
        "n": len(ms),
        "min": min(ms) if ms else None,
        "p50": percentile(ms, 0.50),
        "p90": percentile(ms, 0.90),
        "p99": percentile(ms, 0.99),
        "max": max(ms) if ms else None,
        "mean": statistics.fmean(ms) if ms else None,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_ts(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------
# process tree helpers (Linux /proc)


def _ppid_map() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[-1].split()
        out[int(entry)] = int(rest[1])
    return out


def tree_pids(root: int) -> list[int]:
    ppids = _ppid_map()
    if root not in ppids:
        return []
    result, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in ppids.items() if pp == parent]
        result.extend(kids)
        frontier.extend(kids)
    return result


def _proc_rss_kb(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    name, rss = "?", 0
    for line in text.splitlines():
        if line.startswith("Name:"):
            name = line.split(None, 1)[1].strip()
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return name, rss


def tree_rss(root: int | None) -> dict[str, Any] | None:
    if root is None:
        return None
    procs = []
    for pid in tree_pids(root):
        info = _proc_rss_kb(pid)
        if info is not None:
            procs.append({"pid": pid, "name": info[0], "rss_mb": info[1] / 1024.0})
    if not procs:
        return None
    return {"total_mb": sum(p["rss_mb"] for p in procs), "procs": procs}


def kill_tree(root: int, timeout: float = 10.0) -> None:
    """SIGTERM the root (graceful shutdown), then SIGKILL whatever of its tree is left."""
    pids = tree_pids(root)
    with contextlib.suppress(ProcessLookupError):
        os.kill(root, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --------------------------------------------------------------------------------------
# servers


@dataclass
class Server:
    name: str
    url: str
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    log_path: Path | None = None
    attached: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.attached:
            return
        if self.pid is not None:
            kill_tree(self.pid)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self.tmpdir is not None:
            self.tmpdir.cleanup()


@dataclass
class TargetSpec:
    name: str  # "threadline" | "reference"
    cmd: str
    url: str | None  # attach to an already running server
    pid: int | None  # pid of an attached server (for RSS)
    launcher: bool  # True: cmd daemonises and prints the PID (start-reference.sh)


async def wait_ok(url: str, max_wait: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + max_wait
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                r = await client.get(f"{url}/ok")
                if r.status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url}/ok did not answer within {max_wait:.0f}s")


async def start_server(
    spec: TargetSpec, args: argparse.Namespace, tag: str, logs_dir: Path
) -> Server:
    if spec.url:
        server = Server(spec.name, spec.url.rstrip("/"), pid=spec.pid, attached=True)
        await wait_ok(server.url, args.ready_timeout)
        return server
    port = free_port()
    fmt = {
        "config": shlex.quote(str(args.config)),
        "host": "127.0.0.1",
        "port": port,
        "jobs": args.jobs,
    }
    argv = shlex.split(spec.cmd.format(**fmt))
    log_path = logs_dir / f"{spec.name}-{tag}.log"
    env = dict(os.environ)
    server = Server(spec.name, f"http://127.0.0.1:{port}", log_path=log_path)
    if spec.launcher:
        env["REF_LOG"] = str(log_path)
        res = await asyncio.to_thread(
            subprocess.run, argv, env=env, capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            raise RuntimeError(f"{spec.name} launcher failed: {res.stderr.strip()[-2000:]}")
        server.pid = int(res.stdout.strip().splitlines()[-1])
        try:
            await wait_ok(server.url, args.ready_timeout)
        except BaseException:
            server.stop()
            raise
        return server
    server.tmpdir = tempfile.TemporaryDirectory(prefix="threadline-bench-")
    env["THREADLINE_DATABASE_URI"] = f"sqlite:///{Path(server.tmpdir.name) / 'threadline.db'}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    server.proc = _spawn(argv, env, log_path)
    server.pid = server.proc.pid
    try:
        await wait_ok(server.url, args.ready_timeout, server.proc)
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------------------
# HTTP helpers


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def make_client(base: str, connections: int = 64, timeout: float = 120.0) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout)


class BenchError(RuntimeError):
    pass


async def post_json(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    r = await client.post(path, json=body)
    if r.status_code >= 300:
        raise BenchError(f"POST {path} -> {r.status_code}: {r.text[:200]}")
    return r.json() if r.content else None


async def create_thread(client: httpx.AsyncClient, metadata: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {}
    if metadata is not None:
        body["metadata"] = metadata
    data = await post_json(client, "/threads", body)
    return str(data["thread_id"])


def check_echo(values: Any) -> None:
    msgs = values.get("messages") if isinstance(values, dict) else None
    if not msgs or msgs[-1].get("type") != "ai":
        raise BenchError(f"unexpected /wait result: {str(values)[:200]}")


async def get_run(client: httpx.AsyncClient, thread_id: str, run_id: str) -> dict[str, Any]:
    r = await client.get(f"/threads/{thread_id}/runs/{run_id}")
    if r.status_code != 200:
        raise BenchError(f"GET run -> {r.status_code}: {r.text[:200]}")
    return dict(r.json())


async def poll_run(
    client: httpx.AsyncClient,
    thread_id: str,
    run_id: str,
    until: set[str],
    interval: float = 0.005,
    max_wait: float = 60.0,
) -> tuple[dict[str, Any], float]:
    deadline = now() + max_wait
    while True:
        run = await get_run(client, thread_id, run_id)
        t = now()
        if run.get("status") in until:
            return run, t
        if run.get("status") in TERMINAL:
            raise BenchError(f"run ended {run.get('status')!r}, waited for {sorted(until)}")
        if t > deadline:
            raise BenchError(f"run still {run.get('status')!r} after {max_wait}s")
        await asyncio.sleep(interval)


@dataclass
class SSEEvent:
    event: str
    data: str
    t: float


async def sse_events(client: httpx.AsyncClient, path: str, body: Any) -> AsyncIterator[SSEEvent]:
    """Minimal SSE parser: yields (event, data, arrival time) per dispatched event."""
    async with client.stream("POST", path, json=body) as r:
        if r.status_code != 200:
            await r.aread()
            raise BenchError(f"POST {path} -> {r.status_code}: {r.text[:200]}")
        event, data = "message", []
        async for line in r.aiter_lines():
            if line == "":
                if data:
                    yield SSEEvent(event, "\n".join(data), now())
                event, data = "message", []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
        if data:
            yield SSEEvent(event, "\n".join(data), now())


async def closed_loop(
    clients: int, duration: float, op: Callable[[], Awaitable[float | None]]
) -> dict[str, Any]:
    """`clients` workers each call op() back to back until `duration` elapses.

    op() returns the latency to record (seconds) or None to use the whole call.
    """
    lats: list[float] = []
    iters: list[float] = []
    errors: list[str] = []
    start = now()
    stop_at = start + duration

    async def worker() -> None:
        while now() < stop_at:
            t0 = now()
            try:
                lat = await op()
            except Exception as exc:
                errors.append(repr(exc)[:200])
                await asyncio.sleep(0.01)
                continue
            t1 = now()
            iters.append(t1 - t0)
            lats.append(lat if lat is not None else t1 - t0)

    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = now() - start
    return {
        "completed": len(iters),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "elapsed_s": elapsed,
        "per_s": len(iters) / elapsed if elapsed else 0.0,
        "latency_ms": lat_stats(lats),
        "iteration_ms": lat_stats(iters),
    }


# --------------------------------------------------------------------------------------
# scenarios
#
# A scenario function gets (client, server, opts) and returns (metrics, details):
# metrics is a flat, ordered {name: number} shown in the table; details goes to JSON only.

Metrics = dict[str, float | int | None]
Result = tuple[Metrics, dict[str, Any]]


async def sc_wait_seq(client: httpx.AsyncClient, server: Server, o: dict[str, Any]) -> Result:
    n = o["n"]
    lats, iters = [], []
    start = now()
    for _ in range(n):
        t0 = now()
        tid = await create_thread(client)
        t1 = now()
        check_echo(
            await post_json(
                client, f"/threads/{tid}/runs/wait", {"assistant_id": "echo", "input": ECHO_INPUT}
            )
        )
        t2 = now()
        lats.append(t2 - t1)
        iters.append(t2 - t0)
    elapsed = now() - start
    st = lat_stats(lats)
    metrics = {
        "runs_per_s": n / elapsed,
        "p50_ms": st["p50"],
        "p99_ms": st["p99"],
        "min_ms": st["min"],
    }
    return metrics, {"n": n, "wait_ms": st, "iteration_ms": lat_stats(iters)}


async def sc_wait_conc(client: httpx.AsyncClient, server: Server, o: dict[str, Any]) -> Result:
    async def op() -> float:
        tid = await create_thread(client)
        t1 = now()
        check_echo(
            await post_json(
                client, f"/threads/{tid}/runs/wait", {"assistant_id": "echo", "input": ECHO_INPUT}
            )
        )
        return now() - t1

    res = await closed_loop(o["clients"], o["duration"], op)
    metrics = {
        "runs_per_s": res["per_s"],
        "p50_ms": res["latency_ms"]["p50"],
        "p99_ms": res["latency_ms"]["p99"],
        "errors": res["errors"],
    }
    return metrics, {"clients": o["clients"], "duration_s": o["duration"], **res}


async def sc_stateless_wait(client: httpx.AsyncClient, server: Server, o: dict[str, Any]) -> Result:
    async def op() -> None:
        check_echo(
            await post_json(client, "/runs/wait", {"assistant_id": "echo", "input": ECHO_INPUT})
        )

    res = await closed_loop(o["clients"], o["duration"], op)
    metrics = {
        "runs_per_s": res["per_s"],
        "p50_ms": res["latency_ms"]["p50"],
        "p99_ms": res["latency_ms"]["p99"],
        "errors": res["errors"],
    }
    return metrics, {"clients": o["clients"], "duration_s": o["duration"], **res}


async def sc_queue_latency(client: httpx.AsyncClient, server: Server, o: dict[str, Any]) -> Result:
    lats, posts, server_side = [], [], []
    for _ in range(o["n"]):
        tid = await create_thread(client)
        t0 = now()
        run = await post_json(
            client, f"/threads/{tid}/runs", {"assistant_id": "echo", "input": ECHO_INPUT}
        )
        posts.append(now() - t0)
        final, t_done = await poll_run(client, tid, run["run_id"], {"success"})
        lats.append(t_done - t0)
        c, u = parse_ts(final.get("created_at")), parse_ts(final.get("updated_at"))
        if c and u:
            server_side.append((u - c).total_seconds())
    st = lat_stats(lats)
    ss = lat_stats(server_side)
    metrics = {
        "p50_ms": st["p50"],
        "p99_ms": st["p99"],
        "min_ms": st["min"],
        "server_p50_ms": ss["p50"],
    }
    details = {
        "n": o["n"],
        "latency_ms": st,
        "post_ms": lat_stats(posts),
        "server_created_to_updated_ms": ss,
    }
    return metrics, details


async def sc_sse_ttfe(client: httpx.AsyncClient, server: Server, o: dict[str, Any]) -> Result:
    first, first_values, ends, counts = [], [], [], []
    for _ in range(o["n"]):
        tid = await create_thread(client)
        body = {"assistant_id": "echo", "input": ECHO_INPUT, "stream_mode": ["values"]}
        t0 = now()
        t_first = t_values = None
        count = 0
        async for ev in sse_events(client, f"/threads/{tid}/runs/stream", body):
            count += 1
            if t_first is None:
                t_first = ev.t
            if t_values is None and ev.event == "values":
                t_values = ev.t
            if ev.event == "error":
                raise BenchError(f"stream error event: {ev.data[:200]}")
        t_end = now()
        if t_first is None or t_values is None:
            raise BenchError(f"stream had no values event ({count} events)")
        first.append(t_first - t0)
        first_values.append(t_values - t0)
        ends.append(t_end - t0)
        counts.append(count)
    sf, sv, se = lat_stats(first), lat_stats(first_values), lat_stats(ends)
    metrics = {
        "first_event_p50_ms": sf["p50"],
        "first_event_p99_ms": sf["p99"],
        "first_values_p50_ms": sv["p50"],
        "stream_end_p50_ms": se["p50"],
    }
    details = {
        "n": o["n"],
        "first_event_ms": sf,
        "first_values_ms": sv,
        "stream_end_ms": se,
        "events_per_stream": statistics.median(counts),
    }
    return metrics, details


async def sc_sse_custom(client: httpx.AsyncClient, server: Server, o: dict[str, Any]) -> Result:
    n = o["events"]
    reps = []
    for _ in range(o["sse_reps"]):
        body = {"assistant_id": "custom", "input": {"n": n}, "stream_mode": "custom"}
        t0 = now()
        t_first = t_first_custom = t_last_custom = None
        count, last_i = 0, -1
        async for ev in sse_events(client, "/runs/stream", body):
            if t_first is None:
                t_first = ev.t
            if ev.event == "custom":
                i = json.loads(ev.data)["i"]
                if i != last_i + 1:
                    raise BenchError(f"custom event out of order: {i} after {last_i}")
                last_i = i
                count += 1
                if t_first_custom is None:
                    t_first_custom = ev.t
                t_last_custom = ev.t
            elif ev.event == "error":
                raise BenchError(f"stream error event: {ev.data[:200]}")
        t_end = now()
        if count != n or t_first is None or t_first_custom is None or t_last_custom is None:
            raise BenchError(f"got {count} custom events, expected {n}")
        streaming = t_last_custom - t_first_custom
        reps.append(
            {
                "total_s": t_end - t0,
                "first_event_ms": (t_first - t0) * 1000,
                "first_custom_ms": (t_first_custom - t0) * 1000,
                "streaming_s": streaming,
                "events_per_s_streaming": (n - 1) / streaming if streaming > 0 else None,
                "events_per_s_end_to_end": n / (t_end - t0),
            }
        )

    def med(key: str) -> float | None:
        vals = [r[key] for r in reps if r[key] is not None]
        return statistics.median(vals) if vals else None

    metrics = {
        "total_s": med("total_s"),
        "events_per_s_streaming": med("events_per_s_streaming"),
        "events_per_s_end_to_end": med("events_per_s_end_to_end"),
        "first_event_ms": med("first_event_ms"),
    }
    return metrics, {"events": n, "reps": reps}


async def sc_protocol_custom(
    client: httpx.AsyncClient, server: Server, o: dict[str, Any]
) -> Result:
    """The thread-centric protocol: run.start, then the thread's event stream until the
    run's `completed` lifecycle event, with N custom events in between."""
    n = o["events"]
    reps = []
    for _ in range(o["sse_reps"]):
        thread_id = str(uuid.uuid4())
        command = {
            "id": 1,
            "method": "run.start",
            "params": {"assistant_id": "custom_v3", "input": {"n": n}},
        }
        t0 = now()
        started = await post_json(client, f"/threads/{thread_id}/commands", command)
        if started.get("type") != "success":
            raise BenchError(f"run.start refused: {started}")
        body = {"channels": ["custom", "lifecycle"]}
        count, t_first_custom, t_last_custom = 0, None, None
        async for ev in sse_events(client, f"/threads/{thread_id}/stream/events", body):
            data = json.loads(ev.data)["params"]["data"]
            if ev.event == "custom":
                if data["i"] != count:
                    raise BenchError(f"custom event out of order: {data['i']} after {count}")
                count += 1
                t_first_custom = t_first_custom or ev.t
                t_last_custom = ev.t
            elif ev.event == "lifecycle" and data["event"] in ("completed", "failed"):
                break
        t_end = now()
        if count != n or t_first_custom is None or t_last_custom is None:
            raise BenchError(f"got {count} custom events, expected {n}")
        streaming = t_last_custom - t_first_custom
        reps.append(
            {
                "total_s": t_end - t0,
                "first_custom_ms": (t_first_custom - t0) * 1000,
                "events_per_s_streaming": (n - 1) / streaming if streaming > 0 else None,
                "events_per_s_end_to_end": n / (t_end - t0),
            }
        )
    metrics = {
        key: statistics.median(r[key] for r in reps if r[key] is not None)
        for key in ("total_s", "events_per_s_streaming", "events_per_s_end_to_end")
    }
    return metrics, {"events": n, "reps": reps}


async def sc_threads_mem(client: httpx.AsyncClient, server: Server, o: dict[str, Any]) -> Result:
    total, clients = o["threads"], o["mem_clients"]
    groups = 100
    before = tree_rss(server.pid)
    counter = iter(range(total))
    lats: list[float] = []
    errors: list[str] = []

    async def worker() -> None:
        for i in counter:
            t0 = now()
            try:
                await create_thread(client, {"bench": "mem", "i": i, "group": i % groups})
            except Exception as exc:
                errors.append(repr(exc)[:200])
                continue
            lats.append(now() - t0)

    start = now()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = now() - start
    await asyncio.sleep(1.0)
    after = tree_rss(server.pid)

    async def timed(path: str, body: Any, reps: int = 5) -> tuple[float | None, Any]:
        ts, last = [], None
        for _ in range(reps):
            t0 = now()
            last = await post_json(client, path, body)
            ts.append(now() - t0)
        return (statistics.median(ts) * 1000 if ts else None), last

    count_ms, count_all = await timed("/threads/count", {})
    count_meta_ms, count_meta = await timed("/threads/count", {"metadata": {"group": 7}})
    search_ms, found = await timed(
        "/threads/search", {"metadata": {"group": 7, "bench": "mem"}, "limit": 10}
    )
    search_all_ms, _ = await timed("/threads/search", {"limit": 10})
    if not isinstance(found, list) or not found:
        raise BenchError(f"metadata search found nothing: {str(found)[:200]}")
    if any(t.get("metadata", {}).get("group") != 7 for t in found):
        raise BenchError("metadata search returned a non-matching thread")
    st = lat_stats(lats)
    delta = after["total_mb"] - before["total_mb"] if before and after else None
    metrics = {
        "rss_before_mb": before["total_mb"] if before else None,
        "rss_after_mb": after["total_mb"] if after else None,
        "kb_per_thread": delta * 1024 / total if delta is not None else None,
        "create_per_s": len(lats) / elapsed,
        "create_p50_ms": st["p50"],
        "create_p99_ms": st["p99"],
        "count_ms": count_ms,
        "count_metadata_ms": count_meta_ms,
        "search_metadata_ms": search_ms,
        "search_all_ms": search_all_ms,
        "errors": len(errors),
    }
    details = {
        "threads": total,
        "clients": clients,
        "rss_before": before,
        "rss_after": after,
        "create_ms": st,
        "count_all": count_all,
        "count_group7": count_meta,
        "search_group7_returned": len(found),
        "error_samples": sorted(set(errors))[:5],
    }
    return metrics, details


async def sc_cancel_latency(client: httpx.AsyncClient, server: Server, o: dict[str, Any]) -> Result:
    pickups, cancels, posts, statuses = [], [], [], []
    for _ in range(o["n"]):
        tid = await create_thread(client)
        t0 = now()
        run = await post_json(
            client, f"/threads/{tid}/runs", {"assistant_id": "sleepy", "input": {"seconds": 30}}
        )
        rid = run["run_id"]
        _, t_running = await poll_run(client, tid, rid, {"running"})
        pickups.append(t_running - t0)
        await asyncio.sleep(0.2)  # let the node reach its sleep
        t1 = now()
        r = await client.post(f"/threads/{tid}/runs/{rid}/cancel")
        posts.append(now() - t1)
        statuses.append(r.status_code)
        if r.status_code >= 300:
            raise BenchError(f"cancel -> {r.status_code}: {r.text[:200]}")
        _, t_int = await poll_run(client, tid, rid, {"interrupted"}, max_wait=40.0)
        cancels.append(t_int - t1)
    sc, sp, spost = lat_stats(cancels), lat_stats(pickups), lat_stats(posts)
    metrics = {
        "cancel_p50_ms": sc["p50"],
        "cancel_p99_ms": sc["p99"],
        "cancel_post_p50_ms": spost["p50"],
        "pickup_p50_ms": sp["p50"],
    }
    details = {
        "n": o["n"],
        "cancel_to_interrupted_ms": sc,
        "cancel_post_ms": spost,
        "create_to_running_ms": sp,
        "cancel_status_codes": sorted(set(statuses)),
    }
    return metrics, details


ScenarioFn = Callable[[httpx.AsyncClient, Server, dict[str, Any]], Awaitable[Result]]


@dataclass
class Scenario:
    name: str
    fn: ScenarioFn
    doc: str
    variants: Callable[[argparse.Namespace], list[dict[str, Any]]]


def _clients(args: argparse.Namespace, default: list[int]) -> list[int]:
    return args.clients or default


SCENARIOS: list[Scenario] = [
    Scenario(
        "wait-seq",
        sc_wait_seq,
        "sequential create thread + POST /threads/{id}/runs/wait (echo)",
        lambda a: [{"n": a.n or 30}],
    ),
    Scenario(
        "wait-conc",
        sc_wait_conc,
        "C closed-loop clients: create thread + runs/wait, for D seconds",
        lambda a: [{"clients": c, "duration": a.duration or 10.0} for c in _clients(a, [10, 50])],
    ),
    Scenario(
        "stateless-wait",
        sc_stateless_wait,
        "C closed-loop clients: POST /runs/wait (echo), for D seconds",
        lambda a: [{"clients": c, "duration": a.duration or 10.0} for c in _clients(a, [1, 10])],
    ),
    Scenario(
        "queue-latency",
        sc_queue_latency,
        "POST /threads/{id}/runs, then GET the run every 5 ms until success",
        lambda a: [{"n": a.n or 30}],
    ),
    Scenario(
        "sse-ttfe",
        sc_sse_ttfe,
        "time to first SSE event and to stream end, /threads/{id}/runs/stream (echo)",
        lambda a: [{"n": a.n or 20}],
    ),
    Scenario(
        "sse-custom",
        sc_sse_custom,
        "POST /runs/stream stream_mode=custom, N custom events (custom graph)",
        lambda a: [{"events": a.events, "sse_reps": a.sse_reps}],
    ),
    Scenario(
        "protocol-custom",
        sc_protocol_custom,
        "thread-centric protocol: run.start + /threads/{id}/stream/events, N custom events",
        lambda a: [{"events": a.events, "sse_reps": a.sse_reps}],
    ),
    Scenario(
        "threads-mem",
        sc_threads_mem,
        "server RSS (process tree) before/after creating N threads; count/search latency",
        lambda a: [{"threads": a.threads, "mem_clients": a.mem_clients}],
    ),
    Scenario(
        "cancel-latency",
        sc_cancel_latency,
        "run the sleepy graph, POST .../cancel, time until status=interrupted",
        lambda a: [{"n": a.n or 10}],
    ),
]
SCENARIO_NAMES = [s.name for s in SCENARIOS]


def case_label(scenario: Scenario, variant: dict[str, Any]) -> str:
    if "clients" in variant:
        return f"{scenario.name} c={variant['clients']} {variant['duration']:g}s"
    if "events" in variant:
        return f"{scenario.name} n={variant['events']}"
    if "threads" in variant:
        return f"{scenario.name} n={variant['threads']}"
    return f"{scenario.name} n={variant['n']}"


# --------------------------------------------------------------------------------------
# driver


async def warmup(client: httpx.AsyncClient) -> None:
    with contextlib.suppress(Exception):
        await post_json(client, "/runs/wait", {"assistant_id": "echo", "input": ECHO_INPUT})


async def run_case(
    spec: TargetSpec,
    scenario: Scenario,
    variant: dict[str, Any],
    args: argparse.Namespace,
    tag: str,
    logs_dir: Path,
    shared: dict[str, Server],
) -> dict[str, Any]:
    own = not args.reuse_server or spec.name not in shared
    if own:
        try:
            server = await start_server(spec, args, tag, logs_dir)
        except Exception as exc:
            log = logs_dir / f"{spec.name}-{tag}.log"
            tail = ""
            with contextlib.suppress(OSError):
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            return {"ok": False, "error": f"server did not start: {exc} (log {log}: {tail})"}
        if args.reuse_server:
            shared[spec.name] = server
    else:
        server = shared[spec.name]
    conns = max(64, int(variant.get("clients", 0)) + 8)
    try:
        async with make_client(server.url, connections=conns) as client:
            if not server.info:
                with contextlib.suppress(Exception):
                    server.info = (await client.get("/info")).json()
            if args.warmup:
                await warmup(client)
            await asyncio.sleep(args.settle)
            t0 = time.time()
            metrics, details = await scenario.fn(client, server, variant)
            return {
                "ok": True,
                "server_info": server.info,
                "metrics": metrics,
                "details": details,
                "started": t0,
                "wall_s": time.time() - t0,
            }
    except Exception as exc:
        log = f" (server log: {server.log_path})" if server.log_path else ""
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}{log}"}
    finally:
        if own and not args.reuse_server:
            server.stop()


def machine_note() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "mem_gib": mem_gib,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "httpx": httpx.__version__,
        "loadavg": os.getloadavg(),
    }


def fmt_num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.2f}"
    return str(v)


def aggregate(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over the successful repetitions, with the individual values."""
    ok = [r for r in reps if r.get("ok")]
    out: dict[str, Any] = {"reps": len(reps), "ok_reps": len(ok), "metrics": {}, "values": {}}
    if not ok:
        out["error"] = reps[-1].get("error") if reps else "not run"
        return out
    for key in ok[0]["metrics"]:
        vals = [r["metrics"].get(key) for r in ok]
        nums = [v for v in vals if isinstance(v, int | float)]
        out["metrics"][key] = statistics.median(nums) if nums else None
        out["values"][key] = vals
    errs = [r["error"] for r in reps if not r.get("ok")]
    if errs:
        out["failed_reps"] = errs
    return out


def print_table(cases: list[str], names: list[str], agg: dict[str, dict[str, Any]]) -> None:
    both = "threadline" in names and "reference" in names
    header = ["case", "metric", *names] + (["tl/ref"] if both else [])
    rows: list[list[str]] = []
    for case in cases:
        keys: list[str] = []
        for name in names:
            for k in agg[name].get(case, {}).get("metrics", {}):
                if k not in keys:
                    keys.append(k)
        if not keys:
            err = "; ".join(
                f"{n}: {agg[n].get(case, {}).get('error', 'not run')}"[:100] for n in names
            )
            rows.append([case, "FAILED", err])
            continue
        for i, k in enumerate(keys):
            row = [case if i == 0 else "", k]
            vals = []
            for name in names:
                a = agg[name].get(case, {})
                v = a.get("metrics", {}).get(k)
                cell = fmt_num(v)
                indiv = a.get("values", {}).get(k, [])
                if len(indiv) > 1:
                    cell += " [" + ", ".join(fmt_num(x) for x in indiv) + "]"
                if not a.get("metrics"):
                    cell = "FAILED"
                row.append(cell)
                vals.append(v)
            if both:
                tl, ref = vals
                ok = isinstance(tl, int | float) and isinstance(ref, int | float) and ref
                row.append(f"{tl / ref:.2f}x" if ok else "-")
            rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows] if i < len(r)) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)))
    for name in names:
        for case in cases:
            err = agg[name].get(case, {}).get("failed_reps") or (
                [agg[name][case]["error"]] if agg[name].get(case, {}).get("error") else []
            )
            for e in err:
                print(f"! {name} / {case}: {e}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark Threadline against the reference LangGraph Agent Server.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios:\n"
        + "\n".join(f"  {s.name:<15} {s.doc}" for s in SCENARIOS)
        + "\n\nWith neither --threadline nor --reference, both servers are benchmarked.",
    )
    p.add_argument(
        "--only",
        nargs="+",
        action="extend",
        choices=SCENARIO_NAMES,
        metavar="NAME",
        help="run only these scenarios (repeatable)",
    )
    p.add_argument("--threadline", action="store_true", help="benchmark Threadline")
    p.add_argument("--reference", action="store_true", help="benchmark the reference")
    p.add_argument(
        "--threadline-cmd",
        default=DEFAULT_THREADLINE_CMD,
        help="command template that runs Threadline in the foreground; placeholders "
        "{config} {host} {port} {jobs} (default: %(default)s)",
    )
    p.add_argument(
        "--reference-cmd",
        default=DEFAULT_REFERENCE_CMD,
        help="launcher template that starts the reference in the background and prints its "
        "PID (default: %(default)s)",
    )
    p.add_argument("--threadline-url", help="attach to an already running Threadline")
    p.add_argument("--reference-url", help="attach to an already running reference")
    p.add_argument("--threadline-pid", type=int, help="pid of the attached Threadline (RSS)")
    p.add_argument("--reference-pid", type=int, help="pid of the attached reference (RSS)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="langgraph.json")
    p.add_argument("--jobs", type=int, default=10, help="concurrent runs per server (10)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="results directory")
    p.add_argument("--label", default="", help="suffix for the results file name")
    p.add_argument("--repeats", type=int, default=1, help="fresh-server repetitions per case")
    p.add_argument("--n", type=int, help="iterations for the sequential scenarios")
    p.add_argument(
        "--clients",
        type=lambda s: [int(x) for x in s.split(",")],
        help="client counts for wait-conc / stateless-wait, e.g. 10,50",
    )
    p.add_argument("--duration", type=float, help="seconds per closed-loop case (10)")
    p.add_argument("--events", type=int, default=10_000, help="sse-custom events (10000)")
    p.add_argument("--sse-reps", type=int, default=3, help="sse-custom streams per case (3)")
    p.add_argument("--threads", type=int, default=10_000, help="threads-mem threads (10000)")
    p.add_argument("--mem-clients", type=int, default=16, help="threads-mem clients (16)")
    p.add_argument("--settle", type=float, default=2.0, help="idle seconds before measuring")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip warm-up run")
    p.add_argument(
        "--reuse-server",
        action="store_true",
        help="one server per target for all cases (default: a fresh server per case)",
    )
    p.add_argument("--ready-timeout", type=float, default=90.0, help="seconds to wait for /ok")
    args = p.parse_args(argv)
    args.config = args.config.resolve()
    if not (args.threadline or args.reference):
        args.threadline = args.reference = True
    return args


def wait_for_reference_install(timeout: float = 1800.0) -> None:
    """The reference venv may still be installing in the background: wait, never reinstall."""
    deadline = time.monotonic() + timeout
    announced = False
    while time.monotonic() < deadline:
        busy = (
            subprocess.run(
                ["pgrep", "-f", "pip.*threadline-reference"], capture_output=True, check=False
            ).returncode
            == 0
        )
        if (REF_VENV / "bin" / "langgraph").exists() and not busy:
            return
        if not announced:
            print(f"waiting for the reference venv install ({REF_VENV}) ...", file=sys.stderr)
            announced = True
        time.sleep(5)
    raise SystemExit(f"reference venv at {REF_VENV} is not ready")


async def amain(args: argparse.Namespace) -> int:
    specs: list[TargetSpec] = []
    if args.threadline:
        specs.append(
            TargetSpec(
                "threadline",
                args.threadline_cmd,
                args.threadline_url,
                args.threadline_pid,
                launcher=False,
            )
        )
    if args.reference:
        if not args.reference_url and args.reference_cmd == DEFAULT_REFERENCE_CMD:
            wait_for_reference_install()
        specs.append(
            TargetSpec(
                "reference",
                args.reference_cmd,
                args.reference_url,
                args.reference_pid,
                launcher=True,
            )
        )
    selected = [s for s in SCENARIOS if not args.only or s.name in args.only]
    cases = [(s, v, case_label(s, v)) for s in selected for v in s.variants(args)]

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    logs_dir = args.out / "logs" / stamp
    logs_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_note(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {s.name: {} for s in specs}
    shared: dict[str, Server] = {}
    servers_info: dict[str, Any] = {}
    t_start = time.time()
    try:
        for rep in range(args.repeats):
            for scenario, variant, label in cases:
                for spec in specs:
                    tag = f"{scenario.name}-{rep}-{uuid.uuid4().hex[:6]}"
                    print(
                        f"[{time.time() - t_start:6.0f}s] {spec.name:<10} {label} "
                        f"(rep {rep + 1}/{args.repeats}) ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    res = await run_case(spec, scenario, variant, args, tag, logs_dir, shared)
                    res["variant"] = variant
                    raw[spec.name].setdefault(label, []).append(res)
                    status = "ok" if res["ok"] else f"FAILED: {res['error']}"
                    print(f"         -> {status}", file=sys.stderr, flush=True)
    finally:
        for server in shared.values():
            server.stop()
    for name, by_case in raw.items():
        for results in by_case.values():
            for res in results:
                if res.get("server_info") and name not in servers_info:
                    servers_info[name] = res.pop("server_info")
                res.pop("server_info", None)
    meta["servers"] = servers_info
    meta["machine"]["loadavg_end"] = os.getloadavg()
    meta["wall_s"] = time.time() - t_start

    names = [s.name for s in specs]
    labels = [label for _, _, label in cases]
    agg = {n: {label: aggregate(raw[n].get(label, [])) for label in labels} for n in names}
    print()
    print(
        f"jobs={args.jobs}  repeats={args.repeats}  machine: {meta['machine']['cpus']} cpus, "
        f"{meta['machine']['mem_gib']} GiB  ({meta['wall_s']:.0f}s)"
    )
    print_table(labels, names, agg)

    suffix = f"-{args.label}" if args.label else ""
    out_file = args.out / f"results-{stamp}{suffix}.json"
    out_file.write_text(
        json.dumps({"meta": meta, "summary": agg, "raw": raw}, indent=2, default=str) + "\n"
    )
    print(f"\nresults: {out_file}\nserver logs: {logs_dir}")
    return 0 if all(a.get("ok_reps") for n in names for a in agg[n].values()) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
