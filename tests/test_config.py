"""langgraph.json as users write it: graph forms, env, dependencies, sections, and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client

from tests.fixtures.clirun import FIXTURE_CONFIG, FIXTURES, CliServer, run_cli, wait_reply
from threadline.settings import ConfigError, resolve_database_uri

GRAPHS = FIXTURES / "graphs.py"


def write_config(folder: Path, config: dict[str, Any] | str) -> Path:
    path = folder / "langgraph.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliServer]:
    db = tmp_path_factory.mktemp("config") / "threadline.db"
    server = CliServer("--config", str(FIXTURE_CONFIG), "--database-uri", str(db))
    with server:
        yield server.wait_ready()


@pytest.mark.parametrize(
    ("graph_id", "reply"),
    [
        ("compiled", "compiled"),
        ("stategraph", "stategraph"),
        ("factory", "factory hi"),
        ("factory_async", "async factory"),
        ("package", "from a package"),
        ("package_file", "from a package"),  # a file path inside a dependency: relative imports
        ("env_file", "hello from the env file"),
    ],
)
def test_graph_forms_are_served(fixture_server: CliServer, graph_id: str, reply: str) -> None:
    client = get_sync_client(url=fixture_server.url, api_key=None)
    assert wait_reply(client, None, graph_id) == reply


def test_factory_gets_the_run_config(fixture_server: CliServer) -> None:
    client = get_sync_client(url=fixture_server.url, api_key=None)
    assistant = client.assistants.create(
        "factory", config={"configurable": {"greeting": "bonjour"}}
    )
    thread = client.threads.create()
    assert wait_reply(client, thread["thread_id"], assistant["assistant_id"]) == "factory bonjour"


def test_runtime_factory_gets_a_server_runtime(fixture_server: CliServer) -> None:
    client = get_sync_client(url=fixture_server.url, api_key=None)
    reply = wait_reply(client, None, "factory_runtime")
    assert reply.startswith("runtime threads.create_run")
    # introspection builds the graph too, as a read
    assistant = client.assistants.search(graph_id="factory_runtime")[0]
    assert client.assistants.get_schemas(assistant["assistant_id"])["graph_id"] == (
        "factory_runtime"
    )


def test_graph_descriptions_and_sections_are_accepted(fixture_server: CliServer) -> None:
    client = get_sync_client(url=fixture_server.url, api_key=None)
    graph_ids = {a["graph_id"] for a in client.assistants.search(limit=100)}
    assert graph_ids >= {"compiled", "stategraph", "factory", "factory_async", "package"}


def test_env_dict_is_applied_before_import(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {
            "graphs": {"env_dict": f"{FIXTURES / 'env_reader.py'}:graph"},
            "env": {"FIXTURE_GREETING": "hello from the env dict"},
        },
    )
    with CliServer("--config", str(config)) as server:
        client = get_sync_client(url=server.wait_ready().url, api_key=None)
        assert wait_reply(client, None, "env_dict") == "hello from the env dict"
    assert (tmp_path / ".threadline" / "threadline.db").is_file()  # the default database


def _error(tmp_path: Path, config: dict[str, Any] | str, command: str = "serve") -> str:
    path = write_config(tmp_path, config)
    result = run_cli(command, "--config", str(path), "--port", "1")
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return " ".join(result.stderr.split())


def test_invalid_json(tmp_path: Path) -> None:
    message = _error(tmp_path, '{"graphs": {"agent": "./agent.py:graph",}')
    assert "langgraph.json is not valid JSON" in message
    assert str(tmp_path) in message


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert "config file not found" in result.stderr and "nope.json" in result.stderr


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"dependencies": ["."]}, "has no 'graphs' section"),
        ({"graphs": {}}, "at least one graph is required"),
        ({"graphs": {"agent": "./agent.py"}}, "'agent'"),
        ({"graphs": {"agent": "./agent.ts:graph"}}, "JavaScript"),
        ({"graphs": {"a": "./a.py:g"}, "env": ["A=1"]}, "env"),
        (
            {"graphs": {"a": "./a.py:g"}, "webhooks": {"url": {"max_url_length": "long"}}},
            "webhooks.url.max_url_length",
        ),
        ({"graphs": {"a": "./a.py:g"}, "auth": {"path": "auth.py"}}, "auth.path"),
        ({"graphs": {"a": "./a.py:g"}, "store": {"index": {"dims": 3}}}, "store.index.embed"),
    ],
)
def test_invalid_config(tmp_path: Path, config: dict[str, Any], expected: str) -> None:
    message = _error(tmp_path, config)
    assert expected in message


@pytest.mark.parametrize(
    ("section", "dotted"),
    [
        ({"auth": {"path": "./auth.py:auth"}}, "auth.path"),
        ({"http": {"app": "./app.py:app"}}, "http.app"),
    ],
)
def test_sections_not_supported_yet_stop_start_up(
    tmp_path: Path, section: dict[str, Any], dotted: str
) -> None:
    message = _error(tmp_path, {"graphs": {"a": f"{GRAPHS}:graph"}, **section})
    assert f"'{dotted}'" in message and "is not supported yet" in message


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_graph_that_raises_on_import(tmp_path: Path, command: str) -> None:
    message = _error(tmp_path, {"graphs": {"broken": f"{FIXTURES / 'raises.py'}:graph"}}, command)
    assert "graph 'broken'" in message
    assert "raises.py" in message
    assert "RuntimeError: cannot reach the model provider" in message
    assert "(line 7)" in message


def test_graph_with_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text("def broken(:\n    pass\n")
    message = _error(tmp_path, {"graphs": {"agent": "./agent.py:graph"}})
    assert "graph 'agent'" in message and "agent.py" in message and "SyntaxError" in message


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (f"{GRAPHS}:nope", "has no attribute 'nope'; graphs defined there: builder, graph"),
        (f"{GRAPHS}:not_a_graph", "is not a graph: got int"),
        ("./missing.py:graph", "file not found: ./missing.py"),
        ("no_such_package.agent:graph", "module 'no_such_package.agent' not found"),
    ],
)
def test_graph_that_is_not_there(tmp_path: Path, location: str, expected: str) -> None:
    message = _error(tmp_path, {"graphs": {"the_graph": location}})
    assert "graph 'the_graph'" in message
    assert location.split(":")[0] in message
    assert expected in message


def test_missing_env_file(tmp_path: Path) -> None:
    message = _error(tmp_path, {"graphs": {"a": f"{GRAPHS}:graph"}, "env": "./.env.missing"})
    assert "env file not found" in message and ".env.missing" in message


def test_missing_local_dependency(tmp_path: Path) -> None:
    message = _error(tmp_path, {"graphs": {"a": f"{GRAPHS}:graph"}, "dependencies": ["./src"]})
    assert "dependency './src'" in message


def test_env_graph_without_its_variable_names_the_cause(tmp_path: Path) -> None:
    message = _error(tmp_path, {"graphs": {"needs_env": f"{FIXTURES / 'env_reader.py'}:graph"}})
    assert "graph 'needs_env'" in message and "env_reader.py" in message
    assert "KeyError: 'FIXTURE_GREETING'" in message


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///data/x.db", "/base/data/x.db"),
        ("sqlite:////var/x.db", "/var/x.db"),
        ("sqlite+aiosqlite:///x.db", "/base/x.db"),
        ("/srv/x.db", "/srv/x.db"),
    ],
)
def test_database_uri_forms(uri: str, expected: str) -> None:
    assert resolve_database_uri(uri, Path("/base")) == f"sqlite:///{expected}"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql://u:p@h:5432/db"),
        ("postgres://h/db", "postgresql://h/db"),
        ("POSTGRESQL://h/db?sslmode=disable", "postgresql://h/db?sslmode=disable"),
    ],
)
def test_postgres_uris(uri: str, expected: str) -> None:
    assert resolve_database_uri(uri, Path("/base")) == expected


@pytest.mark.parametrize("uri", ["mysql://h/db", "sqlite:///:memory:", "sqlite:"])
def test_database_uris_refused(uri: str) -> None:
    with pytest.raises(ConfigError):
        resolve_database_uri(uri, Path("/base"))


def test_postgres_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from threadline.settings import Settings

    for name in (
        "REDIS_URI",
        "THREADLINE_REDIS_URI",
        "THREADLINE_DB_POOL_SIZE",
        "DATABASE_URI",
        "THREADLINE_DATABASE_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    path = write_config(tmp_path, {"graphs": {"g": "./g.py:graph"}})
    settings = Settings.build(
        path, database_uri="postgres://u:secret@db.local/app", redis_uri="redis://r:6379/1"
    )
    assert settings.backend == "postgres"
    assert settings.database_uri == "postgresql://u:secret@db.local/app"
    assert settings.redis_prefix == "threadline:app"
    assert settings.database_label == "postgresql://u:***@db.local/app"
    assert settings.db_pool_size == 10
    with pytest.raises(ConfigError):
        _ = settings.sqlite_path
    monkeypatch.setenv("THREADLINE_DB_POOL_SIZE", "3")
    assert Settings.build(path, database_uri="postgresql:///other").db_pool_size == 3
    with pytest.raises(ConfigError, match="Redis goes with the PostgreSQL deployment only"):
        Settings.build(path, redis_uri="redis://r:6379")
    assert Settings.build(path).backend == "sqlite"
