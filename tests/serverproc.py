"""Start and stop real `threadline serve` processes for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
GRAPHS_CONFIG = ROOT / "tests" / "graphs" / "langgraph.json"


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

    def __post_init__(self) -> None:
        if self.database_uri is None:
            tmp = Path(tempfile.mkdtemp(prefix="threadline-test-"))
            self.database_uri = f"sqlite:///{tmp / 'threadline.db'}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.port = self.port or free_port()
        fd, log = tempfile.mkstemp(prefix="threadline-server-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "threadline.cli",
                "serve",
                "--config",
                str(self.config),
                "--port",
                str(self.port),
                "--database-uri",
                str(self.database_uri),
                "--jobs",
                str(self.jobs),
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
            try:
                if httpx.get(f"{self.url}/ok", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()
