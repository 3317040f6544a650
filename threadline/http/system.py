"""Health, info and metrics."""

from __future__ import annotations

import langgraph.version
from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from threadline import __version__
from threadline.core.errors import InvalidInput, Unavailable
from threadline.http.responses import JSONResponse, json_response

router = APIRouter(tags=["System"])


@router.get("/ok", response_class=JSONResponse)
@router.get("/", response_class=JSONResponse, include_in_schema=False)
async def ok(request: Request, check_db: int = 0) -> JSONResponse:
    services = request.app.state.services
    try:
        await services.db.healthcheck()
    except Exception as exc:
        raise Unavailable(f"database unavailable: {exc}") from exc
    worker = getattr(services, "worker", None)
    workers = worker.health() if worker is not None else None
    if workers is not None and not workers["healthy"]:
        raise Unavailable("the run workers of this process have stopped")
    return json_response(
        {"ok": True, "services": {"database": services.db.name, "workers": workers}}
    )


@router.get("/info", response_class=JSONResponse)
async def info() -> JSONResponse:
    return json_response(
        {
            "version": __version__,
            "langgraph_py_version": langgraph.version.__version__,
            "server": "threadline",
            "flags": {
                "assistants": True,
                "crons": True,
                "langsmith": False,
                "langsmith_tracing_replicas": False,
                "langsmith_tracing_session_on_runs": False,
            },
            "host": {
                "kind": "self-hosted",
                "project_id": None,
                "host_revision_id": None,
                "revision_id": None,
                "tenant_id": None,
            },
        }
    )


@router.get("/metrics")
async def metrics(request: Request, format: str = "prometheus") -> Response:
    """Queue and worker gauges, as Prometheus text (default) or JSON."""
    services = request.app.state.services
    counts = await services.runs.count_by_status()
    worker = getattr(services, "worker", None)
    workers = worker.health() if worker is not None else {"max": 0, "active": 0, "available": 0}
    queue = {"n_pending": counts.get("pending", 0), "n_running": counts.get("running", 0)}
    if format == "json":
        return json_response({"queue": queue, "workers": workers})
    if format != "prometheus":
        raise InvalidInput("format must be 'prometheus' or 'json'")
    lines = [
        "# HELP threadline_runs_pending Runs waiting in the queue.",
        "# TYPE threadline_runs_pending gauge",
        f"threadline_runs_pending {queue['n_pending']}",
        "# HELP threadline_runs_running Runs executing now, across all processes.",
        "# TYPE threadline_runs_running gauge",
        f"threadline_runs_running {queue['n_running']}",
        "# HELP threadline_workers_max Runs this process may execute at once.",
        "# TYPE threadline_workers_max gauge",
        f"threadline_workers_max {workers['max']}",
        "# HELP threadline_workers_active Runs this process is executing.",
        "# TYPE threadline_workers_active gauge",
        f"threadline_workers_active {workers['active']}",
    ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
