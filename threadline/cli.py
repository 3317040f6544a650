"""The `threadline` command: dev, serve, worker and migrate."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence

from threadline import __version__
from threadline.settings import ConfigError, Settings

ENV_CONFIG = "THREADLINE_CONFIG"


def _add_common(parser: argparse.ArgumentParser, default_port: int | None = 2024) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get(ENV_CONFIG, "langgraph.json"),
        help="path to langgraph.json (env THREADLINE_CONFIG; default ./langgraph.json)",
    )
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=default_port, help="port to bind (default 2024)"
    )
    parser.add_argument(
        "--database-uri",
        default=None,
        help="database URI (env THREADLINE_DATABASE_URI or DATABASE_URI); default: "
        "sqlite:///<config dir>/.threadline/threadline.db",
    )
    parser.add_argument(
        "--redis-uri",
        default=None,
        help="Redis URI for the scale-out deployment (env THREADLINE_REDIS_URI or REDIS_URI)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="runs this process executes at once; 0 = API only "
        "(env THREADLINE_JOBS or N_JOBS_PER_WORKER; default 10)",
    )
    parser.add_argument(
        "--graph-isolation",
        choices=["thread", "loop"],
        default=None,
        help="'thread' (default) runs graph code on its own event loop thread so blocking "
        "code cannot stall the API; 'loop' runs it on the serving loop "
        "(env THREADLINE_GRAPH_ISOLATION)",
    )
    parser.add_argument("--log-level", default="info", help="log level (default info)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threadline",
        description="Threadline: an open-source Agent Server for LangGraph graphs.",
    )
    parser.add_argument("--version", action="version", version=f"threadline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser(
        "dev", help="serve on the embedded SQLite database and reload when graph code changes"
    )
    _add_common(dev)
    dev.add_argument("--no-reload", action="store_true", help="do not watch for code changes")
    serve = commands.add_parser("serve", help="the production entry point: API and workers")
    _add_common(serve)
    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    _add_common(migrate)
    return parser


def _settings_from(args: argparse.Namespace) -> Settings:
    return Settings.build(
        args.config,
        host=args.host,
        port=args.port,
        database_uri=args.database_uri,
        redis_uri=args.redis_uri,
        jobs=args.jobs,
        graph_isolation=args.graph_isolation,
    )


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _export_settings(args: argparse.Namespace, settings: Settings) -> None:
    """The reloader starts fresh processes; they rebuild Settings from these variables."""
    os.environ[ENV_CONFIG] = str(settings.config_path)
    os.environ["THREADLINE_DATABASE_URI"] = settings.database_uri
    os.environ["THREADLINE_JOBS"] = str(settings.jobs)
    os.environ["THREADLINE_GRAPH_ISOLATION"] = settings.graph_isolation
    if settings.redis_uri:
        os.environ["THREADLINE_REDIS_URI"] = settings.redis_uri


def app_from_environment() -> object:
    """ASGI app factory used by `threadline dev` under the reloader."""
    from threadline.app import create_app

    settings = Settings.build(os.environ.get(ENV_CONFIG, "langgraph.json"))
    return create_app(settings)


def _serve(args: argparse.Namespace, settings: Settings, reload: bool) -> int:
    import uvicorn

    from threadline.app import create_app
    from threadline.graphs import GraphRegistry

    if not _port_is_free(settings.host, settings.port):
        print(
            f"threadline: port {settings.port} on {settings.host} is already in use; "
            "stop the other server or choose another --port",
            file=sys.stderr,
        )
        return 1
    graphs = GraphRegistry(settings.config, settings.base_dir)
    graphs.load_all()  # fail fast, with the graph named, before binding the port
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": args.log_level,
        "timeout_graceful_shutdown": 30,
        "access_log": False,
    }
    if reload:
        _export_settings(args, settings)
        uvicorn.run(
            "threadline.cli:app_from_environment",
            factory=True,
            reload=True,
            reload_dirs=[str(settings.base_dir)],
            reload_includes=["*.py", "*.json", ".env"],
            reload_excludes=[".threadline/*"],
            **common,
        )
    else:
        uvicorn.run(create_app(settings, graphs), **common)
    return 0


def _migrate(settings: Settings) -> int:
    import asyncio

    from threadline.storage.sqlite.database import SqliteDatabase

    async def run() -> None:
        db = SqliteDatabase(settings.sqlite_path)
        await db.open()
        await db.close()

    asyncio.run(run())
    print(f"threadline: database at {settings.database_uri} is up to date")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = _settings_from(args)
        if args.command == "migrate":
            return _migrate(settings)
        return _serve(args, settings, reload=args.command == "dev" and not args.no_reload)
    except ConfigError as exc:
        print(f"threadline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
