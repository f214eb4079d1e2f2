"""The one client-error type of the server: it becomes a JSON ``{"error": ...}`` response
(the shape of both docs/DESIGN.md, "Serving API" and the Open Inference Protocol's errors)."""

from __future__ import annotations

from http import HTTPStatus


class RequestError(Exception):
    """A client error; ``close`` asks to close the connection after the answer."""

    def __init__(self, status: HTTPStatus, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


def bad_request(message: str) -> RequestError:
    return RequestError(HTTPStatus.BAD_REQUEST, message)


def too_large(message: str) -> RequestError:
    return RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, message)
