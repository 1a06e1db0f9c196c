"""The reference media handler on its own: every scenario of the library over real sockets.

No server package: :class:`~voiceguard.MediaHandler` runs per connection under
:func:`~voiceguard.transports.websocket.serve_websocket` on 127.0.0.1, and opens its model
connection with :func:`~voiceguard.transports.websocket.connect_websocket` to a
``RealtimeSimulator`` behind the ``ModelRouter``; its callers dial it as ``voiceguard call
--scenario NAME --check`` dials them. The same checks from the outside as for ``voiceguard
serve`` (tests/test_server_scenarios.py) and the guarded sample
(tests/test_adoption_sockets.py). Real time: about two minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import anyio
import pytest
from server_harness import ModelRouter, check_scenario_run, play_scenario

from voiceguard import MediaHandler
from voiceguard.protocol import StreamStarted
from voiceguard.sim import SCENARIOS
from voiceguard.transports import Transport
from voiceguard.transports.websocket import (
    WebSocketTransport,
    connect_websocket,
    serve_websocket,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


@pytest.fixture(scope="module")
async def media_url(router: ModelRouter) -> AsyncIterator[str]:
    def connect_model(_start: StreamStarted) -> AbstractAsyncContextManager[Transport]:
        return connect_websocket(router.url, headers={"Authorization": "Bearer sk-test"})

    async def handle(phone: WebSocketTransport) -> None:
        await MediaHandler(phone, connect_model).run()

    async with anyio.create_task_group() as tg:
        port = await tg.start(lambda task_status: serve_websocket(handle, task_status=task_status))
        yield f"ws://127.0.0.1:{port}/media-stream"
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_through_the_media_handler_over_real_sockets(
    name: str, media_url: str, router: ModelRouter
) -> None:
    check_scenario_run(await play_scenario(SCENARIOS[name], media_url, router))
