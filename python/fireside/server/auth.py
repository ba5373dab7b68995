"""API key check: ``Authorization: Bearer KEY``, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from fireside.server.errors import APIError


def check_api_key(expected: str | None, authorization: str | None) -> None:
    """Raise a 401 :class:`APIError` unless ``authorization`` carries ``expected``.

    Does nothing when no key is configured. The comparison takes the same time whatever
    the given key, so it reveals nothing about the expected one.
    """
    if expected is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise APIError(
            401,
            "You didn't provide an API key. Send it in the Authorization header: "
            "'Authorization: Bearer YOUR_KEY'.",
            code="missing_api_key",
        )
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")


async def require_api_key(request: Request) -> None:
    """FastAPI dependency guarding the API routes with the app's configured key."""
    check_api_key(request.app.state.config.api_key, request.headers.get("authorization"))
