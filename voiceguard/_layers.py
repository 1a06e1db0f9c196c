"""The package's layers, as data: the rule the import test checks and the picture the docs draw.

Arrows point down only: a module may import modules of its own layer and of the layers below it.
The simulator stands apart; production code never imports it. The architecture page of the
documentation draws this table; ``tests/test_layers.py`` walks every import against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

__all__ = ("IMPORTS_SIM", "LAYERS", "NO_IO", "SIM", "SIM_MAY_IMPORT", "Layer")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """One layer of the package.

    Attributes:
        name: Its short name.
        modules: The module prefixes that belong to it.
        holds: What it holds, in a few words (for the picture).
    """

    name: str
    modules: tuple[str, ...]
    holds: str


#: The layers, bottom first.
LAYERS: Final = (
    Layer(
        name="base",
        modules=(
            "voiceguard._version",
            "voiceguard._redact",
            "voiceguard._deprecated",
            "voiceguard._layers",
            "voiceguard.errors",
            "voiceguard.decisions",
            "voiceguard.audio",
            "voiceguard.config",
            "voiceguard.tools",
        ),
        holds="errors, decisions, audio, config, tool definitions",
    ),
    Layer(
        name="transports",
        modules=("voiceguard.transports",),
        holds="the Transport protocol and its implementations",
    ),
    Layer(
        name="protocol",
        modules=("voiceguard.protocol",),
        holds="Realtime and Twilio messages: parsed by table, built; the only raw JSON",
    ),
    Layer(
        name="core",
        modules=("voiceguard.core",),
        holds="sans-IO: the turn engine, guards, call state, playout",
    ),
    Layer(
        name="observe",
        modules=("voiceguard.observe",),
        holds="metrics, call traces, replay, timeline",
    ),
    Layer(
        name="runtime",
        modules=("voiceguard.runtime",),
        holds="anyio: call scopes, call timers, the media handler",
    ),
    Layer(
        name="middleware",
        modules=("voiceguard.middleware",),
        holds="the turn engine around a bot's own sockets",
    ),
    Layer(name="package", modules=("voiceguard",), holds="the flat public API"),
    Layer(
        name="server",
        modules=("voiceguard.server",),
        holds="the reference server (ASGI app, options, signatures, serve)",
    ),
    Layer(name="testing", modules=("voiceguard.testing",), holds="pytest fixtures, strategies"),
    Layer(name="demo", modules=("voiceguard.demo",), holds="voiceguard demo, voiceguard tour"),
    Layer(name="cli", modules=("voiceguard.cli", "voiceguard.__main__"), holds="the commands"),
)
#: The simulator of both peers.
SIM: Final = "voiceguard.sim"
#: What the simulator may import besides itself.
SIM_MAY_IMPORT: Final = ("base", "transports", "protocol")
#: Who may import the simulator: production code never does.
IMPORTS_SIM: Final = ("testing", "demo", "cli")
_IO: Final = ("anyio", "asyncio", "trio", "socket", "os", "time", "websockets", "starlette")
#: Layers that do no I/O, and the libraries they must not import (json lives in the protocol).
NO_IO: Final = {
    "base": (*_IO, "json"),
    "protocol": _IO,
    "core": (*_IO, "json"),
}
