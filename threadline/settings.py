"""One Settings object: command-line options and environment variables plus langgraph.json.

Precedence, for every setting: the command-line option, then THREADLINE_<NAME>, then the
variable the reference server reads (DATABASE_URI, REDIS_URI, N_JOBS_PER_WORKER), then
the default.

Database URIs:
  sqlite:///relative/path.db   relative to the directory of langgraph.json
  sqlite:////absolute/path.db  an absolute path
  /absolute/path.db, ./x.db    a plain filesystem path (relative to the working directory)
  postgresql://user:pass@host:5432/dbname   PostgreSQL (the scale-out deployment)
The default is sqlite:///.threadline/threadline.db, next to langgraph.json.
A Redis URI (redis://host:6379/0) goes with PostgreSQL only.
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
DEFAULT_DB_POOL_SIZE = 10
DEFAULT_HEARTBEAT_SECONDS = 5.0
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_SHUTDOWN_GRACE_SECONDS = 30.0
_POSTGRES_SCHEMES = ("postgres", "postgresql")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


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


# Prefixes of LangChain's `init_embeddings` provider strings ("openai:text-embedding-3-small").
_EMBEDDING_PROVIDERS = frozenset(
    {
        "azure_openai",
        "azure_ai",
        "bedrock",
        "cohere",
        "fireworks",
        "google_genai",
        "google_vertexai",
        "huggingface",
        "mistralai",
        "nomic",
        "ollama",
        "openai",
        "together",
        "voyageai",
    }
)


def _check_embed(value: str) -> str:
    """`store.index.embed` must name a function: './file.py:attr' or 'package.module:attr'.

    Provider strings ('openai:text-embedding-3-small') would need network access and a
    provider package at every put and search; they are refused with a pointer instead."""
    module_ref, sep, attr = value.rpartition(":")
    is_file = module_ref.endswith(".py") or "/" in module_ref
    is_module = all(part.isidentifier() for part in module_ref.split("."))
    if (
        sep
        and attr.isidentifier()
        and (is_file or (is_module and module_ref not in _EMBEDDING_PROVIDERS))
    ):
        return value
    if sep and module_ref and attr and not is_file:
        raise ValueError(
            f"{value!r} looks like an embedding provider string; Threadline does not call "
            "embedding providers (they need network access and a provider package). Point "
            "embed at a function instead, './embeddings.py:embed' or 'package.module:embed', "
            "taking a list of texts and returning a list of vectors of `dims` floats "
            "(it may call the provider itself)"
        )
    raise ValueError(
        f"{value!r} must look like './path/to/file.py:function' or 'package.module:function'"
    )


class StoreIndexConfig(_Section):
    embed: str = Field(min_length=1)
    dims: int = Field(gt=0)
    fields: list[str] | None = None

    @field_validator("embed")
    @classmethod
    def _embed_path(cls, value: str) -> str:
        return _check_embed(value)


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
    """Normalise a database URI to `sqlite:////absolute/path` or `postgresql://...`, or
    explain why it is refused.

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
    if scheme in _POSTGRES_SCHEMES:
        return f"postgresql://{rest}"
    if scheme not in ("sqlite", "sqlite+aiosqlite"):
        raise ConfigError(
            f"unsupported database URI {uri!r}: expected postgresql://..., sqlite:///path, "
            "sqlite:////abs/path or a filesystem path"
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


def postgres_database_name(uri: str) -> str:
    """The database a postgresql:// URI names (libpq's default: the user name)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(uri)
    except Exception as exc:  # psycopg.ProgrammingError: not a valid URI
        raise ConfigError(f"invalid PostgreSQL URI: {exc}") from exc
    name = params.get("dbname") or params.get("user") or os.environ.get("PGDATABASE")
    return str(name or os.environ.get("PGUSER") or os.environ.get("USER") or "postgres")


def _float_setting(name: str, default: float, *, minimum: float | None = None) -> float:
    """A number of seconds from the environment variable `name`; positive unless
    `minimum` says otherwise."""
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, not {raw!r}")
    if minimum is None and value <= 0:
        raise ConfigError(f"{name} must be more than 0, not {raw!r}")
    return value


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
    # Liveness of runs: a worker renews the lease of each of its runs every
    # heartbeat_seconds; a run whose lease has lapsed is re-queued by any process, up to
    # max_attempts claims. On SIGTERM a worker lets its runs finish for
    # shutdown_grace_seconds, then puts the rest back in the queue.
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    sse_heartbeat_seconds: float = 5.0
    # connections per pool (PostgreSQL): the API's, and the graph loop's checkpointer's
    db_pool_size: int = DEFAULT_DB_POOL_SIZE
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent

    @property
    def backend(self) -> Literal["sqlite", "postgres"]:
        return "postgres" if self.database_uri.startswith("postgresql://") else "sqlite"

    @property
    def redis_prefix(self) -> str:
        """Namespace of this deployment in Redis (`threadline:<database name>`; the broker
        adds `:<kind>:<name>`) and of its broker's channels: processes sharing a database
        share their streams and signals, deployments on other databases never meet."""
        if self.backend != "postgres":
            return "threadline"
        return f"threadline:{postgres_database_name(self.database_uri)}"

    @property
    def database_label(self) -> str:
        """The database, for people: a file path, or the URI without its password."""
        if self.backend != "postgres":
            return str(self.sqlite_path)
        scheme, _, rest = self.database_uri.partition("://")
        credentials, at, host = rest.rpartition("@")
        if at and ":" in credentials:
            credentials = credentials.split(":", 1)[0] + ":***"
        return f"{scheme}://{credentials}{at}{host}"

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
        settings = cls(
            config_path=path,
            config=config,
            host=host or _env("THREADLINE_HOST") or DEFAULT_HOST,
            port=port_int,
            database_uri=resolve_database_uri(raw_uri, path.parent),
            redis_uri=redis_uri,
            jobs=jobs_int,
            graph_isolation=isolation,  # type: ignore[arg-type]
            db_pool_size=_int_setting(
                _env("THREADLINE_DB_POOL_SIZE"), "THREADLINE_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE
            ),
        )
        heartbeat = _env("THREADLINE_SSE_HEARTBEAT_SECONDS")
        if heartbeat is not None:
            try:
                settings.sse_heartbeat_seconds = float(heartbeat)
            except ValueError as exc:
                raise ConfigError(
                    f"THREADLINE_SSE_HEARTBEAT_SECONDS must be a number, not {heartbeat!r}"
                ) from exc
        settings.heartbeat_seconds = _float_setting(
            "THREADLINE_HEARTBEAT_SECONDS", settings.heartbeat_seconds
        )
        settings.lease_seconds = _float_setting("THREADLINE_LEASE_SECONDS", settings.lease_seconds)
        settings.shutdown_grace_seconds = _float_setting(
            "THREADLINE_SHUTDOWN_GRACE_SECONDS", settings.shutdown_grace_seconds, minimum=0.0
        )
        settings.max_attempts = _int_setting(
            _env("THREADLINE_MAX_ATTEMPTS"), "THREADLINE_MAX_ATTEMPTS", settings.max_attempts
        )
        if settings.max_attempts < 1:
            raise ConfigError("THREADLINE_MAX_ATTEMPTS must be 1 or more")
        if settings.heartbeat_seconds >= settings.lease_seconds:
            raise ConfigError(
                "THREADLINE_HEARTBEAT_SECONDS must be shorter than THREADLINE_LEASE_SECONDS "
                f"({settings.heartbeat_seconds:g} >= {settings.lease_seconds:g})"
            )
        settings.check_backends()
        return settings

    def check_backends(self) -> None:
        """Refuse the backends this version cannot serve, with a message instead of a crash."""
        uri = resolve_database_uri(self.database_uri, self.base_dir)
        if self.db_pool_size < 1:
            raise ConfigError("THREADLINE_DB_POOL_SIZE must be 1 or more")
        if uri.startswith("postgresql://"):
            postgres_database_name(uri)
        if not self.redis_uri:
            return
        scheme = self.redis_uri.partition("://")[0].lower()
        if scheme not in _REDIS_SCHEMES:
            raise ConfigError(
                f"unsupported Redis URI {self.redis_uri!r}: expected redis://host:port/db, "
                "rediss://... or unix:///path"
            )
        if not uri.startswith("postgresql://"):
            raise ConfigError(
                "Redis goes with the PostgreSQL deployment only: set --database-uri "
                "postgresql://... as well, or unset --redis-uri / THREADLINE_REDIS_URI / "
                "REDIS_URI to use the embedded SQLite deployment"
            )

    @property
    def sqlite_path(self) -> Path:
        if self.backend == "postgres":
            raise ConfigError("the database is PostgreSQL, not a SQLite file")
        return Path(
            resolve_database_uri(self.database_uri, self.base_dir).removeprefix("sqlite:///")
        )
