"""The `threadline` command: dev, serve, worker and migrate.

Exit codes: 0 success, 1 the server could not start (port busy), 2 invalid configuration
(langgraph.json, a graph that does not load, an unsupported database or Redis URI).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from threadline import __version__
from threadline.broker.base import Broker
from threadline.settings import (
    DATA_DIR,
    DEFAULT_DATABASE_URI,
    DEFAULT_HOST,
    DEFAULT_JOBS,
    DEFAULT_PORT,
    ConfigError,
    Settings,
)

ENV_CONFIG = "THREADLINE_CONFIG"
ENV_LOG_LEVEL = "THREADLINE_LOG_LEVEL"
LOG_LEVELS = ["critical", "error", "warning", "info", "debug"]

EPILOG = f"""\
database URIs:
  sqlite:///relative/path.db   relative to the folder of langgraph.json
  sqlite:////absolute/path.db  an absolute path
  /path/to/file.db, ./file.db  a plain filesystem path (relative to the working directory)
  default: {DEFAULT_DATABASE_URI} next to langgraph.json
  postgresql://user:password@host:5432/dbname   the scale-out deployment, with
    --redis-uri redis://host:6379/0 (optional; PostgreSQL only) for events and signals;
    THREADLINE_DB_POOL_SIZE connections per pool (default 10)

Every option can also be set with the environment variable shown in its help; an option
given on the command line wins.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=96)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get(ENV_CONFIG) or "langgraph.json",
        metavar="PATH",
        help="path to langgraph.json, or its folder [env THREADLINE_CONFIG] "
        "(default: ./langgraph.json)",
    )


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-uri",
        default=None,
        metavar="URI",
        help="where threads, runs and checkpoints are stored: sqlite:///relative/to/config/dir, "
        "sqlite:////absolute/path, a plain file path or postgresql://user:pass@host/db "
        "[env THREADLINE_DATABASE_URI or "
        f"DATABASE_URI] (default: {DEFAULT_DATABASE_URI} next to langgraph.json)",
    )


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=(os.environ.get(ENV_LOG_LEVEL) or "info").lower(),
        choices=LOG_LEVELS,
        type=str.lower,
        help="log level [env THREADLINE_LOG_LEVEL] (default: info)",
    )


def _add_server(parser: argparse.ArgumentParser) -> None:
    _add_config(parser)
    parser.add_argument(
        "--host",
        default=None,
        help=f"address to listen on [env THREADLINE_HOST] (default: {DEFAULT_HOST})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to listen on; if it is busy the command stops, it never picks another "
        f"[env THREADLINE_PORT] (default: {DEFAULT_PORT})",
    )
    _add_database(parser)
    parser.add_argument(
        "--redis-uri",
        default=None,
        metavar="URI",
        help="Redis for the scale-out deployment, with a postgresql:// database "
        "[env THREADLINE_REDIS_URI or REDIS_URI]",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="runs this process executes at once; 0 = serve the API only "
        f"[env THREADLINE_JOBS or N_JOBS_PER_WORKER] (default: {DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--graph-isolation",
        choices=["thread", "loop"],
        default=None,
        help="'thread' runs graph code on an event loop of its own in a separate thread, so "
        "blocking code in a graph cannot stall the API; 'loop' runs it on the serving loop "
        "[env THREADLINE_GRAPH_ISOLATION] (default: thread)",
    )
    _add_log_level(parser)


