"""A JSON response whose body is computed while the request stays open (wait and join)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from threadline.serialization import dumps


class DeferredJSONResponse(Response):
    """Sends the headers now and the JSON of `body` once it is ready.

    Like the reference, the body goes out with chunked transfer, so the status is 200
    whatever the outcome; a client that disconnects first triggers `on_disconnect`.
    """

    def __init__(
        self,
        body: Awaitable[Any],
        *,
        headers: Mapping[str, str] | None = None,
        on_disconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(status_code=200)
        self.pending = body
        self.extra_headers = {"content-type": "application/json", **(headers or {})}
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(k.encode(), v.encode()) for k, v in self.extra_headers.items()],
            }
        )
        work = asyncio.ensure_future(self.pending)
        watch = asyncio.create_task(_disconnected(receive))
        done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        watch.cancel()
        if work in done:
            try:
                result = work.result()
            except Exception as exc:  # the status line is gone already; say it in the body
                result = {"__error__": {"error": type(exc).__name__, "message": str(exc)}}
            await send({"type": "http.response.body", "body": dumps(result)})
            return
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        if self.on_disconnect is not None:
            await self.on_disconnect()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
