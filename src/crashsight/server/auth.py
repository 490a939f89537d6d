"""Who may ask: a bearer token checked before any route runs.

A job's errors quote its stderr and its paths, so the endpoint is closed by default: building the
app without a token is a `ConfigurationError`, unless the host says ``unauthenticated=True`` (it
sits behind its own auth, or on a loopback-only port for one user). The token comes from an
environment variable, read once when the app is built, or from a callable the host app passes,
called on every request so the host can rotate it. A callable that returns an empty or short token
locks everyone out rather than letting anyone in.

Tokens are compared with `hmac.compare_digest`, so the time a wrong guess takes says nothing about
how much of it was right. A missing or wrong token is a 401 with ``WWW-Authenticate: Bearer``
(RFC 6750), and tokens are never accepted in the URL, where proxies and browser history keep them.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigurationError
from .models import ErrorBody

__all__ = ["MIN_TOKEN_CHARS", "BearerAuth", "TokenSource", "token_source"]

#: Shorter tokens can be guessed; they are refused at startup (environment) or per request.
MIN_TOKEN_CHARS = 16

#: Returns the token a request must present.
TokenSource = Callable[[], str]


def token_source(
    *, token_env: str | None, token: TokenSource | None, unauthenticated: bool
) -> TokenSource | None:
    """Check the auth options and return where the token comes from (None: no auth).

    Raises:
        ConfigurationError: No token source and not ``unauthenticated``; both sources; a source
            together with ``unauthenticated``; or the environment variable unset or too short.
    """
    given = [name for name, value in (("token_env", token_env), ("token", token)) if value]
    if unauthenticated:
        if given:
            raise ConfigurationError(f"unauthenticated=True contradicts {given[0]}=...: choose one")
        return None
    if not given:
        raise ConfigurationError(
            "the crashsight endpoint needs a bearer token: pass token_env='NAME' (an environment "
            "variable holding it) or token=callable, or unauthenticated=True if the host app "
            "authorises requests itself"
        )
    if len(given) == 2:
        raise ConfigurationError("pass token_env or token, not both")
    if token is not None:
        return token
    assert token_env is not None
    value = os.environ.get(token_env, "")
    if len(value) < MIN_TOKEN_CHARS:
        state = "is not set" if not value else f"holds fewer than {MIN_TOKEN_CHARS} characters"
        raise ConfigurationError(
            f"environment variable {token_env} {state}; put a random token in it, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return lambda: value


class BearerAuth:
    """ASGI middleware that answers 401 unless the request carries the right bearer token.

    Args:
        app: The application it guards.
        token: Where the expected token comes from.
    """

    def __init__(self, app: ASGIApp, token: TokenSource) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan events carry no request to authorise
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            challenge, detail = 'Bearer realm="crashsight"', "send Authorization: Bearer <token>"
        elif self._accepts(presented.strip()):
            await self.app(scope, receive, send)
            return
        else:
            challenge = 'Bearer realm="crashsight", error="invalid_token"'
            detail = "the bearer token is not the one this server expects"
        body = ErrorBody(error="unauthorized", detail=detail)
        await body.response(401, {"WWW-Authenticate": challenge})(scope, receive, send)

    def _accepts(self, presented: str) -> bool:
        expected = self.token()
        if len(expected) < MIN_TOKEN_CHARS:
            return False
        return hmac.compare_digest(presented.encode(), expected.encode())