def _add_worker(parser: argparse.ArgumentParser) -> None:
    _add_config(parser)
    _add_database(parser)
    parser.add_argument(
        "--redis-uri",
        default=None,
        metavar="URI",
        help="Redis of the deployment, if it has one [env THREADLINE_REDIS_URI or REDIS_URI]",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="runs this process executes at once "
        f"[env THREADLINE_JOBS or N_JOBS_PER_WORKER] (default: {DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--graph-isolation",
        choices=["thread", "loop"],
        default=None,
        help="see `threadline serve --help` [env THREADLINE_GRAPH_ISOLATION] (default: thread)",
    )
    _add_log_level(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threadline",
        description="Threadline: an open-source, self-hostable Agent Server for LangGraph "
        "graphs, compatible with the LangGraph Agent Server API and langgraph_sdk.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"threadline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = commands.add_parser(
        "dev",
        help="develop: serve the graphs and restart when their code changes",
        description="Serve the graphs of langgraph.json on the embedded SQLite database and "
        "restart the server when a .py or .json file (or .env) next to langgraph.json, or in "
        "a local dependency, changes. Threads, runs and checkpoints survive restarts.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    _add_server(dev)
    dev.add_argument("--no-reload", action="store_true", help="do not watch for code changes")
    serve = commands.add_parser(
        "serve",
        help="production: serve the API and execute runs",
        description="Serve the API and execute runs (the production entry point).",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    _add_server(serve)
    worker = commands.add_parser(
        "worker",
        help="production: execute runs only (no HTTP), beside `serve` processes",
        description="Execute runs from the shared queue without serving HTTP: scale run "
        "execution apart from the API (`threadline serve --jobs 0` serves the API only). "
        "Needs the scale-out deployment: a postgresql:// database, with or without Redis. "
        "On SIGTERM or SIGINT it stops claiming, lets running runs finish for "
        "THREADLINE_SHUTDOWN_GRACE_SECONDS (default 30), and puts the rest back in the queue.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    _add_worker(worker)
    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the database schema, then exit",
        description="Create or upgrade the database schema (servers also do this at start).",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    _add_config(migrate)
    _add_database(migrate)
    _add_log_level(migrate)
    return parser


def _settings_from(args: argparse.Namespace) -> Settings:
    return Settings.build(
        args.config,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        database_uri=args.database_uri,
        redis_uri=getattr(args, "redis_uri", None),
        jobs=getattr(args, "jobs", None),
        graph_isolation=getattr(args, "graph_isolation", None),
    )


def _port_is_free(host: str, port: int) -> bool:
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return True  # let the server report the bad host
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError:
                return False
    return True


def _prepare_data_dir(settings: Settings) -> None:
    """Create the database folder; the default `.threadline/` ignores itself in git."""
    if settings.backend != "sqlite":
        return
    folder = settings.sqlite_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    if folder.name == DATA_DIR:
        ignore = folder / ".gitignore"
        if not ignore.exists():
            with contextlib.suppress(OSError):
                ignore.write_text("# Threadline's local data\n*\n")


@contextlib.contextmanager
def _environment_restored() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _export_settings(args: argparse.Namespace, settings: Settings) -> None:
    """The reloader starts fresh processes; they rebuild Settings from these variables."""
    os.environ[ENV_CONFIG] = str(settings.config_path)
    os.environ["THREADLINE_HOST"] = settings.host
    os.environ["THREADLINE_PORT"] = str(settings.port)
    os.environ["THREADLINE_DATABASE_URI"] = settings.database_uri
    if settings.redis_uri:
        os.environ["THREADLINE_REDIS_URI"] = settings.redis_uri
    os.environ["THREADLINE_JOBS"] = str(settings.jobs)
    os.environ["THREADLINE_GRAPH_ISOLATION"] = settings.graph_isolation
    os.environ[ENV_LOG_LEVEL] = args.log_level


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def app_from_environment() -> object:
    """ASGI app factory `threadline dev` runs under the reloader, in a fresh process each time."""
    from threadline.app import create_app

    _configure_logging(os.environ.get(ENV_LOG_LEVEL) or "info")
    try:
        settings = Settings.build(os.environ.get(ENV_CONFIG) or "langgraph.json")
        return create_app(settings)
    except ConfigError as exc:
        print(f"threadline: {exc}\nthreadline: waiting for a change to reload", file=sys.stderr)
        sys.stderr.flush()
        sys.exit(2)


def _watch_dirs(settings: Settings) -> list[str]:
    """The folder of langgraph.json plus local dependencies and graph files outside it."""
    base = settings.base_dir
    dirs = {base}
    config = settings.config
    candidates = [base / dep for dep in config.dependencies if dep.startswith((".", "/"))]
    for entry in config.graphs.values():
        module_ref = entry.path.rpartition(":")[0]
        if module_ref.endswith(".py") or "/" in module_ref:
            candidates.append((base / module_ref).parent)
    for path in candidates:
        path = path.resolve()
        if path.is_dir() and not any(d == path or d in path.parents for d in dirs):
            dirs.add(path)
    return sorted(str(d) for d in dirs)


def _watch_excludes(dirs: list[str]) -> list[str]:
    names = [DATA_DIR, ".venv", "venv", ".git", "node_modules", "__pycache__", ".mypy_cache"]
    return [str(Path(d) / name) for d in dirs for name in names if (Path(d) / name).is_dir()]


def _banner(command: str, settings: Settings) -> None:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(
        f"threadline {command}: graphs {', '.join(settings.config.graphs)} "
        f"from {settings.config_path}\n"
        f"  API:      http://{host}:{settings.port}\n"
        f"  database: {settings.database_label}",
        file=sys.stderr,
        flush=True,
    )


class _Server(uvicorn.Server):
    """Ends open event streams as soon as shutdown starts, so they do not hold it up, and
    stops claiming runs at once (the running ones get their grace period afterwards)."""

    def __init__(self, config: uvicorn.Config, broker: Broker, services: Any = None) -> None:
        super().__init__(config)
        self.broker = broker
        self.services = services

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        worker = getattr(self.services, "worker", None)
        if worker is not None:
            worker.stop_claiming()
        await self.broker.end_subscriptions()
        await super().shutdown(sockets)


def _serve(args: argparse.Namespace, settings: Settings, reload: bool) -> int:
    from threadline.app import create_app
    from threadline.graphs import GraphRegistry

    # Fail fast, with the graph named, before binding the port. Under the reloader the
    # served processes import the graphs again, so the environment `env` set is rolled back.
    graphs = GraphRegistry(settings.config, settings.base_dir)
    with _environment_restored() if reload else contextlib.nullcontext():
        graphs.load_all()
    if not _port_is_free(settings.host, settings.port):
        print(
            f"threadline: port {settings.port} on {settings.host} is already in use; "
            "stop the other server or choose another --port",
            file=sys.stderr,
        )
        return 1
    _prepare_data_dir(settings)
    _banner(args.command, settings)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": args.log_level,
        # Open SSE streams (a UI following a thread) hold graceful shutdown until this
        # runs out; a reload should not wait for them. Runs are not HTTP requests: the
        # worker stops afterwards and interrupted runs are recovered at the next start.
        "timeout_graceful_shutdown": 1 if reload else 10,
        "access_log": False,
    }
    if reload:
        _export_settings(args, settings)
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        dirs = _watch_dirs(settings)
        uvicorn.run(
            "threadline.cli:app_from_environment",
            factory=True,
            reload=True,
            reload_dirs=dirs,
            reload_includes=["*.py", "*.json", ".env", "*.env"],
            reload_excludes=_watch_excludes(dirs),
            **common,
        )
    else:
        app = create_app(settings, graphs)
        services = app.state.services
        server = _Server(uvicorn.Config(app, **common), services.broker, services)
        server.run()
    return 0


def _migrate(settings: Settings) -> int:
    import asyncio
    import sqlite3

    import psycopg

    from threadline.storage.database import DatabaseUnavailable

    async def run() -> None:
        from threadline.core.services import Services
        from threadline.graphs import GraphRegistry

        # Opening the services migrates our tables and sets up LangGraph's checkpoint
        # and store tables; no graph is imported.
        services = Services.build(settings, GraphRegistry(settings.config, settings.base_dir))
        await services.start()
        await services.stop()

    _prepare_data_dir(settings)
    try:
        asyncio.run(run())
    except (
        OSError,
        sqlite3.OperationalError,
        psycopg.OperationalError,
        DatabaseUnavailable,
    ) as exc:
        print(f"threadline: cannot migrate {settings.database_label}: {exc}", file=sys.stderr)
        return 1
    print(f"threadline: database {settings.database_label} is up to date")
    return 0


def _work(settings: Settings) -> int:
    """`threadline worker`: the background parts of a server (core/process.py), no HTTP."""
    import asyncio
    import signal

    from threadline.core.process import background
    from threadline.core.services import Services
    from threadline.graphs import GraphRegistry

    if settings.backend != "postgres":
        raise ConfigError(
            "threadline worker runs beside other processes on a shared database: set "
            "--database-uri postgresql://... (the embedded SQLite deployment is one "
            "`threadline serve` process)"
        )
    if settings.jobs < 1:
        raise ConfigError("threadline worker needs --jobs 1 or more")
    graphs = GraphRegistry(settings.config, settings.base_dir)
    graphs.load_all()
    logger = logging.getLogger("threadline")

    async def run() -> None:
        services = Services.build(settings, graphs)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with background(services) as worker:
            logger.info(
                "Threadline %s worker %s: graphs %s on %s (%d jobs)",
                __version__,
                worker.worker_id,
                ", ".join(graphs.graph_ids),
                settings.database_label,
                settings.jobs,
            )
            await stop.wait()
            logger.info(
                "stopping: no new runs; running ones get %gs", settings.shutdown_grace_seconds
            )
        logger.info("worker stopped")

    print(
        f"threadline worker: graphs {', '.join(settings.config.graphs)} "
        f"from {settings.config_path}\n  database: {settings.database_label}",
        file=sys.stderr,
        flush=True,
    )
    asyncio.run(run())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "dev" and not os.environ.get("THREADLINE_SHUTDOWN_GRACE_SECONDS"):
        # a code change should not wait for runs: they are put back in the queue and go
        # on, from their last checkpoint, in the reloaded server
        os.environ["THREADLINE_SHUTDOWN_GRACE_SECONDS"] = "0"
    try:
        settings = _settings_from(args)
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "worker":
            return _work(settings)
        return _serve(args, settings, reload=args.command == "dev" and not args.no_reload)
    except ConfigError as exc:
        print(f"threadline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
