"""The reference server's ASGI app: Twilio Media Streams in, the OpenAI Realtime API out.

An ASGI app (Starlette) with four endpoints; ``voiceguard serve`` (:mod:`voiceguard.server.serve`)
runs it under uvicorn:

* ``POST /incoming-call``: Twilio's voice webhook. Answers TwiML that connects the call to
  ``wss://<public host>/media-stream``.
* WebSocket ``/media-stream``: one :class:`~voiceguard.MediaHandler` per call, each
  in its own task: an exception in one call is logged with its call SID and never reaches another
  call or the server.
* ``GET /healthz``: 200 while the server can take another call, 503 when it is full (a media
  stream past the limit is closed at once with 1013, "try again later").
* ``GET /metrics``: Prometheus text (calls, malformed messages, model errors, guard decisions),
  from a registry of the app's own.

With a Twilio auth token configured, every webhook and every media stream must carry a valid
``X-Twilio-Signature`` (HMAC-SHA1 over the public URL; see
:func:`~voiceguard.server.compute_twilio_signature`), or it is refused (403) before any model
session is opened.

Needs the ``server`` extra: ``pip install 'voiceguard[server]'``. The module itself imports none
of it, so ``voiceguard --help`` works without it.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, final
from urllib.parse import parse_qsl

import voiceguard
from voiceguard.errors import LocalProtocolError
from voiceguard.observe.trace import TraceRecorder
from voiceguard.protocol import StreamStarted, connect_stream_twiml
from voiceguard.runtime.handler import MediaHandler, ModelConnector
from voiceguard.server.config import INCOMING_CALL_PATH, MEDIA_STREAM_PATH, ServerConfig
from voiceguard.server.metrics import ServerMetrics
from voiceguard.server.parameters import check_custom_parameters
from voiceguard.server.signatures import SIGNATURE_HEADER, validate_twilio_signature
from voiceguard.transports import StarletteWebSocketTransport, connect_realtime

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import starlette.applications
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

    from voiceguard.server.options import DEFAULT_REALTIME_URL
    from voiceguard.server.serve import add_serve_command, serving
    from voiceguard.server.signatures import compute_twilio_signature
    from voiceguard.transports import Transport

__all__ = (
    "DEFAULT_REALTIME_URL",
    "ServerConfig",
    "add_serve_command",
    "app_from_env",
    "check_custom_parameters",
    "compute_twilio_signature",
    "create_app",
    "serving",
    "validate_twilio_signature",
)

logger = logging.getLogger("voiceguard.server")

_MAX_FORM_FIELDS: Final = 1000
_POLICY_VIOLATION: Final = 1008
_TRY_AGAIN_LATER: Final = 1013
#: Names this module held before the server was split by concern, and the modules that hold
#: them now (looked up lazily: ``voiceguard.server.serve`` imports this module).
_MOVED: Final = {
    "DEFAULT_REALTIME_URL": "voiceguard.server.options",
    "MAX_CUSTOM_PARAMETERS": "voiceguard.server.parameters",
    "MAX_CUSTOM_PARAMETER_CHARS": "voiceguard.server.parameters",
    "add_serve_command": "voiceguard.server.serve",
    "compute_twilio_signature": "voiceguard.server.signatures",
    "serving": "voiceguard.server.serve",
}


@final
class _Server:
    """What the endpoints share: the config, the metrics and the number of calls running."""

    def __init__(self, config: ServerConfig, connect_model: ModelConnector | None) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        self.active = 0
        self.connect_model: ModelConnector = self._checked(connect_model or self._connect_realtime)

    def _checked(self, connect: ModelConnector) -> ModelConnector:
        """*connect*, after the call's custom parameters passed the checks."""
        allowed = self.config.allowed_parameters

        def checked(start: StreamStarted) -> AbstractAsyncContextManager[Transport]:
            check_custom_parameters(start.custom_parameters, allowed=allowed)
            return connect(start)

        return checked

    def _connect_realtime(self, start: StreamStarted) -> AbstractAsyncContextManager[Transport]:
        config = self.config
        return connect_realtime(
            config.realtime_url, api_key=config.api_key, beta=config.realtime_beta
        )

    def webhook_url(self, request: Request) -> str:
        if self.config.public_url is not None:
            query = request.url.query
            return self.config.public_url + INCOMING_CALL_PATH + (f"?{query}" if query else "")
        return str(request.url)

    def websocket_url(self, websocket: WebSocket) -> str:
        if self.config.public_url is not None:
            return self.config.stream_url()
        host = websocket.headers.get("host", "localhost")
        return f"wss://{host}{websocket.url.path}"

    # ------------------------------------------------------------------ endpoints

    async def incoming_call(self, request: Request) -> Response:
        from starlette.responses import PlainTextResponse, Response  # noqa: PLC0415

        params: dict[str, list[str]] = {}
        if request.method == "POST":
            body = await _read_body(request, self.config.max_body_bytes)
            if body is None:
                self.metrics.refused.labels(INCOMING_CALL_PATH, "body too large").inc()
                return PlainTextResponse(
                    f"request body over {self.config.max_body_bytes} bytes\n", status_code=413
                )
            try:
                pairs = parse_qsl(
                    body.decode("utf-8", "replace"),
                    keep_blank_values=True,
                    max_num_fields=_MAX_FORM_FIELDS,
                )
            except ValueError:
                self.metrics.refused.labels(INCOMING_CALL_PATH, "bad form").inc()
                return PlainTextResponse("malformed form body\n", status_code=400)
            for name, value in pairs:
                params.setdefault(name, []).append(value)
        token = self.config.twilio_auth_token
        if token is not None:
            url = self.webhook_url(request)
            signature = request.headers.get(SIGNATURE_HEADER)
            if not validate_twilio_signature(token, url, params, signature):
                self.metrics.refused.labels(INCOMING_CALL_PATH, "signature").inc()
                logger.warning(
                    "webhook refused: %s X-Twilio-Signature for %s",
                    "invalid" if signature else "missing",
                    url,
                )
                return PlainTextResponse("invalid or missing X-Twilio-Signature\n", 403)
        try:
            twiml = connect_stream_twiml(self.config.stream_url(request.headers.get("host")))
        except LocalProtocolError as exc:
            self.metrics.refused.labels(INCOMING_CALL_PATH, "bad host").inc()
            logger.warning("cannot build the stream URL: %s", exc)
            return PlainTextResponse(
                "cannot build the media stream URL from the Host header; configure the public "
                "URL (--public-url)\n",
                status_code=400,
            )
        return Response(twiml, media_type="application/xml")

    async def media_stream(self, websocket: WebSocket) -> None:
        token = self.config.twilio_auth_token
        if token is not None:
            url = self.websocket_url(websocket)
            signature = websocket.headers.get(SIGNATURE_HEADER)
            if not validate_twilio_signature(token, url, None, signature):
                self.metrics.refused.labels(MEDIA_STREAM_PATH, "signature").inc()
                logger.warning(
                    "media stream refused: %s X-Twilio-Signature for %s",
                    "invalid" if signature else "missing",
                    url,
                )
                # Closed before the upgrade is accepted: the ASGI server answers 403.
                await websocket.close(_POLICY_VIOLATION, "invalid or missing X-Twilio-Signature")
                return
        if self.active >= self.config.max_calls:
            self.metrics.refused.labels(MEDIA_STREAM_PATH, "capacity").inc()
            logger.warning("media stream refused: %d calls running (the limit)", self.active)
            # Accepted, then closed with 1013 "try again later": a close every client
            # understands (an HTTP 503 before the upgrade makes uvicorn log an error).
            await websocket.accept()
            await websocket.close(_TRY_AGAIN_LATER, f"at capacity ({self.config.max_calls} calls)")
            return
        self.active += 1
        self.metrics.active.inc()
        try:
            await self._run_call(websocket)
        finally:
            self.active -= 1
            self.metrics.active.dec()

    async def _run_call(self, websocket: WebSocket) -> None:
        phone: StarletteWebSocketTransport | None = None
        handler: MediaHandler | None = None
        try:
            await websocket.accept()
            self.metrics.started.inc()
            phone = StarletteWebSocketTransport(
                websocket, max_message_bytes=self.config.max_message_bytes
            )
            trace = (
                TraceRecorder(
                    self.config.trace_dir, audio="full" if self.config.trace_audio else "summary"
                )
                if self.config.trace_dir is not None
                else None
            )
            handler = MediaHandler(
                phone, self.connect_model, config=self.config.handler, trace=trace
            )
            summary = await handler.run()
        except Exception:  # one call's failure must never reach another call or the server
            sid = handler.core.state.call_sid if handler is not None else None
            logger.exception(
                "call %s failed; the server and the other calls go on",
                sid or "(before start)",
                extra={"call_sid": sid},
            )
            self.metrics.ended.labels("server error").inc()
            if phone is not None:
                if sum(phone.refused.values()):
                    self.metrics.bad_messages.labels("twilio").inc(sum(phone.refused.values()))
                await phone.aclose(1011, "internal error")
            return
        self.metrics.record(summary, phone.refused)
        bad = {**summary.bad_messages}
        for count in phone.refused.values():
            bad["twilio"] = bad.get("twilio", 0) + count
        logger.info(
            "call %s ended after %.1f s: %s; malformed messages %s; model errors %s",
            summary.call_sid or "(no start)",
            summary.duration,
            summary.ended_by,
            _counts(bad),
            _counts(summary.model_errors),
            extra={"call_sid": summary.call_sid},
        )

    async def healthz(self, request: Request) -> Response:
        from starlette.responses import JSONResponse  # noqa: PLC0415

        ok = self.active < self.config.max_calls
        return JSONResponse(
            {
                "status": "ok" if ok else "full",
                "active_calls": self.active,
                "max_calls": self.config.max_calls,
            },
            status_code=200 if ok else 503,
        )

    async def metrics_text(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415
        from starlette.responses import Response  # noqa: PLC0415

        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _counts(counts: Mapping[str, int]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{key}={value}" for key, value in sorted(counts.items()))


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None if it is over *limit* bytes (checked before reading it all)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    config: ServerConfig | None = None, *, connect_model: voiceguard.ModelConnector | None = None
) -> starlette.applications.Starlette:
    """Build the reference server's ASGI app.

    Each app has its own metrics registry and call counter, so several apps (tests, or one per
    port) never share state.

    Args:
        config: The server's configuration; None uses the defaults (and no API key).
        connect_model: Opens the model connection of a call (a
            :data:`~voiceguard.ModelConnector`); None connects to
            :attr:`ServerConfig.realtime_url` with
            :func:`~voiceguard.transports.production.connect_realtime`.

    Returns:
        The Starlette app: mount it, or run it with any ASGI server that speaks WebSockets.
    """
    from starlette.applications import Starlette  # noqa: PLC0415 - the server extra
    from starlette.routing import Route, WebSocketRoute  # noqa: PLC0415

    server = _Server(config if config is not None else ServerConfig(), connect_model)
    app = Starlette(
        routes=[
            Route(INCOMING_CALL_PATH, server.incoming_call, methods=["POST", "GET"]),
            WebSocketRoute(MEDIA_STREAM_PATH, server.media_stream),
            Route("/healthz", server.healthz, methods=["GET"]),
            Route("/metrics", server.metrics_text, methods=["GET"]),
        ]
    )
    app.state.voiceguard = server
    return app


def app_from_env() -> starlette.applications.Starlette:
    """Build the app from the environment (:meth:`ServerConfig.from_environ`).

    The factory ``voiceguard serve --workers N`` gives uvicorn
    (``uvicorn --factory voiceguard.server:app_from_env``): each worker process builds its own.

    Returns:
        The app.
    """
    return create_app(ServerConfig.from_environ())


def __getattr__(name: str) -> object:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
