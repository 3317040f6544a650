"""Start and stop real `threadline serve` processes for tests.

Every server runs on one of two deployments (`backend`): "sqlite" (a fresh SQLite file,
the in-process broker) or "postgres" (a fresh PostgreSQL database `threadline_t_<random>`,
created on start and dropped on stop, plus Redis under that database's key prefix).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
GRAPHS_CONFIG = ROOT / "tests" / "graphs" / "langgraph.json"

BACKENDS = ("sqlite", "postgres")
# Also on request (THREADLINE_TEST_BACKEND): PostgreSQL alone, its broker on LISTEN/NOTIFY.
EXTRA_BACKENDS = ("postgres-notify",)
# The PostgreSQL server tests create their databases on (through its `postgres` database).
POSTGRES_ADMIN_URI = os.environ.get(
    "THREADLINE_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URI = os.environ.get("THREADLINE_TEST_REDIS_URI", "redis://127.0.0.1:6379/0")
_current_backend: str | None = None
# Short leases, so that a killed worker's runs come back within seconds, and a short grace
# at SIGTERM (a test's own `env` wins).
TEST_TIMINGS = {
    "THREADLINE_LEASE_SECONDS": "4",
    "THREADLINE_HEARTBEAT_SECONDS": "1",
    "THREADLINE_SHUTDOWN_GRACE_SECONDS": "3",
}
_databases: set[str] = set()
# A loaded 2-core machine can take a minute to import and migrate; a live process is waited
# for that long, a dead one is reported at once.
START_TIMEOUT = float(os.environ.get("THREADLINE_TEST_START_TIMEOUT", "180"))


def suite_backends() -> list[str]:
    """The deployments the suite runs on: both, or the one THREADLINE_TEST_BACKEND names."""
    chosen = os.environ.get("THREADLINE_TEST_BACKEND")
    if not chosen:
        return list(BACKENDS)
    if chosen not in BACKENDS + EXTRA_BACKENDS:
        raise ValueError(
            f"THREADLINE_TEST_BACKEND must be one of {BACKENDS + EXTRA_BACKENDS}, not {chosen!r}"
        )
    return [chosen]


def use_backend(backend: str | None) -> None:
    """The backend `ServerProcess()` defaults to (the running test's parametrization)."""
    global _current_backend
    _current_backend = backend


def default_backend() -> str:
    return _current_backend or suite_backends()[0]


def postgres_uri(database: str) -> str:
    """POSTGRES_ADMIN_URI, naming another database."""
    base, _, query = POSTGRES_ADMIN_URI.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{database}" + (f"?{query}" if query else "")


def create_database() -> str:
    import psycopg

    name = f"threadline_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URI, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _databases.add(name)
    return name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URI, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _databases.discard(name)
    import redis

    client = redis.Redis.from_url(REDIS_URI)
    try:
        keys = list(client.scan_iter(match=f"threadline:{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@atexit.register
def _drop_leftovers() -> None:
    for name in list(_databases):
        try:
            drop_database(name)
        except Exception as exc:  # best effort at exit
            print(f"could not drop test database {name}: {exc}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A `threadline serve` child process on a port of its own."""

    config: Path = GRAPHS_CONFIG
    database_uri: str | None = None
    jobs: int = 10
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    backend: str = field(default_factory=default_backend)
    # postgres: Redis unless None is wanted (then the broker is PostgreSQL's own)
    redis_uri: str | None = REDIS_URI
    database_name: str | None = None  # the PostgreSQL database this server made
    command: str = "serve"  # or "worker": runs only, no HTTP (ready once it says so)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS + EXTRA_BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}")
        if self.backend != "postgres":
            self.redis_uri = None
        if self.database_uri is None and self.backend == "sqlite":
            tmp = Path(tempfile.mkdtemp(prefix="threadline-test-"))
            self.database_uri = f"sqlite:///{tmp / 'threadline.db'}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> ServerProcess:
        if self.database_uri is None:  # postgres: a database of its own until stop()
            self.database_name = create_database()
            self.database_uri = postgres_uri(self.database_name)
        self.port = self.port or free_port()
        fd, log = tempfile.mkstemp(prefix="threadline-server-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **TEST_TIMINGS, **self.env}
        for name in ("REDIS_URI", "THREADLINE_REDIS_URI"):
            env.pop(name, None)
        redis_args = ["--redis-uri", self.redis_uri] if self.redis_uri else []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "threadline.cli",
                self.command,
                "--config",
                str(self.config),
                *(["--port", str(self.port)] if self.command != "worker" else []),
                "--database-uri",
                str(self.database_uri),
                "--jobs",
                str(self.jobs),
                *redis_args,
                *self.extra_args,
            ],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            if self.command == "worker":
                if " worker " in self.log() and " jobs)" in self.log():
                    return self
                time.sleep(0.05)
                continue
            try:
                if httpx.get(f"{self.url}/ok", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start within {timeout:.0f}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the process; a database this server created goes with it."""
        self._stop_process(sig, timeout)
        if self.database_name is not None:
            drop_database(self.database_name)
            self.database_name = None
            self.database_uri = None

    def _stop_process(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """kill -9: the data stays for the next start."""
        self._stop_process(signal.SIGKILL)

    def restart(self) -> ServerProcess:
        self._stop_process()
        return self.start()
