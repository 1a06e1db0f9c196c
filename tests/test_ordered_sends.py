"""The call's sends: carried out in the deciding task, in the order decided, bounded when a peer
is slow (voiceguard.runtime._sends.OrderedSends, under MediaHandler).

Virtual time (trio's MockClock): a "send" that takes time is a sleep.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio.testing

from voiceguard.runtime._sends import OrderedSends


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


class Peer:
    """Records what was sent and when; a send of a name starting with "slow" takes 1 s."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []
        self.refuse: set[str] = set()

    async def carry_out(self, action: str) -> bool:
        if action in self.refuse:
            return False
        if action.startswith("slow"):
            await anyio.sleep(1.0)
        self.sent.append((action, anyio.current_time()))
        return True


@pytest.mark.anyio
async def test_an_uncontended_batch_goes_out_in_the_asking_task_at_once() -> None:
    peer = Peer()
    sends = OrderedSends(peer.carry_out, depth=4)
    sends.start()
    began = anyio.current_time()
    await sends.send(["a", "b"])
    assert peer.sent == [("a", began), ("b", began)]


@pytest.mark.anyio
async def test_nothing_goes_before_start_or_after_stop() -> None:
    peer = Peer()
    sends = OrderedSends(peer.carry_out, depth=4)
    await sends.send(["early"])
    sends.start()
    await sends.send(["a"])
    sends.stop()
    await sends.send(["late"])
    assert [name for name, _ in peer.sent] == ["a"]


@pytest.mark.anyio
async def test_batches_asked_while_another_task_sends_follow_it_in_order() -> None:
    """Task 1 is inside a slow send; task 2 and 3 ask meanwhile: theirs go after task 1's whole
    batch, in the order asked, and neither of them waits."""
    peer = Peer()
    sends = OrderedSends(peer.carry_out, depth=4)
    sends.start()
    returned: dict[str, float] = {}

    async def ask(name: str, batch: list[str]) -> None:
        await sends.send(batch)
        returned[name] = anyio.current_time()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "one", ["slow-cancel", "truncate"])
        await anyio.sleep(0.1)
        tg.start_soon(ask, "two", ["create"])
        await anyio.sleep(0.1)
        tg.start_soon(ask, "three", ["append"])
    assert [name for name, _ in peer.sent] == ["slow-cancel", "truncate", "create", "append"]
    assert returned["two"] == pytest.approx(0.1) and returned["three"] == pytest.approx(0.2)
    assert returned["one"] == pytest.approx(1.0)  # it sent the others' batches too


@pytest.mark.anyio
async def test_a_slow_peer_holds_the_askers_back_past_the_backlog() -> None:
    """With a backlog of 2, the third batch asked during a slow send waits for room."""
    peer = Peer()
    sends = OrderedSends(peer.carry_out, depth=2)
    sends.start()
    returned: list[float] = []

    async def ask(batch: list[str]) -> None:
        await sends.send(batch)
        returned.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, ["slow-0"])
        await anyio.sleep(0)
        for k in range(1, 4):
            tg.start_soon(ask, [f"slow-{k}"])
            await anyio.sleep(0)
    assert [name for name, _ in peer.sent] == [f"slow-{k}" for k in range(4)]
    # Two batches queued and their tasks went on at once; the third waited until one left.
    assert sorted(returned)[:2] == [0.0, 0.0]
    assert sorted(returned)[2] == pytest.approx(1.0)


@pytest.mark.anyio
async def test_a_send_that_ends_the_call_drops_the_rest_and_releases_the_waiting() -> None:
    peer = Peer()
    peer.refuse.add("hang-up")
    sends = OrderedSends(peer.carry_out, depth=1)
    sends.start()

    async def ask(batch: list[str]) -> None:
        await sends.send(batch)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, ["slow", "hang-up", "never"])
            await anyio.sleep(0)
            tg.start_soon(ask, ["queued"])
            tg.start_soon(ask, ["waits"])
    assert [name for name, _ in peer.sent] == ["slow"]
    assert not sends.open
