"""Secrets stay out of logs and traces, whatever carries them.

The filter is fed the records the libraries really make (``websockets`` frames as arguments,
bytes, dictionaries, exceptions, header lines); the trace recorder a model ``error`` that quotes
the key. Then a whole call over real sockets on 127.0.0.1: the media handler between a phone
WebSocket and a model WebSocket that echoes the API key in an ``error`` event and in its close
reason, with every logger at DEBUG; the key is in no log line and nowhere in the trace.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest
from log_capture import every_record
from websockets.frames import Close, Frame, Opcode

from voiceguard import Action, Decision, MediaHandler, Reason, Verdict
from voiceguard._redact import (
    REDACTED,
    RedactingLogger,
    SecretFilter,
    add_secrets,
    install_secret_filter,
    redact_text,
    registered_secrets,
)
from voiceguard.observe.trace import TraceRecorder, load_trace
from voiceguard.protocol import StreamStarted
from voiceguard.runtime.handler import CallSummary
from voiceguard.transports import Transport, TransportClosed, connect_realtime
from voiceguard.transports.websocket import (
    WebSocketTransport,
    connect_websocket,
    serve_websocket,
)

KEY = "sk-test-REDACTION-SECRET-0123456789abcdef"
#: The process's registry of secrets, emptied for the tests that add to it.
REGISTRY = "voiceguard._redact._registered"
#: A piece of the key that no redaction of the whole key alone would catch.
KEY_PIECE = KEY[8:28]
ERROR_EVENT = json.dumps(
    {
        "type": "error",
        "event_id": "event_1",
        "error": {
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "message": f"Incorrect API key provided: {KEY}. Find your key in the dashboard.",
            "param": None,
            "event_id": None,
        },
    }
)


class Capture(logging.Handler):
    """Keeps every record it is given as formatted text (message, exception and stack)."""

    def __init__(self, *secrets: str, formatter: logging.Formatter | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []
        self.setFormatter(formatter or logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.addFilter(SecretFilter(secrets=secrets))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def capture(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, Capture]]:
    """A logger of its own at DEBUG, whose one handler has a filter knowing :data:`KEY`."""
    logger = logging.getLogger(f"tests.redaction.{request.node.name}")
    handler = Capture(KEY)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)


def assert_clean(text: str) -> None:
    assert KEY not in text
    assert KEY_PIECE not in text


class Holder:
    """An object that prints the key, as a frame or a header list does."""

    def __str__(self) -> str:
        return f"Holder(token={KEY})"

    def __repr__(self) -> str:
        return f"<Holder {KEY}>"


# ============================================================================================
# The filter


def test_a_secret_in_the_message_or_a_string_argument_is_blanked(
    capture: tuple[logging.Logger, Capture],
) -> None:
    logger, handler = capture
    logger.warning(f"model error invalid_api_key: Incorrect API key provided: {KEY}.")
    logger.warning("model error %s: %s", "invalid_api_key", f"key {KEY} is wrong")
    assert_clean(handler.text)
    assert handler.lines[1].endswith(f"model error invalid_api_key: key {REDACTED} is wrong")
    assert handler.text.count(REDACTED) == 2


def test_secrets_in_objects_bytes_and_dicts_are_blanked(
    capture: tuple[logging.Logger, Capture],
) -> None:
    logger, handler = capture
    logger.debug("< %s", Holder())
    logger.debug("< %r", Holder())
    logger.debug("> %s", KEY.encode())
    logger.debug("%s", {"headers": {"x-key": KEY}})
    logger.debug("%(key)s", {"key": Holder()})
    assert_clean(handler.text)
    assert all(REDACTED in line for line in handler.lines)
    for record in handler.records:
        assert record.args is None  # the rendered, cleaned text is all a formatter gets
        assert_clean(record.getMessage())


def test_websockets_frames_are_rendered_then_blanked_even_when_elided(
    capture: tuple[logging.Logger, Capture],
) -> None:
    logger, handler = capture
    logger.debug("< %s", Frame(Opcode.TEXT, ERROR_EVENT.encode()))
    logger.debug("< %s", Frame(Opcode.CLOSE, Close(4000, f"bad key {KEY}").serialize()))
    # websockets shows a long frame as its start and its end: a key across the cut is in pieces.
    for offset in range(0, 60, 3):
        text = "x" * offset + KEY + "y" * 400
        logger.debug("< %s", Frame(Opcode.TEXT, text.encode()))
    assert_clean(handler.text)
    assert f"CLOSE 4000 (private use) bad key {REDACTED}" in handler.lines[1]
    for line in handler.lines:
        assert not any(KEY[i : i + 6] in line for i in range(len(KEY) - 5)), line


def test_exceptions_and_stacks_are_blanked_and_printed_from_the_clean_text(
    capture: tuple[logging.Logger, Capture],
) -> None:
    logger, handler = capture
    try:
        raise RuntimeError(f"the server refused key {KEY}")
    except RuntimeError:
        logger.exception("connecting failed")
    logger.error("connecting failed: %s", RuntimeError(KEY))
    assert_clean(handler.text)
    assert f"RuntimeError: the server refused key {REDACTED}" in handler.lines[0]
    assert "Traceback (most recent call last)" in handler.lines[0]
    assert handler.records[0].exc_info is None
    assert handler.records[0].exc_text is not None

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    record.stack_info = f'Stack (most recent call last):\n  File "x.py", line 1\n    key = "{KEY}"'
    assert SecretFilter(secrets=[KEY]).filter(record) is True
    assert record.stack_info is not None
    assert KEY not in record.stack_info
    assert f'key = "{REDACTED}"' in record.stack_info


def test_credential_headers_and_bearer_tokens_are_blanked_without_knowing_them(
    capture: tuple[logging.Logger, Capture],
) -> None:
    logger, handler = capture
    logger.debug("> %s: %s", "Authorization", "Bearer sk-other-0123456789")
    logger.debug("< %s: %s", "X-Twilio-Signature", "c2lnbmF0dXJlPQ==")
    logger.debug("< %s: %s", "OpenAI-Api-Key", "abcdefgh1234")
    logger.debug("< %s: %s", "X-Twilio-Webhooks-Signature-Settings", "v1")
    logger.debug("scope headers %s", [(b"x-twilio-signature", b"c2lnbmF0dXJlPQ==")])
    logger.debug("sending %s", {"authorization": "Bearer token-9876543210"})
    logger.debug("retrying with Bearer tok-1234567890abc after a 401")
    logger.debug("Missing bearer authentication in header")
    assert handler.lines == [
        f"{logger.name} DEBUG > Authorization: {REDACTED}",
        f"{logger.name} DEBUG < X-Twilio-Signature: {REDACTED}",
        f"{logger.name} DEBUG < OpenAI-Api-Key: {REDACTED}",
        f"{logger.name} DEBUG < X-Twilio-Webhooks-Signature-Settings: v1",  # not a credential
        f"{logger.name} DEBUG scope headers [(b'x-twilio-signature', b'{REDACTED}')]",
        f"{logger.name} DEBUG sending {{'authorization': '{REDACTED}'}}",
        f"{logger.name} DEBUG retrying with Bearer {REDACTED} after a 401",
        f"{logger.name} DEBUG Missing bearer authentication in header",  # prose, no token
    ]


def test_a_percent_encoded_secret_is_blanked_and_a_short_one_is_not_looked_for() -> None:
    secret = "pa ss/w+rd=123"
    assert quote(secret, safe="") == "pa%20ss%2Fw%2Brd%3D123"
    logger = logging.getLogger("tests.redaction.encodings")
    handler = Capture(secret, "abc")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("GET /media?token=%s HTTP/1.1", quote(secret, safe=""))
        logger.warning("plain %s", secret)
        logger.warning("the abc of it: abcdef")  # "abc" is below the minimum length
    finally:
        logger.removeHandler(handler)
    assert handler.lines[0].endswith(f"GET /media?token={REDACTED} HTTP/1.1")
    assert handler.lines[1].endswith(f"plain {REDACTED}")
    assert handler.lines[2].endswith("the abc of it: abcdef")


def test_plain_arguments_keep_their_place_for_formatters_that_read_them() -> None:
    from uvicorn.logging import AccessFormatter  # noqa: PLC0415 - the server extra

    logger = logging.getLogger("tests.redaction.access")
    formatter = AccessFormatter(
        '%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    )
    handler = Capture(KEY, formatter=formatter)
    logger.addHandler(handler)
    logger.propagate = False
    access = '%s - "%s %s HTTP/%s" %d'
    try:
        logger.warning(access, "127.0.0.1:5000", "POST", "/incoming-call", "1.1", 200)
        logger.warning(access, "127.0.0.1:5000", "GET", f"/x?token={KEY}", "1.1", 404)
    finally:
        logger.removeHandler(handler)
    assert handler.lines == [
        '127.0.0.1:5000 - "POST /incoming-call HTTP/1.1" 200 OK',
        f'127.0.0.1:5000 - "GET /x?token={REDACTED} HTTP/1.1" 404 Not Found',
    ]
    assert handler.records[1].args == ("127.0.0.1:5000", "GET", f"/x?token={REDACTED}", "1.1", 404)


def test_a_record_that_cannot_be_rendered_is_still_logged_and_clean(
    capture: tuple[logging.Logger, Capture],
) -> None:
    class Broken:
        def __str__(self) -> str:
            raise ValueError(KEY)

    logger, handler = capture
    logger.warning("count %d", f"not a number {KEY}")
    logger.warning("%s", Broken())
    assert len(handler.lines) == 2
    assert_clean(handler.text)
    assert handler.lines[0].endswith(f"count %d ('not a number {REDACTED}',)")
    assert "Broken object at" in handler.lines[1]


def test_registered_secrets_reach_filters_made_by_dict_config() -> None:
    """The server's wiring: a filter made by ``dictConfig``, the secrets registered after."""
    script = textwrap.dedent(
        f"""
        import logging, logging.config
        from voiceguard._redact import add_secrets
        logging.config.dictConfig({{
            "version": 1,
            "filters": {{"secrets": {{"()": "voiceguard._redact.SecretFilter"}}}},
            "handlers": {{"err": {{"class": "logging.StreamHandler", "filters": ["secrets"],
                                   "stream": "ext://sys.stdout"}}}},
            "root": {{"handlers": ["err"], "level": "DEBUG"}},
        }})
        add_secrets(None, "", {KEY!r})
        logging.getLogger("websockets.client").debug("< %s", {KEY.encode()!r})
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout == f"< b'{REDACTED}'\n"
    assert result.stderr == ""


def test_the_registry_adds_each_secret_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(REGISTRY, ())
    add_secrets(KEY, None, "", KEY)
    add_secrets(KEY, "tw-token-0123456789")
    assert registered_secrets() == (KEY, "tw-token-0123456789")
    assert redact_text(f"{KEY} and tw-token-0123456789") == f"{REDACTED} and {REDACTED}"


def test_install_secret_filter_covers_the_handlers_of_the_loggers_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(REGISTRY, ())
    logger = logging.getLogger("tests.redaction.install")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        installed = install_secret_filter([KEY], loggers=[logger.name])
        assert install_secret_filter(loggers=[logger.name]) is not installed
        assert handler.filters == [installed]  # one filter per handler, however often installed
        logging.getLogger(f"{logger.name}.child").warning("< %s", Holder())
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == f"< Holder(token={REDACTED})\n"


def test_the_redacting_logger_renders_frames_before_cleaning_them() -> None:
    logger = logging.getLogger("tests.redaction.adapter")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    adapter = RedactingLogger(logger, (KEY,))
    try:
        adapter.debug("< %s", Frame(Opcode.CLOSE, Close(4000, f"bad key {KEY}").serialize()))
        adapter.debug("> %s: %s", "Authorization", "Bearer sk-other-0123456789")
        try:
            raise OSError(f"reset while sending {KEY}")
        except OSError:
            adapter.debug("! error while sending data", exc_info=True)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert_clean(text)
    assert f"< CLOSE 4000 (private use) bad key {REDACTED}" in text
    assert f"> Authorization: {REDACTED}" in text
    assert f"OSError: reset while sending {REDACTED}" in text


# ============================================================================================
# Traces


def test_a_trace_has_the_secrets_redacted_in_every_kind_of_record(tmp_path: Path) -> None:
    odd = 'pässwört-"quoted"-42'  # escaped in JSON: still found
    recorder = TraceRecorder(tmp_path, audio="full", secrets=[KEY, odd, "1234567890123"])
    start = json.dumps({"event": "start", "start": {"callSid": "CA1", "streamSid": "MZ1"}})
    recorder.start(start, 1.0, call_sid="CA1", stream_sid="MZ1")
    recorder.received("model", ERROR_EVENT, 1.1)
    recorder.received("model", f"not json {odd}", 1.2)
    recorder.received("model", json.dumps({"type": "x", "n": 1234567890123}), 1.25)
    recorder.bad("model", "x" * 180 + KEY, 1.3)  # cut at 200 characters: after blanking
    recorder.sent("model", {"type": "session.update", "session": {"instructions": KEY}}, 1.4)
    recorder.action("hang_up", 1.5, reason=f"goodbye {KEY}")
    recorder.decision(
        Decision(action=Action.CANCEL, verdict=Verdict.SUPPRESS, reason=Reason.OK, detail=KEY)
    )
    recorder.end(1.6, ended_by=f"model closed: {KEY}")
    assert recorder.error is None
    assert recorder.path is not None
    text = recorder.path.read_text(encoding="utf-8")
    assert_clean(text)
    assert KEY[:20] not in text
    assert odd not in text
    assert json.dumps(odd)[1:-1] not in text
    assert "1234567890123" not in text
    trace = load_trace(recorder.path)  # every line still valid JSON and a valid record
    records = list(trace.records)
    message = records[1]["msg"]["error"]["message"]
    assert message == f"Incorrect API key provided: {REDACTED}. Find your key in the dashboard."
    assert records[2]["text"] == f"not json {REDACTED}"
    assert records[3]["msg"] == {"type": "x", "n": REDACTED}
    assert records[4]["problem"] == "x" * 180 + REDACTED
    assert records[-1]["ended_by"] == f"model closed: {REDACTED}"
    assert text.count(REDACTED) == 8


def test_a_trace_redacts_registered_secrets_and_keeps_audio_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(REGISTRY, ())
    recorder = TraceRecorder(tmp_path, audio="full")
    add_secrets(KEY)  # after the recorder was made: read at every record
    media = {"event": "media", "media": {"track": "outbound", "payload": "//79/w=="}}
    recorder.start('{"event": "start"}', 1.0, call_sid="CA1", stream_sid="MZ1")
    recorder.sent("phone", media, 1.1)
    recorder.received("model", ERROR_EVENT, 1.2)
    recorder.close()
    assert recorder.path is not None
    records = list(load_trace(recorder.path).records)
    assert records[1]["msg"] == media
    assert KEY not in json.dumps(records)
    assert REDACTED in records[2]["msg"]["error"]["message"]


# ============================================================================================
# A call over real sockets


SESSION_CREATED = json.dumps(
    {
        "type": "session.created",
        "event_id": "event_0",
        "session": {
            "type": "realtime",
            "object": "realtime.session",
            "id": "sess_1",
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None},
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
            },
        },
    }
)


class EchoingModel:
    """A model endpoint that opens the session as the Realtime API does, then answers
    ``session.update`` with the key, twice: in an error event and in the reason it closes with.
    """

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    async def handle(self, transport: WebSocketTransport) -> None:
        assert transport.request is not None
        self.headers = dict(transport.request.headers)
        await transport.send(SESSION_CREATED)
        while json.loads(await transport.receive()).get("type") != "session.update":
            pass
        await transport.send(ERROR_EVENT)
        await transport.aclose(4000, f"invalid key {KEY}")


def twilio_start() -> list[str]:
    start = {
        "accountSid": "AC" + "0" * 32,
        "streamSid": "MZ1",
        "callSid": "CA1",
        "tracks": ["inbound"],
        "customParameters": {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    return [
        json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": start}),
    ]


async def closed(transport: WebSocketTransport) -> TransportClosed:
    """Read *transport* until it closes."""
    while True:
        try:
            await transport.receive()
        except TransportClosed as exc:
            return exc


@pytest.fixture
def every_log() -> Iterator[Capture]:
    """Every record of every logger at DEBUG, through a handler with the filter."""
    with every_record(Capture(KEY)) as capture:
        yield capture


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # connect_realtime runs on asyncio only
async def test_a_key_echoed_by_the_model_reaches_no_log_and_no_trace(
    tmp_path: Path, every_log: Capture
) -> None:
    model = EchoingModel()
    summaries: list[CallSummary] = []
    recorders: list[TraceRecorder] = []

    async def handle_phone(phone: WebSocketTransport) -> None:
        def connect_model(_start: StreamStarted) -> AbstractAsyncContextManager[Transport]:
            return connect_realtime(model_url, api_key=KEY)

        recorders.append(TraceRecorder(tmp_path, secrets=[KEY]))
        summaries.append(await MediaHandler(phone, connect_model, trace=recorders[-1]).run())

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            model_port = await tg.start(
                lambda task_status: serve_websocket(model.handle, task_status=task_status)
            )
            model_url = f"ws://127.0.0.1:{model_port}/v1/realtime?model=gpt-realtime"
            phone_port = await tg.start(
                lambda task_status: serve_websocket(handle_phone, task_status=task_status)
            )
            async with connect_websocket(f"ws://127.0.0.1:{phone_port}/media-stream") as twilio:
                for text in twilio_start():
                    await twilio.send(text)
                await closed(twilio)  # the handler hangs up once the model is gone
            while not summaries:
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()

    (summary,) = summaries
    assert "4000" in summary.ended_by  # the model's close ended the call
    assert dict(summary.model_errors) == {"invalid_api_key": 1}
    assert model.headers["authorization"] == f"Bearer {KEY}"  # the key was really sent
    # The logs: the handler's warning, the frames both ends logged at DEBUG, the headers.
    assert_clean(every_log.text)
    for record in every_log.records:
        assert_clean(repr(vars(record)))
    warnings = [r.getMessage() for r in every_log.records if r.levelno >= logging.WARNING]
    assert any(f"Incorrect API key provided: {REDACTED}." in text for text in warnings)
    assert any(f"CLOSE 4000 (private use) invalid key {REDACTED}" in x for x in every_log.lines)
    assert any(f"Authorization: {REDACTED}" in line for line in every_log.lines)
    # The trace.
    (recorder,) = recorders
    assert recorder.path is not None
    text = recorder.path.read_text(encoding="utf-8")
    assert_clean(text)
    assert REDACTED in text
    assert "4000" in load_trace(recorder.path).records[-1]["ended_by"]
