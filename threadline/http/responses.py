"""JSON responses written with orjson, in the reference's compact form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from threadline.serialization import dumps


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


def pagination_headers(offset: int, limit: int, returned: int, total: int) -> dict[str, str]:
    """`X-Pagination-Total` is the true total (the reference reports offset+limit+1 when
    more pages exist, which is wrong); `X-Pagination-Next` is set when there is more."""
    headers = {"X-Pagination-Total": str(total)}
    if offset + returned < total:
        headers["X-Pagination-Next"] = str(offset + limit)
    return headers
