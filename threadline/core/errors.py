"""The domain's error hierarchy. The HTTP layer maps each class to a status in one place."""

from __future__ import annotations


class ThreadlineError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ThreadlineError):
    """The addressed resource does not exist (404)."""


class Conflict(ThreadlineError):
    """The request conflicts with existing state (409)."""


class InvalidInput(ThreadlineError):
    """The request is well-formed but its values are not acceptable (422)."""


class BadRequest(ThreadlineError):
    """The request cannot be carried out as asked (400)."""


class Unavailable(ThreadlineError):
    """A backing service the request needs is not reachable right now (503)."""
