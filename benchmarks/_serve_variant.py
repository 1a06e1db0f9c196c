"""``voiceguard serve`` with another bridge inside: the benchmarks' guards-off and naive servers.

Usage::

    python benchmarks/_serve_variant.py guards-off|naive [voiceguard serve options...]

The reference server runs exactly as ``python -m voiceguard serve`` (the same uvicorn, event
loop, HTTP parser, WebSocket implementation, routes and checks), with one difference: each call's
:class:`~voiceguard.MediaHandler` is replaced, before the server starts, by

* ``guards-off``: the same handler with its guards allowing everything (``_unguarded.py``);
* ``naive``: :class:`voiceguard.demo.NaiveBridge`, the popular sample's bridge, connecting to
  ``--realtime-url`` with ``OPENAI_API_KEY``.

So the side-by-side benchmark (``side_by_side.py``) measures the bridges, not their servers.
For benchmarks only.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

import voiceguard.server.app
from voiceguard.cli import main as voiceguard_main
from voiceguard.demo import NaiveBridge
from voiceguard.runtime.summary import CallSummary, call_summary
from voiceguard.transports import Transport, TransportClosed, connect_realtime

VARIANTS = ("guards-off", "naive")


class _Messages:
    """A transport that can also be read with ``async for`` (as the naive bridge reads)."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._inner.receive()
        except TransportClosed:
            raise StopAsyncIteration from None


@asynccontextmanager
async def _connect(url: str, key: str) -> AsyncIterator[_Messages]:
    async with connect_realtime(url, api_key=key) as model:
        yield _Messages(model)


class NaiveHandler:
    """Runs one call through the naive bridge; shaped like a MediaHandler for the server."""

    url = ""

    def __init__(self, phone: Transport, *_: Any, **__: Any) -> None:
        self._phone = phone
        self.core = None

    def wind_up(self, **_: Any) -> None:
        pass  # the naive bridge has no polite end

    async def run(self) -> CallSummary:
        began = anyio.current_time()
        key = os.environ.get("OPENAI_API_KEY", "")
        phone: Any = _Messages(self._phone)
        await NaiveBridge()(phone, lambda: _connect(self.url, key))
        return call_summary(
            None,
            start=None,
            ended_by="ended",
            duration=anyio.current_time() - began,
            bad=Counter(),
            model_errors=Counter(),
            scope=None,
            reactions=(),
            unheard_at_truncation=(),
        )


def main() -> None:
    variant, rest = sys.argv[1], sys.argv[2:]
    if variant not in VARIANTS:
        raise SystemExit(f"usage: _serve_variant.py {'|'.join(VARIANTS)} [serve options]")
    if variant == "guards-off":
        from _unguarded import unguarded_handler  # noqa: PLC0415

        voiceguard.server.app.MediaHandler = unguarded_handler  # type: ignore[assignment,misc]
    else:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--realtime-url", required=True)
        NaiveHandler.url = parser.parse_known_args(rest)[0].realtime_url
        voiceguard.server.app.MediaHandler = NaiveHandler  # type: ignore[assignment,misc]
    sys.exit(voiceguard_main(["serve", *rest]))


if __name__ == "__main__":
    main()
