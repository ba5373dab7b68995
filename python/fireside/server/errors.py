"""Errors as OpenAI's API sends them: ``{"error": {"message", "type", "param", "code"}}``.

Every failure a client can cause or meet is answered in this shape with the fitting HTTP
status: a request the server cannot parse or validate is 400 (FastAPI's 422 is turned into
400, as OpenAI answers; malformed HTTP too, see :mod:`fireside.server.http11`), an unknown
model 404, a missing or wrong API key 401, a Host or Origin this server does not serve 403
and a body that is not JSON 415 (see :mod:`fireside.server.origins`), a full queue 503 with
``Retry-After``. fireside's own exceptions are mapped by class, never by message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from fireside.errors import (
    ContextLengthError,
    EngineStoppedError,
    GrammarError,
    QueueFullError,
    TemplateError,
)

log = logging.getLogger("fireside.server")

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    431: "invalid_request_error",
    503: "server_error",
}


class APIError(Exception):
    """An error answer: HTTP ``status`` and OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "server_error")
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def from_exception(error: BaseException, *, param: str | None = None) -> APIError:
    """The API error for an exception raised while serving a request."""
    if isinstance(error, APIError):
        return error
    if isinstance(error, ContextLengthError):
        return APIError(
            400,
            f"This model's maximum context length is {error.n_ctx} tokens per request, "
            f"but the prompt has {error.n_prompt_tokens} tokens (and the completion needs at "
            "least 1 more). Please shorten the prompt.",
            param=param,
            code="context_length_exceeded",
        )
    if isinstance(error, GrammarError):
        return APIError(400, f"Invalid response_format: {error}", param="response_format")
    if isinstance(error, TemplateError):
        return APIError(400, f"The chat template failed on these messages: {error}", param=param)
    if isinstance(error, QueueFullError):
        return APIError(
            503,
            f"The server is busy: {error}",
            code="queue_full",
            headers={"Retry-After": str(error.retry_after)},
        )
    if isinstance(error, EngineStoppedError):
        return APIError(503, str(error), code="unavailable")
    if isinstance(error, (ValueError, TypeError)):
        return APIError(400, str(error), param=param)
    log.error("internal error while serving a request", exc_info=error)
    return APIError(500, "The server had an internal error while processing the request.")


def _param(loc: Sequence[Any]) -> str | None:
    """``("body", "messages", 0, "role")`` -> ``"messages[0].role"``."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part not in ("str", "list[str]", "list[int]"):
            if "[" in part or part.startswith("function-"):
                continue  # pydantic's names of union members
            out += f".{part}" if out else part
    return out or None


def validation_error(errors: Sequence[Mapping[str, Any]]) -> APIError:
    """A 400 for FastAPI's validation errors (bad JSON, missing or invalid fields)."""
    if not errors:
        return bad_request("The request body is invalid.")
    # a union failing every member reports each; the first names the field well enough
    first = errors[0]
    kind = first.get("type", "")
    loc = first.get("loc", ())
    param = _param(loc)
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return bad_request(
            "We could not parse the JSON body of your request"
            + (f" ({detail})" if detail else "")
            + ". The body must be a JSON object."
        )
    if kind == "model_attributes_type" or (kind.endswith("_type") and param is None):
        return bad_request("The request body must be a JSON object.")
    if kind == "extra_forbidden":
        return bad_request(f"Unrecognized request argument supplied: {param}", param=param)
    if kind == "missing":
        return bad_request(f"Missing required parameter: '{param}'.", param=param)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return bad_request(f"Invalid value for '{param}': {message}", param=param)


def install(app: FastAPI) -> None:
    """Answer every error raised in ``app`` in OpenAI's shape."""

    def count(request: Request, status: int) -> None:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.error(status)

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        count(request, exc.status)
        return exc.response()

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        error = validation_error(exc.errors())
        count(request, error.status)
        return error.response()

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"Unknown request URL: {request.method} {request.url.path}."
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed for {request.url.path}."
        else:
            message = str(exc.detail)
        code = "request_too_large" if exc.status_code == 413 else None
        error = APIError(exc.status_code, message, code=code, headers=exc.headers)
        count(request, error.status)
        return error.response()

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        error = from_exception(exc)
        count(request, error.status)
        return error.response()

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, internal)
