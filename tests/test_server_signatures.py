"""Twilio request signatures: webhooks and media streams, behind a proxy and not.

Signatures are computed with the ``twilio`` package's ``RequestValidator`` (the oracle), never
with voiceguard's own code. A refused request must open no model session: the model router
records every connection attempt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from server_harness import ModelRouter, ServerProcess
from twilio.request_validator import RequestValidator

from voiceguard.server import compute_twilio_signature, validate_twilio_signature
from voiceguard.sim.caller import CallerSimulator, HangUp
from voiceguard.sim.realtime import RealtimeSimulator, Reply
from voiceguard.transports import TransportClosed
from voiceguard.transports.websocket import connect_websocket

TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://voice.example.com"
ORACLE = RequestValidator(TOKEN)
FORM = {"CallSid": "CA" + "1" * 32, "From": "+15551234567", "To": "+15557654321"}


# ---------------------------------------------------------------------------------------------
# The signature itself, against the oracle


@given(
    url=st.sampled_from(
        [
            "https://voice.example.com/incoming-call",
            "https://voice.example.com/incoming-call?x=1&y=%20",
            "wss://voice.example.com/media-stream",
            "http://127.0.0.1:5050/incoming-call",
        ]
    ),
    params=st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=6),
)
def test_signature_matches_twilios_validator(url: str, params: dict[str, str]) -> None:
    expected = ORACLE.compute_signature(url, params)
    assert compute_twilio_signature(TOKEN, url, params) == expected
    assert validate_twilio_signature(TOKEN, url, params, expected)
    assert ORACLE.validate(url, params, compute_twilio_signature(TOKEN, url, params))


def test_repeated_parameters_sign_as_twilio_does() -> None:
    class Multi(dict[str, str]):
        def getall(self, name: str) -> list[str]:
            return {"a": ["2", "1", "2"], "b": ["x"]}[name]

    expected = ORACLE.compute_signature("https://h/p", Multi(a="", b=""))
    params = {"a": ["2", "1", "2"], "b": "x"}
    assert compute_twilio_signature(TOKEN, "https://h/p", params) == expected


def test_validation_refuses_missing_wrong_and_other_urls() -> None:
    url = "wss://voice.example.com/media-stream"
    good = ORACLE.compute_signature(url, {})
    assert validate_twilio_signature(TOKEN, url, None, good)
    assert validate_twilio_signature(TOKEN, "wss://voice.example.com:443/media-stream", None, good)
    assert not validate_twilio_signature(TOKEN, url, None, None)
    assert not validate_twilio_signature(TOKEN, url, None, "")
    assert not validate_twilio_signature(TOKEN, url, None, good[:-2] + "AA")
    assert not validate_twilio_signature(TOKEN, url, None, "ü" + good)
    assert not validate_twilio_signature("another token", url, None, good)
    assert not validate_twilio_signature(
        TOKEN, "https://voice.example.com/media-stream", None, good
    )


# ---------------------------------------------------------------------------------------------
# The server, behind a proxy (a public URL) and not (the request's Host)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn); so do its tests."""
    return "asyncio"


@pytest.fixture(scope="module")
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        running.use(RealtimeSimulator(replies=[Reply(text="Hi", duration=0.3)], audio_speed=8.0))
        yield running


@pytest.fixture(scope="module")
async def proxied(
    router: ModelRouter, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """A server behind a proxy: Twilio signs https://voice.example.com/..."""
    async with ServerProcess.running(
        ["--realtime-url", router.url, "--public-url", PUBLIC + "/"],
        log_dir=tmp_path_factory.mktemp("proxied"),
        env={"TWILIO_AUTH_TOKEN": TOKEN},
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def direct(
    router: ModelRouter, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """A server without a public URL: signatures are checked against the request's Host."""
    async with ServerProcess.running(
        ["--realtime-url", router.url],
        log_dir=tmp_path_factory.mktemp("direct"),
        env={"TWILIO_AUTH_TOKEN": TOKEN},
    ) as running:
        yield running


async def expect_refused(server: ServerProcess, headers: dict[str, str]) -> None:
    with anyio.fail_after(5), pytest.raises(TransportClosed, match=r"HTTP 403"):
        async with connect_websocket(server.media_url, headers=headers):
            pass  # pragma: no cover - refused before this


@pytest.mark.anyio
async def test_webhook_behind_a_proxy_is_checked_against_the_public_url(
    proxied: ServerProcess,
) -> None:
    signature = ORACLE.compute_signature(PUBLIC + "/incoming-call", FORM)
    ok = await proxied.post("/incoming-call", data=FORM, headers={"X-Twilio-Signature": signature})
    assert ok.status_code == 200
    assert '<Stream url="wss://voice.example.com/media-stream"/>' in ok.text

    query = "/incoming-call?attempt=2"
    signed_query = ORACLE.compute_signature(PUBLIC + query, FORM)
    ok = await proxied.post(query, data=FORM, headers={"X-Twilio-Signature": signed_query})
    assert ok.status_code == 200

    missing = await proxied.post("/incoming-call", data=FORM)
    assert missing.status_code == 403
    wrong = await proxied.post(
        "/incoming-call", data={**FORM, "To": "+1999"}, headers={"X-Twilio-Signature": signature}
    )
    assert wrong.status_code == 403
    # Signed over the URL the app sees instead of the public one: refused.
    local = ORACLE.compute_signature(proxied.http_url + "/incoming-call", FORM)
    seen_locally = await proxied.post(
        "/incoming-call", data=FORM, headers={"X-Twilio-Signature": local}
    )
    assert seen_locally.status_code == 403


@pytest.mark.anyio
async def test_media_stream_behind_a_proxy_needs_the_wss_public_url_signature(
    proxied: ServerProcess, router: ModelRouter
) -> None:
    sessions = len(router.requests)
    await expect_refused(proxied, {})
    await expect_refused(proxied, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    https_signed = ORACLE.compute_signature("https://voice.example.com/media-stream", {})
    await expect_refused(proxied, {"X-Twilio-Signature": https_signed})
    assert len(router.requests) == sessions  # no model session for a refused stream

    good = ORACLE.compute_signature("wss://voice.example.com/media-stream", {})
    caller = CallerSimulator(script=[HangUp(at=0.6)])
    with anyio.fail_after(5):
        record = await caller.call(proxied.media_url, headers={"X-Twilio-Signature": good})
    assert record.ended_by == "caller"
    assert record.protocol_errors == []
    assert len(router.requests) == sessions + 1
    page = (await proxied.get("/metrics")).text
    assert (
        'voiceguard_requests_refused_total{endpoint="/media-stream",reason="signature"} 3.0' in page
    )


@pytest.mark.anyio
async def test_without_a_public_url_signatures_use_the_request_host(
    direct: ServerProcess, router: ModelRouter
) -> None:
    signature = ORACLE.compute_signature(direct.http_url + "/incoming-call", FORM)
    ok = await direct.post("/incoming-call", data=FORM, headers={"X-Twilio-Signature": signature})
    assert ok.status_code == 200
    assert (await direct.post("/incoming-call", data=FORM)).status_code == 403

    sessions = len(router.requests)
    await expect_refused(direct, {})
    assert len(router.requests) == sessions
    host = direct.http_url.removeprefix("http://")
    good = ORACLE.compute_signature(f"wss://{host}/media-stream", {})
    caller = CallerSimulator(script=[HangUp(at=0.6)])
    with anyio.fail_after(5):
        record = await caller.call(direct.media_url, headers={"X-Twilio-Signature": good})
    assert record.ended_by == "caller"
    assert len(router.requests) == sessions + 1
