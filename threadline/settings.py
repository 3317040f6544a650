"""One Settings object: command-line options and environment variables plus langgraph.json.

Precedence, for every setting: the command-line option, then THREADLINE_<NAME>, then the
variable the reference server reads (DATABASE_URI, REDIS_URI, N_JOBS_PER_WORKER), then
the default.

Database URIs (SQLite only, for now):
  sqlite:///relative/path.db   relative to the directory of langgraph.json
  sqlite:////absolute/path.db  an absolute path
  /absolute/path.db, ./x.db    a plain filesystem path (relative to the working directory)
The default is sqlite:///.threadline/threadline.db, next to langgraph.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2024
DEFAULT_JOBS = 10
DATA_DIR = ".threadline"
DEFAULT_DATABASE_URI = f"sqlite:///{DATA_DIR}/threadline.db"


class ConfigError(Exception):
    """langgraph.json or a setting is invalid; start-up stops with this message."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")


def _require_import_path(value: str | None, what: str) -> str | None:
    if value is not None and ":" not in value:
        raise ValueError(f"{what} must look like './path/to/file.py:attr' or 'package.module:attr'")
    return value


class CorsConfig(_Section):
    allow_origins: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=lambda: ["*"])
    allow_headers: list[str] = Field(default_factory=lambda: ["*"])
    allow_credentials: bool = False
    allow_origin_regex: str | None = None
    expose_headers: list[str] = Field(default_factory=list)
    max_age: int = 600


class ConfigurableHeaders(_Section):
    includes: list[str] | None = None
    excludes: list[str] | None = None


class HttpConfig(_Section):
    app: str | None = None
    cors: CorsConfig | None = None
    configurable_headers: ConfigurableHeaders | None = None
    disable_assistants: bool = False
    disable_threads: bool = False
    disable_runs: bool = False
    disable_store: bool = False
    disable_meta: bool = False
    disable_ui: bool = False
    disable_mcp: bool = False
    disable_a2a: bool = False

    @field_validator("app")
    @classmethod
    def _app_path(cls, value: str | None) -> str | None:
        return _require_import_path(value, "http.app")


class StoreIndexConfig(_Section):
    embed: str = Field(min_length=1)
    dims: int = Field(gt=0)
    fields: list[str] | None = None


class StoreTTLConfig(_Section):
    refresh_on_read: bool = True
    default_ttl: float | None = Field(default=None, ge=0)
    sweep_interval_minutes: float | None = Field(default=None, gt=0)


class StoreConfig(_Section):
    index: StoreIndexConfig | None = None
    ttl: StoreTTLConfig | None = None


class CheckpointerTTLConfig(_Section):
    strategy: Literal["delete"] = "delete"
    sweep_interval_minutes: float | None = Field(default=None, gt=0)
    default_ttl: float | None = Field(default=None, ge=0)


class CheckpointerConfig(_Section):
    path: str | None = None
    ttl: CheckpointerTTLConfig | None = None

    @field_validator("path")
    @classmethod
    def _checkpointer_path(cls, value: str | None) -> str | None:
        return _require_import_path(value, "checkpointer.path")


class AuthConfig(_Section):
    path: str | None = None
    disable_studio_auth: bool = False
    openapi: dict[str, Any] | None = None

    @field_validator("path")
    @classmethod
    def _auth_path(cls, value: str | None) -> str | None:
        return _require_import_path(value, "auth.path")


class WebhookUrlPolicy(_Section):
    require_https: bool = False
    allowed_domains: list[str] | None = None
    allowed_ports: list[int] | None = None
    max_url_length: int = Field(default=4096, gt=0)
    disable_loopback: bool = True
    disable_private_ips: bool = True


class WebhooksConfig(_Section):
    env_prefix: str | None = None
    url: WebhookUrlPolicy | None = None
    headers: dict[str, str] | None = None


class GraphEntry(BaseModel):
    path: str
    description: str | None = None


_JS_SUFFIXES = (".ts", ".mts", ".cts", ".js", ".mjs", ".cjs", ".tsx", ".jsx")


