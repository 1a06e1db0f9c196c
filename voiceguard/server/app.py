"""The reference server's ASGI app: Twilio Media Streams in, the OpenAI Realtime API out.

An ASGI app (Starlette) with four endpoints; ``voiceguard serve`` (:mod:`voiceguard.server.serve`)
runs it under uvicorn:

* ``POST /incoming-call``: Twilio's voice webhook. Answers TwiML that connects the call to
  ``wss://<public host>/media-stream`` (with the call's stream token as a ``<Parameter>`` when
  signatures are checked).
* WebSocket ``/media-stream``: one :class:`~voiceguard.MediaHandler` per call, each
  in its own task: an exception in one call is logged with its call SID and never reaches another
  call or the server. A stream is a call from Twilio's ``start`` on; before it, it is *pending*
  (its own cap, :attr:`ServerConfig.max_pending_streams`; the one pending longest makes room).
* ``GET /healthz``: 200 while the server can take another call, 503 when it is full (a media
  stream past the limit is closed at once with 1013, "try again later") or draining
  (:mod:`voiceguard.server.drain`: a new media stream is closed with 1012, "service restart").
* ``GET /metrics``: Prometheus text (calls, malformed messages, model errors, guard decisions,
  counted as they are made), from a registry of the app's own; behind a bearer token when one is
  configured.

An app built with a shared directory (``voiceguard serve --workers N`` builds one in each worker)
counts with the other processes there: ``/metrics`` shows the sums over every worker
(:mod:`voiceguard.server.metrics`), and the call limit and ``/healthz`` are the whole server's
(:mod:`voiceguard.server.capacity`).

With a Twilio auth token configured, every webhook and every media stream must carry a valid
``X-Twilio-Signature`` (see :func:`~voiceguard.server.validate_twilio_signature`), or it is
refused (403) before any model session is opened; and a stream must bring its call's stream
token (:mod:`voiceguard.server.tokens`), so a replayed signature opens nothing.

Needs the ``server`` extra: ``pip install 'voiceguard[server]'``. The module itself imports none
of it, so ``voiceguard --help`` works without it.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import hmac
import importlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Final, final
from urllib.parse import parse_qsl, urlsplit

import anyio

import voiceguard
from voiceguard._redact import add_secrets
from voiceguard.errors import CallRefused, LocalProtocolError
from voiceguard.observe.trace import TraceRecorder
from voiceguard.protocol import StreamStarted, stream_answer
from voiceguard.protocol._dialect import DialectTransport
from voiceguard.runtime._model_token import bearer_token
from voiceguard.runtime.handler import MediaHandler, ModelConnector
from voiceguard.server.config import INCOMING_CALL_PATH, MEDIA_STREAM_PATH, ServerConfig
from voiceguard.server.drain import Drain
from voiceguard.server.metrics import MULTIPROCESS_ENV, ServerMetrics
from voiceguard.server.parameters import check_custom_parameters
from voiceguard.server.signatures import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    signature_algorithm,
    validate_twilio_signature,
)
from voiceguard.server.tokens import STREAM_TOKEN_PARAMETER, StreamTokens
from voiceguard.transports import StarletteWebSocketTransport, connect_realtime

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import starlette.applications
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

    from voiceguard.server.capacity import CallCounts, SharedCalls
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
_SERVICE_RESTART: Final = 1012
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
    """What the endpoints share: the config, the metrics, the calls running and the streams
    waiting for their ``start``."""

    def __init__(
        self,
        config: ServerConfig,
        connect_model: ModelConnector | None,
        shared_dir: str | None = None,
    ) -> None:
        self.config = config
        self.metrics = ServerMetrics(directory=shared_dir)
        self.shared: SharedCalls | None = None  # the other workers' calls, with a shared_dir
        if shared_dir is not None:
            from voiceguard.server.capacity import SharedCalls  # noqa: PLC0415 - fcntl: POSIX

            self.shared = SharedCalls(shared_dir)
        self.calls: set[object] = set()  # streams past Twilio's start
        self.pending: dict[object, anyio.CancelScope] = {}  # streams before it, oldest first
        self.handlers: dict[object, MediaHandler] = {}  # every stream's, started or not
        self.drain = Drain(config.drain_timeout)
        self.connect: ModelConnector = connect_model or self._connect_realtime
        token = config.twilio_auth_token
        self.tokens = (
            StreamTokens(token, lifetime=config.stream_token_lifetime)
            if token is not None and config.stream_tokens
            else None
        )
        add_secrets(config.api_key, token, config.metrics_token)

    def _admit(self, key: object) -> ModelConnector:
        """The connector of one stream: at its ``start``, the stream becomes a call if the server
        has room, its token is this call's and its custom parameters pass the checks."""
        config = self.config

        def admit(start: StreamStarted) -> AbstractAsyncContextManager[Transport]:
            self.pending.pop(key, None)
            self.pending_changed()
            if not self.take_place():
                self.metrics.refused.labels(MEDIA_STREAM_PATH, "capacity").inc()
                raise CallRefused(f"at capacity ({config.max_calls} calls)", close_code=1013)
            try:
                parameters = start.custom_parameters
                if self.tokens is not None:
                    try:
                        self.tokens.check(parameters, start.call_sid, start.account_sid)
                    except CallRefused:
                        self.metrics.refused.labels(MEDIA_STREAM_PATH, "stream token").inc()
                        raise
                    parameters = {
                        k: v for k, v in parameters.items() if k != STREAM_TOKEN_PARAMETER
                    }
                check_custom_parameters(parameters, allowed=config.allowed_parameters)
            except BaseException:
                if self.shared is not None:
                    self.shared.release()  # the place taken is free again
                raise
            self.calls.add(key)
            self.metrics.active.inc()
            self.metrics.started.inc()
            return self.connect(start)

        return admit

    def take_place(self) -> bool:
        """Count a call if the server has room: this app's calls, or with a shared directory
        every worker's, atomically across them."""
        if self.shared is None:
            return len(self.calls) < self.config.max_calls
        return self.shared.admit(self.config.max_calls)

    def pending_changed(self) -> None:
        self.metrics.pending.set(len(self.pending))
        if self.shared is not None:
            self.shared.set_pending(len(self.pending))

    def counts(self) -> CallCounts | None:
        """The whole server's calls and waiting streams, with a shared directory."""
        return self.shared.totals() if self.shared is not None else None

    @asynccontextmanager
    async def _connect_realtime(self, start: StreamStarted) -> AsyncIterator[Transport]:
        config = self.config
        provider = config.provider
        token = None if config.model_token is None else await bearer_token(config.model_token)
        headers = provider.headers(api_key=config.api_key, token=token)
        async with connect_realtime(config.model_url, api_key=None, headers=dict(headers)) as model:
            yield model

    def host_refused(self, headers: Mapping[str, str]) -> bool:
        """Whether the request's ``Host`` is not one :attr:`ServerConfig.allowed_hosts` allows
        (checked only without a public URL: with one, the Host is never used)."""
        allowed = self.config.allowed_hosts
        if allowed is None or self.config.public_url is not None:
            return False
        return _host_name(headers.get("host", "")) not in allowed

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
        if self.host_refused(request.headers):
            self.metrics.refused.labels(INCOMING_CALL_PATH, "host").inc()
            return PlainTextResponse("unknown Host; see --allowed-hosts\n", status_code=400)
        if request.method == "POST":
            body: bytes | None = b""
            with anyio.move_on_after(self.config.request_timeout) as reading:
                body = await _read_body(request, self.config.max_body_bytes)
            if reading.cancelled_caught:
                self.metrics.refused.labels(INCOMING_CALL_PATH, "slow body").inc()
                return PlainTextResponse(
                    f"request body not received within {self.config.request_timeout:g} s\n",
                    status_code=408,
                )
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
            algorithm = signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
            if not validate_twilio_signature(token, url, params, signature, algorithm=algorithm):
                self.metrics.refused.labels(INCOMING_CALL_PATH, "signature").inc()
                logger.warning(
                    "webhook refused: %s X-Twilio-Signature for %s",
                    "invalid" if signature else "missing",
                    url,
                )
                return PlainTextResponse("invalid or missing X-Twilio-Signature\n", 403)
        parameters: dict[str, str] = {}
        if self.tokens is not None:  # a GET webhook names the call in its query string
            query = request.query_params
            call_sid = (params.get("CallSid") or [query.get("CallSid", "")])[0]
            account_sid = (params.get("AccountSid") or [query.get("AccountSid", "")])[0]
            parameters[STREAM_TOKEN_PARAMETER] = self.tokens.issue(call_sid, account_sid)
        uuid = request.query_params.get("uuid")
        if self.config.phone_dialect.name == "vonage" and uuid:
            parameters["uuid"] = uuid  # Vonage's call id, back in the stream's first message
        try:
            stream_url = self.config.stream_url(request.headers.get("host"))
            twiml = stream_answer(self.config.phone_dialect, stream_url, parameters)
        except LocalProtocolError as exc:
            self.metrics.refused.labels(INCOMING_CALL_PATH, "bad host").inc()
            logger.warning("cannot build the stream URL: %s", exc)
            return PlainTextResponse(
                "cannot build the media stream URL from the Host header; configure the public "
                "URL (--public-url)\n",
                status_code=400,
            )
        return Response(twiml, media_type=self.config.phone_dialect.answer_type)

    async def media_stream(self, websocket: WebSocket) -> None:
        if self.host_refused(websocket.headers):
            self.metrics.refused.labels(MEDIA_STREAM_PATH, "host").inc()
            await websocket.close(_POLICY_VIOLATION, "unknown Host")
            return
        token = self.config.twilio_auth_token
        if token is not None:
            url = self.websocket_url(websocket)
            signature = websocket.headers.get(SIGNATURE_HEADER)
            algorithm = signature_algorithm(websocket.headers.get(SIGNATURE_SETTINGS_HEADER))
            if not validate_twilio_signature(token, url, None, signature, algorithm=algorithm):
                self.metrics.refused.labels(MEDIA_STREAM_PATH, "signature").inc()
                logger.warning(
                    "media stream refused: %s X-Twilio-Signature for %s",
                    "invalid" if signature else "missing",
                    url,
                )
                # Closed before the upgrade is accepted: the ASGI server answers 403.
                await websocket.close(_POLICY_VIOLATION, "invalid or missing X-Twilio-Signature")
                return
        if self.drain.draining:
            self.metrics.refused.labels(MEDIA_STREAM_PATH, "draining").inc()
            logger.info("media stream refused: the server is draining")
            await websocket.accept()
            await websocket.close(_SERVICE_RESTART, "the server is draining; try another")
            return
        counts = self.counts()
        running = len(self.calls) if counts is None else counts.calls
        if running >= self.config.max_calls:
            self.metrics.refused.labels(MEDIA_STREAM_PATH, "capacity").inc()
            logger.warning("media stream refused: %d calls running (the limit)", running)
            # Accepted, then closed with 1013 "try again later": a close every client
            # understands (an HTTP 503 before the upgrade makes uvicorn log an error).
            await websocket.accept()
            await websocket.close(_TRY_AGAIN_LATER, f"at capacity ({self.config.max_calls} calls)")
            return
        key = object()
        with anyio.CancelScope() as waiting:
            # Until its start the stream is pending, not a call: it holds no call slot, and
            # the one pending longest makes room when too many are.
            self.pending[key] = waiting
            while len(self.pending) > self.config.max_pending_streams:
                oldest = next(iter(self.pending))
                self.pending.pop(oldest).cancel()
                self.metrics.refused.labels(MEDIA_STREAM_PATH, "too many pending").inc()
            self.pending_changed()
            try:
                await self._run_call(websocket, key)
            finally:
                self.handlers.pop(key, None)
                self.pending.pop(key, None)
                self.pending_changed()
                if key in self.calls:
                    self.calls.discard(key)
                    self.metrics.active.dec()
                    if self.shared is not None:
                        self.shared.release()
        if waiting.cancelled_caught:
            logger.info(
                "media stream closed before its start: more than %d streams waiting to start",
                self.config.max_pending_streams,
            )
            with anyio.CancelScope(shield=True), anyio.move_on_after(1), suppress(Exception):
                await websocket.close(_TRY_AGAIN_LATER, "too many streams waiting to start")

    async def _run_call(self, websocket: WebSocket, key: object) -> None:
        """Run one media stream (a call once it passed its start)."""
        phone: StarletteWebSocketTransport | None = None
        handler: MediaHandler | None = None
        try:
            await websocket.accept()
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
            dialect = self.config.phone_dialect
            handler = MediaHandler(
                phone if dialect.is_twilio else DialectTransport(phone, dialect),
                self._admit(key),
                config=self.config.handler,
                trace=trace,
                on_decision=self.metrics.decided,  # counted as decided, not at the call's end
                provider=self.config.provider,
            )
            self.handlers[key] = handler
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

    def bearer(self, request: Request) -> bool:
        """Whether the request brings the metrics token (or none is configured)."""
        token = self.config.metrics_token
        if token is None:
            return True
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode("utf-8", "replace"), token.encode("utf-8")
        )

    async def healthz(self, request: Request) -> Response:
        from starlette.responses import JSONResponse  # noqa: PLC0415

        draining = self.drain.draining
        counts = self.counts()  # with workers, the whole server's
        calls = len(self.calls) if counts is None else counts.calls
        ok = calls < self.config.max_calls and not draining
        body: dict[str, object] = {"status": "draining" if draining else "ok" if ok else "full"}
        if self.bearer(request):  # the counts only to those who may see the metrics
            body |= {
                "active_calls": calls,
                "max_calls": self.config.max_calls,
                "pending_streams": len(self.pending) if counts is None else counts.pending,
            }
            if self.shared is not None:
                body["worker"] = {
                    "pid": self.shared.pid,
                    "active_calls": len(self.calls),
                    "pending_streams": len(self.pending),
                }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_text(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415
        from starlette.responses import PlainTextResponse, Response  # noqa: PLC0415

        if not self.bearer(request):
            self.metrics.refused.labels("/metrics", "no token").inc()
            return PlainTextResponse(
                "Authorization: Bearer <VOICEGUARD_METRICS_TOKEN> needed\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _host_name(host: str) -> str:
    """The host name of a ``Host`` header, lower case, without its port."""
    try:
        name = urlsplit("//" + host).hostname
    except ValueError:
        return ""
    return (name or "").lower()


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
    config: ServerConfig | None = None,
    *,
    connect_model: voiceguard.ModelConnector | None = None,
    shared_dir: str | None = None,
) -> starlette.applications.Starlette:
    """Build the reference server's ASGI app.

    Each app has its own metrics registry and call counter, so several apps (tests, or one per
    port) never share state; unless built with a *shared_dir*.

    Args:
        config: The server's configuration; None uses the defaults (and no API key).
        connect_model: Opens the model connection of a call (a
            :data:`~voiceguard.ModelConnector`); None connects to
            :attr:`ServerConfig.realtime_url`, signed in as its
            :attr:`~ServerConfig.model_provider` takes it, with
            :func:`~voiceguard.transports.production.connect_realtime`.
        shared_dir: For one app in each of several processes serving as one server (the
            workers of ``voiceguard serve --workers N``): the directory they share, which
            ``PROMETHEUS_MULTIPROC_DIR`` names (prometheus_client's multiprocess mode, set
            before it is imported). ``/metrics`` then shows the sums over every process, and
            :attr:`ServerConfig.max_calls` and ``/healthz`` count every process's calls
            (:mod:`voiceguard.server.capacity`). One such app per process. None: this app
            alone.

            .. versionadded:: 0.2.0

    Returns:
        The Starlette app: mount it, or run it with any ASGI server that speaks WebSockets.

    Raises:
        ConfigError: If *shared_dir* is not the directory of prometheus_client's
            multiprocess mode.
    """
    from starlette.applications import Starlette  # noqa: PLC0415 - the server extra
    from starlette.routing import Route, WebSocketRoute  # noqa: PLC0415

    server = _Server(config if config is not None else ServerConfig(), connect_model, shared_dir)
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

    The factory of the workers of ``voiceguard serve --workers N``
    (``uvicorn --factory voiceguard.server:app_from_env``): each worker process builds its own.
    With ``PROMETHEUS_MULTIPROC_DIR`` set (``voiceguard serve`` sets it for its workers), the
    app shares that directory with the other workers (``shared_dir`` of :func:`create_app`):
    metrics, the call limit and ``/healthz`` are the whole server's.

    Returns:
        The app.

    .. versionchanged:: 0.2.0
        ``PROMETHEUS_MULTIPROC_DIR`` makes the app count with the other workers.
    """
    return create_app(
        ServerConfig.from_environ(), shared_dir=os.environ.get(MULTIPROCESS_ENV) or None
    )


def __getattr__(name: str) -> object:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
