"""The `threadline` command, run as a real process: options, env vars, errors, restarts, reload."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.fixtures.clirun import FIXTURE_CONFIG, FIXTURES, CliServer, run_cli, wait_reply
from tests.serverproc import free_port
from threadline import __version__

SERVER_OPTIONS = [
    "--config",
    "--host",
    "--port",
    "--database-uri",
    "--redis-uri",
    "--jobs",
    "--graph-isolation",
    "--log-level",
]
ENV_NAMES = [
    "THREADLINE_CONFIG",
    "THREADLINE_HOST",
    "THREADLINE_PORT",
    "THREADLINE_DATABASE_URI",
    "DATABASE_URI",
    "THREADLINE_REDIS_URI",
    "REDIS_URI",
    "THREADLINE_JOBS",
    "N_JOBS_PER_WORKER",
    "THREADLINE_GRAPH_ISOLATION",
    "THREADLINE_LOG_LEVEL",
]


def small_config(folder: Path) -> Path:
    path = folder / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"compiled": f"{FIXTURES / 'graphs.py'}:graph"}}))
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"threadline {__version__}"


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("dev", "serve", "migrate"):
        assert command in result.stdout
    assert "sqlite:////absolute/path.db" in result.stdout


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_help_explains_every_option(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for option in SERVER_OPTIONS:
        assert option in text
    for name in ENV_NAMES:
        assert name in text
    assert "sqlite:///relative/to/config/dir" in text and "sqlite:////absolute/path" in text
    assert "plain file path" in text
    assert "never picks another" in text


def test_migrate_help() -> None:
    text = " ".join(run_cli("migrate", "--help").stdout.split())
    for option in ("--config", "--database-uri", "DATABASE_URI"):
        assert option in text


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_busy_port_stops_with_a_message(command: str, busy_port: int, tmp_path: Path) -> None:
    result = run_cli(
        command, "--config", str(small_config(tmp_path)), "--port", str(busy_port), timeout=20
    )
    assert result.returncode == 1
    assert f"port {busy_port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--redis-uri", "redis://localhost:6379"], {}, "Redis goes with the PostgreSQL"),
        ([], {"REDIS_URI": "redis://localhost:6379"}, "Redis goes with the PostgreSQL"),
        (
            ["--database-uri", "postgresql://x/y", "--redis-uri", "http://localhost"],
            {},
            "unsupported Redis URI",
        ),
        ([], {"THREADLINE_DB_POOL_SIZE": "0"}, "THREADLINE_DB_POOL_SIZE must be 1 or more"),
        (["--database-uri", "mysql://localhost/db"], {}, "unsupported database URI"),
        (["--jobs", "-1"], {}, "jobs must be 0 or more"),
        ([], {"N_JOBS_PER_WORKER": "many"}, "jobs must be an integer"),
    ],
)
def test_unsupported_settings_are_refused(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = run_cli("serve", "--config", str(small_config(tmp_path)), *args, env=env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_options_from_environment_variables(tmp_path: Path) -> None:
    port = free_port()
    server = CliServer(
        pass_port=False,
        port=port,
        cwd=tmp_path,
        env={
            "THREADLINE_CONFIG": str(small_config(tmp_path)),
            "THREADLINE_PORT": str(port),
            "DATABASE_URI": "plain path.db",  # a plain path, relative to the working dir
            "THREADLINE_JOBS": "3",
            "N_JOBS_PER_WORKER": "7",  # THREADLINE_JOBS wins
            "THREADLINE_GRAPH_ISOLATION": "loop",
        },
    )
    with server:
        server.wait_ready()
        workers = httpx.get(f"{server.url}/ok").json()["services"]["workers"]
        assert workers["max"] == 3
        client = get_sync_client(url=server.url, api_key=None)
        assert wait_reply(client, None, "compiled") == "compiled"
    assert (tmp_path / "plain path.db").is_file()


@pytest.mark.parametrize(
    ("uri", "where"),
    [
        ("sqlite:///data/rel.db", "config/data/rel.db"),  # relative to langgraph.json
        ("sqlite:////{tmp}/abs.db", "abs.db"),
        ("plain.db", "plain.db"),  # relative to the working directory
    ],
)
def test_migrate_creates_the_database(tmp_path: Path, uri: str, where: str) -> None:
    (tmp_path / "config").mkdir()
    config = small_config(tmp_path / "config")
    uri = uri.format(tmp=str(tmp_path).lstrip("/"))
    result = run_cli("migrate", "--config", str(config), "--database-uri", uri, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / where).is_file()
    assert str(tmp_path / where) in result.stdout


def test_command_line_beats_environment(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    result = run_cli(
        "migrate",
        "--config",
        str(config),
        "--database-uri",
        "sqlite:///from-flag.db",
        env={"THREADLINE_DATABASE_URI": "sqlite:///from-env.db"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-flag.db").is_file()
    assert not (tmp_path / "from-env.db").exists()


def test_default_database_lives_next_to_the_config(tmp_path: Path) -> None:
    small_config(tmp_path)
    result = run_cli("migrate", "--config", str(tmp_path))  # a folder holding langgraph.json
    assert result.returncode == 0, result.stderr
    data = tmp_path / ".threadline"
    assert (data / "threadline.db").is_file()
    assert (data / ".gitignore").read_text().strip().endswith("*")


def test_data_survives_a_restart(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'keep.db'}"
    args = ("--config", str(FIXTURE_CONFIG), "--database-uri", db)
    with CliServer(*args) as server:
        client = get_sync_client(url=server.wait_ready().url, api_key=None)
        assistant = client.assistants.create("compiled", name="keeper", metadata={"k": "v"})
        thread = client.threads.create(metadata={"kept": True})
        assert wait_reply(client, thread["thread_id"], assistant["assistant_id"]) == "compiled"
        code = server.stop(signal.SIGTERM)
        assert code in (0, -signal.SIGTERM), server.log()
        assert "Application shutdown complete" in server.log()
    with CliServer(*args, port=server.port) as again:
        client = get_sync_client(url=again.wait_ready().url, api_key=None)
        got = client.assistants.get(assistant["assistant_id"])
        assert (got["name"], got["metadata"]) == ("keeper", {"k": "v"})
        assert client.threads.get(thread["thread_id"])["metadata"]["kept"] is True
        state = client.threads.get_state(thread["thread_id"])
        assert [m["content"] for m in state["values"]["messages"]] == ["hi", "compiled"]


GRAPH_SOURCE = """
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph


