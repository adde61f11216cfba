"""Errors as ``application/problem+json`` (RFC 9457), with the command line's messages.

Every :class:`~flagmw.errors.FlagmwError` maps to a status and the one-line message the
CLI prints after ``flagmw: error:``; validation problems come back as a list of located
problems (``location``, ``path``, ``message``, ``hint``, ``code``, ``severity``).

========================================  ======
error                                     status
========================================  ======
bad request body or query (wrong types)   422
``ValidationError`` (flag values, docs)   422
``OverrideError``, ``TokenError``         422
``UnknownFlagError``, ``NotFoundError``   404
``ConflictError`` (stale parent rev)      409
``StoreUnavailableError``                 503
no or bad token / session                 401
role does not allow it, CSRF failure      403
body over the size limit                  413
========================================  ======
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flagmw.cli.errors import one_line, summary_line
from flagmw.errors import (
    ConflictError,
    FlagmwError,
    NotFoundError,
    Problem,
    StoreUnavailableError,
    UnknownFlagError,
    ValidationError,
)

__all__ = ["ApiProblem", "install_handlers", "problem_response"]

MEDIA_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Unprocessable content",
    503: "Store unavailable",
}


class ApiProblem(Exception):
    """An error the console reports itself (authentication, roles, CSRF, limits)."""

    def __init__(self, status: int, detail: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problems = tuple(problems)


def problem_response(
    status: int, detail: str, problems: Sequence[Problem] = (), **extra: Any
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": one_line(detail),
    }
    if problems:
        body["problems"] = [p.to_dict() for p in problems]
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="flagmw"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def status_of(exc: FlagmwError) -> int:
    """The HTTP status of a flagmw error."""
    if isinstance(exc, UnknownFlagError | NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, StoreUnavailableError):
        return 503
    return 422


def flagmw_problem(exc: FlagmwError) -> JSONResponse:
    """The problem response of a flagmw error (the CLI's message)."""
    if isinstance(exc, ValidationError):
        return problem_response(422, summary_line(exc.problems, exc.source), exc.problems)
    extra: dict[str, Any] = {}
    if isinstance(exc, ConflictError):
        extra = {"expected_parent": exc.expected_parent, "head_rev": exc.actual_head}
    return problem_response(status_of(exc), str(exc), **extra)


def _request_problems(exc: RequestValidationError) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else "request"
        out.append(
            Problem(where, ".".join(loc[1:]), str(err.get("msg", "invalid")), code="bad_request")
        )
    return out


def install_handlers(app: Any) -> None:
    """Register the handlers that turn every error into problem+json."""

    async def on_flagmw(request: Request, exc: FlagmwError) -> JSONResponse:
        return flagmw_problem(exc)

    async def on_api(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, exc.problems)

    async def on_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _request_problems(exc)
        return problem_response(
            422, f"{len(problems)} problem(s) in the request; first: {problems[0]}", problems
        )

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail))

    app.add_exception_handler(FlagmwError, on_flagmw)
    app.add_exception_handler(ApiProblem, on_api)
    app.add_exception_handler(RequestValidationError, on_request)
    app.add_exception_handler(StarletteHTTPException, on_http)
