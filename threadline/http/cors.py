"""CORS from `http.cors` in langgraph.json, with Private Network Access on preflight."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.settings import CorsConfig

ALWAYS_EXPOSED = ["Location", "Content-Location", "X-Pagination-Total", "X-Pagination-Next"]


class PrivateNetworkAccessMiddleware:
    """Browsers ask before a public page may call a server on a private address (Studio
    does); answering yes on the preflight is what lets them connect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        asked = any(
            name == b"access-control-request-private-network" for name, _ in scope["headers"]
        )

        async def send_with_pna(message: Message) -> None:
            if asked and message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-private-network", b"true"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_pna)


def install_cors(app: FastAPI, cors: CorsConfig | None) -> None:
    cors = cors or CorsConfig(allow_origins=["*"])
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors.allow_origins,
        allow_methods=cors.allow_methods,
        allow_headers=cors.allow_headers,
        allow_credentials=cors.allow_credentials,
        allow_origin_regex=cors.allow_origin_regex,
        expose_headers=sorted({*ALWAYS_EXPOSED, *cors.expose_headers}),
        max_age=cors.max_age,
    )
    app.add_middleware(PrivateNetworkAccessMiddleware)
