"""Bearer tokens for the model connection from an operator's function (``--model-token``).

A provider that signs in with short-lived tokens (Microsoft Entra ID for Azure OpenAI) is served
by a function that returns the current token; it is called for each call's model connection, so
a refreshed token is used as soon as the function returns it. A plain function runs in a worker
thread (token libraries may block on the network); a coroutine function is awaited.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import anyio.to_thread

from voiceguard.errors import ConfigError
from voiceguard.runtime._imports import import_attribute

__all__ = ("TokenSource", "bearer_token", "load_token_source")

#: A function that returns a bearer token, plain or async.
TokenSource: TypeAlias = Callable[[], "str | Awaitable[str]"]


def load_token_source(spec: str) -> TokenSource:
    """Import the token function *spec* names (``package.module:function``).

    Raises:
        ConfigError: If it cannot be imported or is not callable.
    """
    try:
        value = import_attribute(spec)
    except LookupError as exc:
        raise ConfigError("model_token", spec, str(exc)) from None
    if not callable(value):
        raise ConfigError(
            "model_token", spec, f"a function, not {type(value).__name__} (it returns a token)"
        )
    return value


async def bearer_token(source: TokenSource) -> str:
    """Call *source* for a token (a plain function in a worker thread).

    Raises:
        OSError: If the function raised or returned something that is not a token; the message
            says which (the token itself is never in it). The call's model connection fails
            with it, as when the model cannot be reached.
    """
    name = getattr(source, "__qualname__", type(source).__name__)
    try:
        if inspect.iscoroutinefunction(source):
            token: object = await source()
        else:
            token = await anyio.to_thread.run_sync(source)
            if inspect.isawaitable(token):
                token = await token
    except Exception as exc:
        raise OSError(f"the model token function {name} raised {type(exc).__name__}") from exc
    if not isinstance(token, str) or not token.strip() or any(c.isspace() for c in token):
        raise OSError(
            f"the model token function {name} returned {type(token).__name__}, not a token "
            "(a non-empty string without spaces)"
        )
    return token
