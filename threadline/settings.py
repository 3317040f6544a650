"""One Settings object: command-line options and environment variables plus langgraph.json."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(Exception):
    """langgraph.json or a setting is invalid; start-up stops with this message."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")


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


class StoreIndexConfig(_Section):
    embed: str
    dims: int
    fields: list[str] | None = None


class StoreTTLConfig(_Section):
    refresh_on_read: bool = True
    default_ttl: float | None = None
    sweep_interval_minutes: int | None = None


class StoreConfig(_Section):
    index: StoreIndexConfig | None = None
    ttl: StoreTTLConfig | None = None


class CheckpointerTTLConfig(_Section):
    strategy: Literal["delete"] = "delete"
    sweep_interval_minutes: int | None = None
    default_ttl: float | None = None


class CheckpointerConfig(_Section):
    path: str | None = None
    ttl: CheckpointerTTLConfig | None = None


class AuthConfig(_Section):
    path: str | None = None
    disable_studio_auth: bool = False
    openapi: dict[str, Any] | None = None


class WebhookUrlPolicy(_Section):
    require_https: bool = False
    allowed_domains: list[str] | None = None
    allowed_ports: list[int] | None = None
    max_url_length: int = 4096
    disable_loopback: bool = True
    disable_private_ips: bool = True


class WebhooksConfig(_Section):
    env_prefix: str | None = None
    url: WebhookUrlPolicy | None = None
    headers: dict[str, str] | None = None


class GraphEntry(BaseModel):
    path: str
    description: str | None = None


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
            if ":" not in entry.path:
                raise ValueError(
                    f"graph {graph_id!r}: {entry.path!r} must be 'path/to/file.py:attr' "
                    "or 'package.module:attr'"
                )
        return value


def load_langgraph_config(path: Path) -> LanggraphConfig:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    try:
        return LanggraphConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path} is invalid:\n{exc}") from exc


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


@dataclass
class Settings:
    config_path: Path
    config: LanggraphConfig
    host: str = "127.0.0.1"
    port: int = 2024
    database_uri: str = ""
    redis_uri: str | None = None
    jobs: int = 10
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
        path = Path(config_path).resolve()
        config = load_langgraph_config(path)
        database_uri = (
            database_uri
            or _env("THREADLINE_DATABASE_URI", "DATABASE_URI")
            or f"sqlite:///{path.parent / '.threadline' / 'threadline.db'}"
        )
        redis_uri = redis_uri or _env("THREADLINE_REDIS_URI", "REDIS_URI")
        jobs_value = jobs if jobs is not None else _env("THREADLINE_JOBS", "N_JOBS_PER_WORKER")
        isolation = graph_isolation or _env("THREADLINE_GRAPH_ISOLATION") or "thread"
        if isolation not in ("thread", "loop"):
            raise ConfigError(f"graph isolation must be 'thread' or 'loop', not {isolation!r}")
        try:
            jobs_int = int(jobs_value) if jobs_value is not None else 10
        except ValueError as exc:
            raise ConfigError(f"jobs must be an integer, not {jobs_value!r}") from exc
        if jobs_int < 0:
            raise ConfigError("jobs must be 0 or more")
        settings = cls(
            config_path=path,
            config=config,
            host=host or "127.0.0.1",
            port=port if port is not None else 2024,
            database_uri=database_uri,
            redis_uri=redis_uri,
            jobs=jobs_int,
            graph_isolation=isolation,  # type: ignore[arg-type]
        )
        settings.check_backends()
        return settings

    def check_backends(self) -> None:
        if self.database_uri.startswith(("postgres://", "postgresql://")):
            raise ConfigError(
                "PostgreSQL is not supported yet in this version of Threadline; "
                "use a sqlite:/// database URI (the default)"
            )
        if not self.database_uri.startswith("sqlite:"):
            raise ConfigError(
                f"unsupported database URI {self.database_uri!r}: expected sqlite:///path"
            )
        if self.redis_uri:
            raise ConfigError(
                "Redis is not supported yet in this version of Threadline; "
                "leave --redis-uri unset for the embedded deployment"
            )

    @property
    def sqlite_path(self) -> Path:
        raw = self.database_uri.removeprefix("sqlite:///").removeprefix("sqlite://")
        path = Path(raw)
        if not path.is_absolute():
            path = self.base_dir / path
        return path
