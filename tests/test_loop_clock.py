"""The handler's clock, looked up once per call, tells what anyio.current_time tells."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from voiceguard.runtime._clock import loop_clock


@pytest.mark.anyio
async def test_the_loop_clock_is_anyios_clock(anyio_backend: str) -> None:
    clock = loop_clock()
    if anyio_backend == "asyncio":
        assert clock == asyncio.get_running_loop().time  # no backend lookup per reading
    else:
        assert clock is anyio.current_time
    for _ in range(3):
        before = anyio.current_time()
        reading = clock()
        after = anyio.current_time()
        assert before <= reading <= after
        await anyio.sleep(0.01)