class LanggraphConfig(_Section):
    """The parts of langgraph.json a server uses; build-only keys are accepted and ignored."""

    graphs: dict[str, GraphEntry]
    env: str | dict[str, str] | None = None
    dependencies: list[str] = Field(default_factory=list)
    store: StoreConfig | None = None
    checkpointer: CheckpointerConfig | None = None
    http: HttpConfig | None = None
    auth: AuthConfig | None = None
    webhooks: WebhooksConfig | None = None

    @field_validator("graphs", mode="before")
    @classmethod
    def _graph_strings(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: {"path": v} if isinstance(v, str) else v for k, v in value.items()}

    @field_validator("graphs")
    @classmethod
    def _non_empty(cls, value: dict[str, GraphEntry]) -> dict[str, GraphEntry]:
        if not value:
            raise ValueError("at least one graph is required")
        for graph_id, entry in value.items():
            module_ref, _, attr = entry.path.rpartition(":")
            if not module_ref or not attr:
                raise ValueError(
                    f"graph {graph_id!r}: {entry.path!r} must be './path/to/file.py:attr' "
                    "or 'package.module:attr'"
                )
            if module_ref.endswith(_JS_SUFFIXES):
                raise ValueError(
                    f"graph {graph_id!r}: {entry.path!r} is a JavaScript graph; "
                    "Threadline serves Python graphs only"
                )
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env_scalars(cls, value: Any) -> Any:
        """JSON numbers and booleans in an `env` dict become the strings a shell would see."""
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, bool):
                out[key] = "true" if item else "false"
            elif isinstance(item, int | float):
                out[key] = str(item)
            else:
                out[key] = item
        return out


def _format_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def load_langgraph_config(path: Path) -> LanggraphConfig:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file not found: {path} (pass --config path/to/langgraph.json)"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must contain a JSON object, not {type(raw).__name__}")
    if "graphs" not in raw:
        raise ConfigError(
            f"{path} has no 'graphs' section; add one, for example "
            '{"graphs": {"agent": "./agent.py:graph"}}'
        )
    try:
        return LanggraphConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path} is invalid:\n{_format_validation_error(exc)}") from exc


# Sections whose meaning this version cannot honour. Starting anyway would silently serve
# something other than what langgraph.json asks for (an open API instead of custom auth,
# say), so start-up stops instead. Remove an entry when the feature lands.
UNSUPPORTED: list[tuple[str, str]] = [
    ("auth.path", "custom authentication"),
    ("http.app", "custom routes and middleware"),
    ("checkpointer.path", "a custom checkpointer"),
    ("store.index", "semantic search in the store"),
]


