"""The handler's clock, looked up once per call, tells what anyio.current_time tells; its alarm
sleeps to the deadline unless woken."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import anyio
import pytest
import trio.testing

from voiceguard.runtime._clock import Alarm, loop_clock


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


def _virtual(test: Callable[[], Awaitable[None]]) -> None:
    """Run *test* on trio's virtual clock, failing after a virtual minute (never hanging)."""

    async def bounded() -> None:
        with anyio.fail_after(60):
            await test()

    clock = trio.testing.MockClock(autojump_threshold=0)
    anyio.run(bounded, backend="trio", backend_options={"clock": clock})


def test_the_alarm_sleeps_to_its_deadline_unless_woken() -> None:
    async def main() -> None:
        alarm = Alarm()
        alarm.wake()  # awake: nothing to cut short
        start = anyio.current_time()
        await alarm.sleep(start + 2.0, start)
        assert anyio.current_time() == pytest.approx(start + 2.0)
        assert alarm.until == -math.inf  # awake again
        async with anyio.create_task_group() as tg:

            async def wake_soon() -> None:
                await anyio.sleep(0.5)
                assert alarm.until > anyio.current_time()  # asleep, until its deadline
                alarm.wake()

            tg.start_soon(wake_soon)
            await alarm.sleep(start + 12.0, start + 2.0)
        assert anyio.current_time() == pytest.approx(start + 2.5)  # cut short by wake()
        async with anyio.create_task_group() as tg:
            tg.start_soon(wake_soon)
            await alarm.sleep(None, anyio.current_time())  # no deadline: until woken
        assert anyio.current_time() == pytest.approx(start + 3.0)

    _virtual(main)