def respond(state: MessagesState) -> dict:
    return {{"messages": [AIMessage(content={reply!r})]}}


builder = StateGraph(MessagesState)
builder.add_node("respond", respond)
builder.add_edge(START, "respond")
builder.add_edge("respond", END)
graph = builder.compile()
"""


def _reply_when_ready(url: str, expected: str, timeout: float = 20) -> None:
    """Poll through the SDK until the reloaded server answers with `expected`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            client = get_sync_client(url=url, api_key=None, timeout=5)
            last = wait_reply(client, None, "agent")
            if last == expected:
                return
        except Exception as exc:  # the server is restarting
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"never got {expected!r}; last reply: {last!r}")


def test_dev_reloads_when_graph_code_changes(tmp_path: Path) -> None:
    graph_file = tmp_path / "agent.py"
    graph_file.write_text(GRAPH_SOURCE.format(reply="v1"))
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {"agent": "./agent.py:graph"}}))
    with CliServer("--config", "langgraph.json", command="dev", cwd=tmp_path) as server:
        client = get_sync_client(url=server.wait_ready(timeout=40).url, api_key=None)
        thread = client.threads.create(metadata={"before": "reload"})
        assert wait_reply(client, thread["thread_id"], "agent") == "v1"

        graph_file.write_text(GRAPH_SOURCE.format(reply="v2"))
        _reply_when_ready(server.url, "v2")

        # state from before the reload is still there, and the thread continues
        assert client.threads.get(thread["thread_id"])["metadata"]["before"] == "reload"
        assert wait_reply(client, thread["thread_id"], "agent") == "v2"
        messages = client.threads.get_state(thread["thread_id"])["values"]["messages"]
        assert [m["content"] for m in messages] == ["hi", "v1", "hi", "v2"]

        # a broken edit is reported, the supervisor waits, and a fix brings it back
        graph_file.write_text("def broken(:\n")
        server.wait_for_log("waiting for a change to reload")
        assert server.proc.poll() is None
        graph_file.write_text(GRAPH_SOURCE.format(reply="v3"))
        _reply_when_ready(server.url, "v3")
    assert (tmp_path / ".threadline" / "threadline.db").is_file()