def _lookup(config: BaseModel, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def refuse_unsupported(config: LanggraphConfig, path: Path) -> None:
    for dotted, feature in UNSUPPORTED:
        if _lookup(config, dotted) is not None:
            raise ConfigError(
                f"{path}: '{dotted}' ({feature}) is not supported yet in this version of "
                "Threadline; remove it to start without it"
            )


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def resolve_database_uri(uri: str, base_dir: Path) -> str:
    """Normalise a database URI to `sqlite:////absolute/path`, or explain why it is refused.

    `sqlite:///rel` is relative to `base_dir` (the directory of langgraph.json),
    `sqlite:////abs` is absolute, and a plain path is taken relative to the working directory.
    """
    uri = uri.strip()
    scheme, sep, rest = uri.partition("://")
    if not sep:
        if uri.startswith("sqlite:"):
            raise ConfigError(
                f"database URI {uri!r}: write sqlite:///relative/path or sqlite:////absolute/path"
            )
        path = Path(uri).expanduser().resolve()
        return f"sqlite:///{path}"
    scheme = scheme.lower()
    if scheme.startswith(("postgres", "postgresql")):
        raise ConfigError(
            "PostgreSQL is not supported yet in this version of Threadline; "
            "use a SQLite database (the default, or --database-uri sqlite:///path)"
        )
    if scheme not in ("sqlite", "sqlite+aiosqlite"):
        raise ConfigError(
            f"unsupported database URI {uri!r}: expected sqlite:///path, sqlite:////abs/path "
            "or a filesystem path"
        )
    raw = rest.split("?", 1)[0]
    if raw.startswith("/"):
        raw = raw[1:]  # sqlite:///x -> "x" (relative); sqlite:////x -> "/x" (absolute)
    if not raw or raw == ":memory:":
        raise ConfigError(
            f"database URI {uri!r} names no file; Threadline needs an on-disk SQLite database"
        )
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return f"sqlite:///{path.resolve()}"


def _int_setting(value: str | int | None, what: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{what} must be an integer, not {value!r}") from exc


@dataclass
class Settings:
    config_path: Path
    config: LanggraphConfig
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    database_uri: str = ""
    redis_uri: str | None = None
    jobs: int = DEFAULT_JOBS
    # "thread": graph code runs on its own event loop in a worker thread, so blocking
    # user code cannot stall the API; "loop": on the serving loop (lowest overhead).
    graph_isolation: Literal["thread", "loop"] = "thread"
    heartbeat_seconds: float = 5.0
    sse_heartbeat_seconds: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent

    @classmethod
    def build(
        cls,
        config_path: str | os.PathLike[str],
        *,
        host: str | None = None,
        port: int | None = None,
        database_uri: str | None = None,
        redis_uri: str | None = None,
        jobs: int | None = None,
        graph_isolation: str | None = None,
    ) -> Settings:
        path = Path(config_path).expanduser().resolve()
        if path.is_dir():
            path = path / "langgraph.json"
        config = load_langgraph_config(path)
        refuse_unsupported(config, path)
        raw_uri = (
            database_uri or _env("THREADLINE_DATABASE_URI", "DATABASE_URI") or DEFAULT_DATABASE_URI
        )
        redis_uri = redis_uri or _env("THREADLINE_REDIS_URI", "REDIS_URI")
        jobs_int = _int_setting(
            jobs if jobs is not None else _env("THREADLINE_JOBS", "N_JOBS_PER_WORKER"),
            "jobs",
            DEFAULT_JOBS,
        )
        if jobs_int < 0:
            raise ConfigError("jobs must be 0 or more")
        port_int = _int_setting(
            port if port is not None else _env("THREADLINE_PORT"), "port", DEFAULT_PORT
        )
        if not 1 <= port_int <= 65535:
            raise ConfigError(f"port must be between 1 and 65535, not {port_int}")
        isolation = graph_isolation or _env("THREADLINE_GRAPH_ISOLATION") or "thread"
        if isolation not in ("thread", "loop"):
            raise ConfigError(f"graph isolation must be 'thread' or 'loop', not {isolation!r}")
        if redis_uri:
            raise ConfigError(
                "Redis is not supported yet in this version of Threadline; "
                "unset --redis-uri / THREADLINE_REDIS_URI / REDIS_URI to use the embedded "
                "deployment"
            )
        settings = cls(
            config_path=path,
            config=config,
            host=host or _env("THREADLINE_HOST") or DEFAULT_HOST,
            port=port_int,
            database_uri=resolve_database_uri(raw_uri, path.parent),
            redis_uri=redis_uri,
            jobs=jobs_int,
            graph_isolation=isolation,  # type: ignore[arg-type]
        )
        heartbeat = _env("THREADLINE_SSE_HEARTBEAT_SECONDS")
        if heartbeat is not None:
            try:
                settings.sse_heartbeat_seconds = float(heartbeat)
            except ValueError as exc:
                raise ConfigError(
                    f"THREADLINE_SSE_HEARTBEAT_SECONDS must be a number, not {heartbeat!r}"
                ) from exc
        settings.check_backends()
        return settings

    def check_backends(self) -> None:
        """Refuse the backends this version cannot serve, with a message instead of a crash."""
        resolve_database_uri(self.database_uri, self.base_dir)
        if self.redis_uri:
            raise ConfigError(
                "Redis is not supported yet in this version of Threadline; "
                "leave --redis-uri unset for the embedded deployment"
            )

    @property
    def sqlite_path(self) -> Path:
        return Path(
            resolve_database_uri(self.database_uri, self.base_dir).removeprefix("sqlite:///")
        )
