"""Builds the ASGI application: routes, middleware and the lifespan of the services."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from threadline import __version__
from threadline.core.process import background
from threadline.core.services import Services
from threadline.graphs import GraphRegistry
from threadline.http import assistants, crons, protocol, runs, store, system, threads
from threadline.http.cors import install_cors
from threadline.http.errors import InternalErrorMiddleware, install_error_handlers
from threadline.http.responses import JSONResponse
from threadline.settings import Settings

logger = logging.getLogger("threadline")


def create_app(settings: Settings, graphs: GraphRegistry | None = None) -> FastAPI:
    if graphs is None:
        graphs = GraphRegistry(settings.config, settings.base_dir)
        graphs.load_all()
    services = Services.build(settings, graphs)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with background(services):
            logger.info(
                "Threadline %s serving graphs %s on %s (%d jobs)",
                __version__,
                ", ".join(graphs.graph_ids),
                services.db.name,
                settings.jobs,
            )
            yield

    app = FastAPI(
        title="Threadline",
        version=__version__,
        description="An open-source Agent Server for LangGraph, compatible with the "
        "LangGraph Agent Server API.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    app.state.services = services
    install_error_handlers(app)
    http_config = settings.config.http
    install_cors(app, http_config.cors if http_config else None)
    app.add_middleware(InternalErrorMiddleware)
    app.include_router(system.router)
    app.include_router(assistants.router)
    app.include_router(threads.router)
    app.include_router(protocol.router)
    app.include_router(crons.router)
    app.include_router(runs.router)
    app.include_router(runs.stateless)
    if not (http_config and http_config.disable_store):
        app.include_router(store.router)
    return app
