"""How ``voiceguard call`` makes its plan's calls: one after the other, each over its own
WebSocket (``ws://`` with the simulators' client, ``wss://`` with the websockets package)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Final
from urllib.parse import urlsplit

import anyio

from voiceguard.sim._call.plan import Plan, Refused
from voiceguard.sim.caller import CallerSimulator, CallRecord
from voiceguard.transports import Transport, TransportClosed

__all__ = ("CALL_SLACK", "play_plan")

#: Seconds a call may run past its caller's ``max_duration`` (the bot's close handshake, a bot
#: that stopped reading) before it counts as stuck.
CALL_SLACK: Final = 15.0


def _ignore(*_args: object) -> None:
    pass


@asynccontextmanager
async def _connect(url: str, headers: Mapping[str, str]) -> AsyncIterator[Transport]:
    if urlsplit(url).scheme == "wss":
        # TLS: the websockets asyncio client (the simulators' own client speaks ws:// only).
        from voiceguard.transports.production import connect_realtime  # noqa: PLC0415

        async with connect_realtime(url, api_key=None, headers=headers) as secure:
            yield secure
    else:
        from voiceguard.transports.websocket import connect_websocket  # noqa: PLC0415

        async with connect_websocket(url, headers=headers) as plain:
            yield plain


async def _call(
    caller: CallerSimulator, url: str, headers: Mapping[str, str], connected: Callable[[], None]
) -> CallRecord:
    """One call; raises :class:`Refused` when the bot cannot be reached or the call hangs."""
    limit = caller.max_duration + CALL_SLACK
    async with AsyncExitStack() as stack:
        try:
            transport = await stack.enter_async_context(_connect(url, headers))
        except TransportClosed as exc:
            raise Refused(f"{url}: {exc.reason}") from None
        except TimeoutError:
            raise Refused(f"{url}: no WebSocket handshake within 10 s") from None
        except OSError as exc:
            raise Refused(f"cannot connect to {url}: {exc.strerror or exc}") from None
        connected()
        with anyio.move_on_after(limit):
            return await caller.run(transport)
    # Only a call cut short by the time limit gets here.
    raise Refused(
        f"{url}: the call did not end within {limit:g} s (the caller hangs up at "
        f"{caller.max_duration:g} s: is the bot still reading?)"
    )


async def play_plan(
    plan: Plan,
    records: list[CallRecord],
    connected: Callable[[int], None] = _ignore,
    ended: Callable[[int, CallRecord], None] = _ignore,
) -> None:
    """Make the plan's calls one after the other, each record added to *records* as it ends
    (so the calls made before one that fails are still reported)."""
    for number, caller in enumerate(plan.callers):
        if number:
            await anyio.sleep(plan.between_calls)
        record = await _call(caller, plan.url, plan.headers, functools.partial(connected, number))
        records.append(record)
        ended(number, record)
