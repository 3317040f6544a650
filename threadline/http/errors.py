"""Every error becomes an HTTP answer here, and nowhere else."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.core import errors
from threadline.http.responses import json_response
from threadline.storage.database import DatabaseUnavailable

logger = logging.getLogger("threadline.http")

STATUS_BY_ERROR: dict[type[errors.ThreadlineError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidInput: 422,
    errors.BadRequest: 400,
    errors.Unavailable: 503,
}


def status_for(exc: errors.ThreadlineError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def describe_validation_error(exc: RequestValidationError) -> str:
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return "Invalid JSON in request body"
    if any(p.get("type") == "missing" and tuple(p.get("loc", ())) == ("body",) for p in problems):
        return "Invalid JSON in request body"
    messages = []
    for problem in problems:
        loc = [str(part) for part in problem.get("loc", ()) if part != "body"]
        if problem.get("type") == "missing" and loc:
            messages.append(f"'{loc[-1]}' is a required property" + _where(loc[:-1]))
        else:
            field = ".".join(loc) or "body"
            messages.append(f"{field}: {problem.get('msg', 'invalid value')}")
    return "; ".join(messages) or "Invalid request"


def _where(loc: list[str]) -> str:
    return f" (in {'.'.join(loc)})" if loc else ""


async def _domain_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, errors.ThreadlineError)
    return json_response({"detail": exc.detail}, status_code=status_for(exc))


async def _validation_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, RequestValidationError)
    return json_response({"detail": describe_validation_error(exc)}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, HTTPException)
    return json_response({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _database_unavailable(request: Request, exc: Exception) -> Any:
    # The outage itself is logged once by the database layer, not once per request.
    logger.debug("%s %s: %s", request.method, request.url.path, exc)
    return json_response({"detail": str(exc)}, status_code=503)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(errors.ThreadlineError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


class InternalErrorMiddleware:
    """Answers an unexpected exception with a JSON 500 and keeps the connection usable.

    Starlette's own handler re-raises after responding, which makes the server drop the
    keep-alive connection; the reference does the same and clients then fail their next
    request on that socket.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = json_response({"detail": "Internal Server Error"}, status_code=500)
            await response(scope, receive, send)
