"""The reference server: Twilio Media Streams in, the OpenAI Realtime API out, every call guarded.

An ASGI app (Starlette) with four endpoints, and the ``voiceguard serve`` command that runs it
under uvicorn:

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
``X-Twilio-Signature`` (HMAC-SHA1 over the public URL; see :func:`compute_twilio_signature`), or it
is refused (403) before any model session is opened.

Needs the ``server`` extra: ``pip install 'voiceguard[server]'``. The module itself imports none
of it, so ``voiceguard --help`` works without it.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import anyio

import voiceguard
from voiceguard.config import BridgeConfig, HandlerConfig
from voiceguard.decisions import Reason, Verdict
from voiceguard.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from voiceguard.observe.trace import TraceRecorder
from voiceguard.protocol import StreamStarted, connect_stream_twiml
from voiceguard.runtime.handler import CallSummary, MediaHandler, ModelConnector
from voiceguard.transports import (
    DEFAULT_MAX_PHONE_MESSAGE_BYTES,
    StarletteWebSocketTransport,
    connect_realtime,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import starlette.applications
    from prometheus_client import CollectorRegistry
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

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

#: The OpenAI Realtime endpoint used unless another URL is configured.
DEFAULT_REALTIME_URL: Final = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
#: Where Twilio posts the voice webhook.
INCOMING_CALL_PATH: Final = "/incoming-call"
#: Where Twilio opens the media stream.
MEDIA_STREAM_PATH: Final = "/media-stream"

_DEFAULT_HOST: Final = "127.0.0.1"
_DEFAULT_PORT: Final = 5050
_DEFAULT_MAX_CALLS: Final = 100
_DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024
_MAX_FORM_FIELDS: Final = 1000
_SHUTDOWN_GRACE: Final = 5
_SIGNATURE_HEADER: Final = "x-twilio-signature"
_POLICY_VIOLATION: Final = 1008
_TRY_AGAIN_LATER: Final = 1013
_LOG_LEVELS: Final = ("critical", "error", "warning", "info", "debug")
#: Limits on a call's ``start.customParameters`` (the TwiML ``<Parameter>`` values).
MAX_CUSTOM_PARAMETERS: Final = 32
MAX_CUSTOM_PARAMETER_CHARS: Final = 1024
_PARAMETER_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")


# ============================================================================================
# Twilio request signatures (PROTOCOLS.md section 6e)


def compute_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str | Sequence[str]] | None = None
) -> str:
    """Twilio's ``X-Twilio-Signature`` of a request: Base64(HMAC-SHA1(token, URL + params)).

    The signed string is the full URL as Twilio requested it (a GET's query string included),
    followed by each POST parameter's name and value, names sorted, and a repeated name's values
    sorted (duplicates counted once), exactly as ``twilio.request_validator.RequestValidator``
    computes it. A media stream's upgrade request is signed over its ``wss://`` URL with no
    parameters.

    Args:
        auth_token: The Twilio account's auth token.
        url: The full URL, e.g. ``https://voice.example.com/incoming-call``.
        params: The form parameters of a POST; a name may map to several values.

    Returns:
        The signature, Base64.
    """
    signed = url
    for name in sorted(set(params or {})):
        value = (params or {})[name]
        values = [value] if isinstance(value, str) else list(value)
        for item in sorted(set(values)):
            signed += name + item
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """The URL as given, without its port, and with the scheme's default port (as Twilio's
    validator tries them: which one Twilio signed depends on how the URL was configured)."""
    parts = urlsplit(url)
    out = [url]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if parts.port is not None:
        out.append(urlunsplit(parts._replace(netloc=prefix + host)))
    else:
        default = 443 if parts.scheme in ("https", "wss") else 80
        out.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    return out


def validate_twilio_signature(
    auth_token: str,
    url: str,
    params: Mapping[str, str | Sequence[str]] | None,
    signature: str | None,
) -> bool:
    """Whether *signature* is Twilio's signature of the request (compared in constant time).

    The URL is tried as given, without its port and with the scheme's default port, as
    Twilio's own validator does.

    Args:
        auth_token: The Twilio account's auth token.
        url: The full public URL of the request, as Twilio requested it.
        params: The form parameters of a POST (None or empty for a GET or a WebSocket upgrade).
        signature: The ``X-Twilio-Signature`` header; None or empty is never valid.

    Returns:
        True if the signature matches.
    """
    if not signature:
        return False
    given = signature.strip().encode("ascii", "replace")
    matched = False
    for candidate in _port_variants(url):
        expected = compute_twilio_signature(auth_token, candidate, params).encode("ascii")
        matched |= hmac.compare_digest(expected, given)
    return matched


def check_custom_parameters(
    parameters: Mapping[str, object], *, allowed: frozenset[str] | None = None
) -> None:
    """Check a call's ``start.customParameters`` before anything is opened for the call.

    Twilio passes the TwiML ``<Parameter>`` values through unchanged, so they are as trustworthy
    as whoever wrote the TwiML (or reached an unsigned stream). At most
    ``MAX_CUSTOM_PARAMETERS`` (32) parameters, each name 1 to 64 letters, digits, ``_``, ``-`` or
    ``.``, each value a string of at most ``MAX_CUSTOM_PARAMETER_CHARS`` (1024) characters
    without control characters; with *allowed*, only those names. The error never quotes a
    value (a parameter may carry a secret).

    Args:
        parameters: ``start.customParameters``.
        allowed: The names a call may carry; None allows any name.

    Raises:
        RemoteProtocolError: Naming the parameter (when its name is well formed) and the
            problem.

    .. versionadded:: 0.1.0
    """

    def refuse(field: str | None, problem: str) -> RemoteProtocolError:
        where = "start.customParameters" + (f".{field}" if field is not None else "")
        return RemoteProtocolError(
            peer="twilio", message_type="start", field=where, problem=problem
        )

    if len(parameters) > MAX_CUSTOM_PARAMETERS:
        raise refuse(
            None, f"{len(parameters)} parameters; allowed: at most {MAX_CUSTOM_PARAMETERS}"
        )
    for name, value in parameters.items():
        key: object = name  # JSON keys are strings; a mapping from elsewhere may differ
        if not (isinstance(key, str) and _PARAMETER_NAME.match(key)):
            raise refuse(
                None,
                f"a parameter name of {len(str(name))} characters that is not 1 to 64 letters, "
                "digits, '_', '-' or '.'",
            )
        if allowed is not None and name not in allowed:
            raise refuse(name, "not an allowed parameter (see --allowed-parameters)")
        if not isinstance(value, str):
            raise refuse(name, f"expected a string, got {type(value).__name__}")
        if len(value) > MAX_CUSTOM_PARAMETER_CHARS:
            raise refuse(
                name,
                f"a value of {len(value)} characters; allowed: at most "
                f"{MAX_CUSTOM_PARAMETER_CHARS}",
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise refuse(name, "a value with control characters")


# ============================================================================================
# Options: one table for the command line, the environment and the config


def _parse_ws_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError("a ws:// or wss:// URL with a host, e.g. " + DEFAULT_REALTIME_URL)
    return text


def _parse_public_url(text: str) -> str:
    allowed = (
        "an http:// or https:// URL with a host, no query string or fragment, and no port but "
        "the scheme's default (Twilio connects media streams to wss:// on port 443 only), "
        "e.g. https://voice.example.com"
    )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(allowed) from None
    default = 443 if parts.scheme == "https" else 80
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "?" in text
        or "#" in text
        or (port is not None and port != default)
        or "@" in parts.netloc
    ):
        raise ValueError(allowed)
    return text.rstrip("/")


def _int_parser(low: int, high: int, note: str = "") -> Callable[[str], int]:
    allowed = f"an integer from {low} to {high}" + (f" ({note})" if note else "")

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(allowed) from None
        if not low <= value <= high:
            raise ValueError(allowed)
        return value

    return parse


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("one of 1, true, yes, on, 0, false, no, off")


def _parse_host(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text):
        raise ValueError("an IP address or host name, e.g. 127.0.0.1 or 0.0.0.0")
    return text


def _parse_log_level(text: str) -> str:
    if text.lower() not in _LOG_LEVELS:
        raise ValueError("one of " + ", ".join(_LOG_LEVELS))
    return text.lower()


def _parse_text(text: str) -> str:
    return text


def _parse_parameter_names(text: str) -> frozenset[str]:
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    if not names or not all(_PARAMETER_NAME.match(name) for name in names):
        raise ValueError(
            "comma-separated parameter names of 1 to 64 letters, digits, '_', '-' or '.'"
        )
    return names


@dataclass(frozen=True, slots=True)
class _Option:
    name: str
    parse: Callable[[str], Any]
    default: object
    metavar: str
    help: str
    is_flag: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "VOICEGUARD_" + self.name.upper()


_OPTIONS: Final = (
    _Option("host", _parse_host, _DEFAULT_HOST, "HOST", "address to listen on"),
    _Option(
        "port",
        _int_parser(0, 65535, "0 picks a free port"),
        _DEFAULT_PORT,
        "PORT",
        "TCP port, 0 to 65535; 0 picks a free one",
    ),
    _Option(
        "realtime_url",
        _parse_ws_url,
        DEFAULT_REALTIME_URL,
        "URL",
        "the Realtime API's ws:// or wss:// URL (the model is in its query string)",
    ),
    _Option(
        "realtime_beta",
        _parse_bool,
        False,
        "BOOL",
        "send OpenAI-Beta: realtime=v1 (the beta protocol)",
        is_flag=True,
    ),
    _Option(
        "public_url",
        _parse_public_url,
        None,
        "URL",
        "the URL Twilio reaches this server at, e.g. https://voice.example.com: the stream URL "
        "in the TwiML and the URL signatures are checked against (default: the request's Host)",
    ),
    _Option(
        "workers",
        _int_parser(1, 64),
        1,
        "N",
        "uvicorn worker processes, 1 to 64 (calls share no state)",
    ),
    _Option(
        "max_calls",
        _int_parser(1, 100_000),
        _DEFAULT_MAX_CALLS,
        "N",
        "concurrent calls per worker, 1 to 100000; past it calls are refused (503)",
    ),
    _Option(
        "max_message_bytes",
        _int_parser(1024, 16 * 2**20),
        DEFAULT_MAX_PHONE_MESSAGE_BYTES,
        "BYTES",
        "largest WebSocket message from Twilio, 1024 to 16777216; a bigger one closes the "
        "stream with 1009",
    ),
    _Option(
        "max_body_bytes",
        _int_parser(1024, 16 * 2**20),
        _DEFAULT_MAX_BODY_BYTES,
        "BYTES",
        "largest webhook body, 1024 to 16777216; a bigger one is refused with 413",
    ),
    _Option(
        "instructions",
        _parse_text,
        None,
        "TEXT",
        "the model's instructions for each call",
    ),
    _Option("voice", _parse_text, None, "NAME", "the model's voice (default: the server's)"),
    _Option(
        "greeting",
        _parse_text,
        BridgeConfig().greeting,
        "TEXT",
        "instructions for the bot's greeting; empty: wait for the caller to speak first",
    ),
    _Option("log_level", _parse_log_level, "info", "LEVEL", "one of " + ", ".join(_LOG_LEVELS)),
    _Option(
        "allow_unsigned",
        _parse_bool,
        False,
        "BOOL",
        "listen on a non-loopback address without TWILIO_AUTH_TOKEN (development only: anyone "
        "who reaches the server can then open model sessions on your API key)",
        is_flag=True,
    ),
    _Option(
        "allowed_parameters",
        _parse_parameter_names,
        None,
        "NAMES",
        "comma-separated names of the start.customParameters a call may carry; a call with "
        "another is refused (default: any name, within the size limits)",
    ),
    _Option(
        "trace_dir",
        _parse_text,
        None,
        "DIR",
        "write a trace of every call (each message in and out, each decision) to DIR, one "
        "JSON Lines file per call; replay one with voiceguard replay",
    ),
    _Option(
        "trace_audio",
        _parse_bool,
        False,
        "BOOL",
        "keep the audio in traces (default: each payload is replaced by its length and energy); "
        "voiceguard replay needs it to re-judge barge-ins",
        is_flag=True,
    ),
)
_BY_NAME: Final = {option.name: option for option in _OPTIONS}
_CONFIG_OPTIONS: Final = (
    "realtime_url",
    "realtime_beta",
    "public_url",
    "max_calls",
    "max_message_bytes",
    "max_body_bytes",
    "instructions",
    "voice",
    "greeting",
    "trace_dir",
    "trace_audio",
    "allowed_parameters",
)


def _from_env(option: _Option, environ: Mapping[str, str]) -> object:
    text = environ.get(option.env)
    if text is None:
        return option.default
    try:
        return option.parse(text)
    except ValueError as exc:
        raise ConfigError(option.env, text, str(exc)) from None


# ============================================================================================
# Configuration


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Configuration of the reference server (:func:`create_app`).

    Attributes:
        realtime_url: The Realtime API's ``ws://`` or ``wss://`` URL.
        api_key: Sent to the Realtime API as ``Authorization: Bearer``; never logged or shown
            in ``repr``. None sends no key.
        realtime_beta: Send ``OpenAI-Beta: realtime=v1`` (the beta protocol). Default off (GA).
        public_url: The ``http(s)://`` URL Twilio reaches this server at, perhaps with a path
            prefix; the media stream URL in the TwiML and the URLs signatures are checked against
            are built from it. None falls back to the request's ``Host`` header, which is right
            only when nothing between Twilio and the server rewrites it.
        twilio_auth_token: With a token, webhooks and media streams need a valid
            ``X-Twilio-Signature``; None checks nothing. Never shown in ``repr``.
        max_calls: Concurrent calls this app takes; past it a media stream is refused with 503
            and ``/healthz`` answers 503. Default 100.
        max_message_bytes: The largest WebSocket message accepted from Twilio, in bytes; a bigger
            one closes the stream with 1009. Default 64 KiB.
        max_body_bytes: The largest webhook body accepted, in bytes (413 past it). Default 64 KiB.
        handler: The bridge's behaviour and each call's limits.
        trace_dir: Write a trace of every call to this directory (see
            :mod:`voiceguard.observe.trace`); None writes none.
        trace_audio: Keep the audio payloads in traces (caller audio is personal data: off by
            default, when each payload is replaced by its length and energy).
        allowed_parameters: The names of ``start.customParameters`` a call may carry; a call
            with another name is refused before its model session opens. None allows any name
            (every call's parameters are still checked by :func:`check_custom_parameters`).
    """

    realtime_url: str = DEFAULT_REALTIME_URL
    api_key: str | None = field(default=None, repr=False)
    realtime_beta: bool = False
    public_url: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    max_calls: int = _DEFAULT_MAX_CALLS
    max_message_bytes: int = DEFAULT_MAX_PHONE_MESSAGE_BYTES
    max_body_bytes: int = _DEFAULT_MAX_BODY_BYTES
    handler: HandlerConfig = field(default_factory=HandlerConfig)
    trace_dir: str | None = None
    trace_audio: bool = False
    allowed_parameters: frozenset[str] | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name in ("realtime_url", "public_url", "max_calls", "max_message_bytes"):
            value = getattr(self, name)
            if name == "public_url" and value is None:
                continue
            option = _BY_NAME[name]
            if not isinstance(value, type(option.default) if option.default is not None else str):
                raise ConfigError(f"{owner}.{name}", value, _allowed(option))
            try:
                option.parse(str(value))
            except ValueError as exc:
                raise ConfigError(f"{owner}.{name}", value, str(exc)) from None
        body: object = self.max_body_bytes
        if not (isinstance(body, int) and not isinstance(body, bool)):
            raise ConfigError(f"{owner}.max_body_bytes", body, _allowed(_BY_NAME["max_body_bytes"]))
        try:
            _BY_NAME["max_body_bytes"].parse(str(body))
        except ValueError as exc:
            raise ConfigError(f"{owner}.max_body_bytes", body, str(exc)) from None
        for flag in ("realtime_beta", "trace_audio"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{owner}.{flag}", getattr(self, flag), "True or False")
        trace_dir: object = self.trace_dir  # checked at run time: callers may not be typed
        if trace_dir is not None and not (isinstance(trace_dir, str) and trace_dir):
            raise ConfigError(f"{owner}.trace_dir", trace_dir, "a directory path or None")
        for name in ("api_key", "twilio_auth_token"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{owner}.{name}", "<hidden>", "a string or None")
        allowed: object = self.allowed_parameters
        if allowed is not None and not (
            isinstance(allowed, frozenset)
            and allowed
            and all(isinstance(n, str) and _PARAMETER_NAME.match(n) for n in allowed)
        ):
            raise ConfigError(
                f"{owner}.allowed_parameters", allowed, _allowed(_BY_NAME["allowed_parameters"])
            )
        if not isinstance(self.handler, HandlerConfig):
            raise ConfigError(f"{owner}.handler", self.handler, "a HandlerConfig")
        if self.public_url is not None:
            object.__setattr__(self, "public_url", self.public_url.rstrip("/"))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        """Build the configuration from environment variables.

        ``OPENAI_API_KEY`` gives :attr:`api_key` and ``TWILIO_AUTH_TOKEN``
        :attr:`twilio_auth_token`; ``VOICEGUARD_REALTIME_URL``, ``VOICEGUARD_REALTIME_BETA``,
        ``VOICEGUARD_PUBLIC_URL``, ``VOICEGUARD_MAX_CALLS``, ``VOICEGUARD_MAX_MESSAGE_BYTES``,
        ``VOICEGUARD_MAX_BODY_BYTES``, ``VOICEGUARD_INSTRUCTIONS``, ``VOICEGUARD_VOICE`` and
        ``VOICEGUARD_GREETING`` (empty: no greeting), ``VOICEGUARD_TRACE_DIR`` and
        ``VOICEGUARD_TRACE_AUDIO`` give the rest. Unset variables keep the
        defaults.

        Args:
            environ: The variables; None reads :data:`os.environ`.

        Returns:
            The configuration.

        Raises:
            ConfigError: Naming the variable, its value and what is allowed.
        """
        env = os.environ if environ is None else environ
        values = {name: _from_env(_BY_NAME[name], env) for name in _CONFIG_OPTIONS}
        return _build_config(values, env)

    def stream_url(self, host: str | None = None) -> str:
        """The ``wss://`` media stream URL for the TwiML (and for signature checks).

        Args:
            host: The request's ``Host`` header, used only without :attr:`public_url`.

        Returns:
            ``wss://<public host>[/prefix]/media-stream``.
        """
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            hostname = parts.hostname or ""
            if ":" in hostname:
                hostname = f"[{hostname}]"
            return f"wss://{hostname}{parts.path}{MEDIA_STREAM_PATH}"
        return f"wss://{_strip_port(host or 'localhost')}{MEDIA_STREAM_PATH}"


def _allowed(option: _Option) -> str:
    try:
        option.parse("")
    except ValueError as exc:
        return str(exc)
    return "a string"  # pragma: no cover - every checked parser refuses ""


def _strip_port(host: str) -> str:
    try:
        parts = urlsplit("//" + host)
        hostname = parts.hostname or host
        port = parts.port
    except ValueError:
        return host
    if ":" in hostname:
        hostname = f"[{hostname}]"
    if port not in (None, 443):
        logger.warning(
            "no public URL configured and the Host header %r has port %s; Twilio connects media "
            "streams to wss:// on port 443 only, so the TwiML names port 443. Set --public-url.",
            host,
            port,
        )
    return hostname


def _build_config(values: Mapping[str, object], environ: Mapping[str, str]) -> ServerConfig:
    greeting = values["greeting"]
    bridge = BridgeConfig(
        instructions=values["instructions"] or None,  # type: ignore[arg-type]
        voice=values["voice"] or None,  # type: ignore[arg-type]
        greeting=greeting if greeting else None,  # type: ignore[arg-type]
    )
    return ServerConfig(
        realtime_url=values["realtime_url"],  # type: ignore[arg-type]
        api_key=environ.get("OPENAI_API_KEY") or None,
        realtime_beta=values["realtime_beta"],  # type: ignore[arg-type]
        public_url=values["public_url"],  # type: ignore[arg-type]
        twilio_auth_token=environ.get("TWILIO_AUTH_TOKEN") or None,
        max_calls=values["max_calls"],  # type: ignore[arg-type]
        max_message_bytes=values["max_message_bytes"],  # type: ignore[arg-type]
        max_body_bytes=values["max_body_bytes"],  # type: ignore[arg-type]
        handler=HandlerConfig(bridge=bridge),
        trace_dir=values["trace_dir"] or None,  # type: ignore[arg-type]
        trace_audio=values["trace_audio"],  # type: ignore[arg-type]
        allowed_parameters=values["allowed_parameters"],  # type: ignore[arg-type]
    )


# ============================================================================================
# Metrics


def _end_reason(ended_by: str) -> str:
    """A bounded label for a call's end (no codes, exception texts or numbers)."""
    if ended_by.startswith("model connection failed"):
        return "model connection failed"
    if ended_by.startswith("no start within"):
        return "no start"
    if ended_by.startswith("more than") and "malformed" in ended_by:
        return "too many malformed messages"
    if ended_by.startswith("start refused"):
        return "start refused"
    return re.sub(r"\s*\([^)]*\)", "", ended_by).strip()[:60] or "ended"


@final
class _Metrics:
    """The app's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import (  # noqa: PLC0415 - the server extra
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.started = Counter(
            "voiceguard_calls_started", "Media streams accepted.", registry=registry
        )
        self.active = Gauge("voiceguard_calls_active", "Calls in progress.", registry=registry)
        self.ended = Counter(
            "voiceguard_calls_ended",
            "Calls ended, by why they ended.",
            ["reason"],
            registry=registry,
        )
        self.refused = Counter(
            "voiceguard_requests_refused",
            "Webhooks and media streams refused before a call started.",
            ["endpoint", "reason"],
            registry=registry,
        )
        self.duration = Histogram(
            "voiceguard_call_duration_seconds",
            "Call duration, from Twilio's start to the end.",
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 3600),
            registry=registry,
        )
        self.bad_messages = Counter(
            "voiceguard_bad_messages",
            "Malformed or refused messages, by peer (twilio, realtime).",
            ["peer"],
            registry=registry,
        )
        self.model_errors = Counter(
            "voiceguard_model_errors",
            "Error events from the Realtime API, by error code.",
            ["code"],
            registry=registry,
        )
        self.decisions = Counter(
            "voiceguard_guard_decisions",
            "Guard decisions, by guard, verdict and reason.",
            ["guard", "verdict", "reason"],
            registry=registry,
        )
        self.barge_ins = Counter(
            "voiceguard_barge_ins",
            "Caller speech starts, by outcome: allowed (the bot paused), suppressed (echo or "
            "noise), false_resumed (allowed, then the speech vanished and the bot resumed).",
            ["outcome"],
            registry=registry,
        )
        self.cancels = Counter(
            "voiceguard_cancels",
            "response.cancel, by outcome: sent, or suppressed by the cancel arbiter.",
            ["outcome"],
            registry=registry,
        )
        self.creates = Counter(
            "voiceguard_creates",
            "response.create, by outcome: sent, deferred (held until the running response "
            "ended), or dropped by the create guard.",
            ["outcome"],
            registry=registry,
        )
        self.timers = Counter(
            "voiceguard_timers",
            "Call-scoped timers, by outcome: armed, fired, or suppressed (due after its call "
            "closed or for another call).",
            ["outcome"],
            registry=registry,
        )
        self.truncations = Counter(
            "voiceguard_truncations",
            "conversation.item.truncate messages sent (the model forgets what was not heard).",
            registry=registry,
        )
        self.unheard = Histogram(
            "voiceguard_truncation_unheard_ms",
            "Audio sent to the phone past a truncation point and not yet confirmed played by a "
            "mark: the most by which the heard position can be wrong, in ms.",
            buckets=(0, 20, 50, 100, 200, 400, 800, 1600, 3200),
            registry=registry,
        )
        self.reaction = Histogram(
            "voiceguard_barge_in_reaction_seconds",
            "From a speech_started reaching the bridge to the Twilio clear that silences the "
            "bot, for each allowed barge-in.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=registry,
        )

    def record(self, summary: CallSummary, refused: Mapping[str, int]) -> None:
        self.ended.labels(_end_reason(summary.ended_by)).inc()
        if summary.call_sid is not None:
            self.duration.observe(summary.duration)
        for peer, count in summary.bad_messages.items():
            self.bad_messages.labels(peer).inc(count)
        if sum(refused.values()):
            self.bad_messages.labels("twilio").inc(sum(refused.values()))
        for code, count in summary.model_errors.items():
            self.model_errors.labels(code).inc(count)
        for guard, counts in (
            ("cancel_arbiter", summary.cancels),
            ("response_create_guard", summary.creates),
        ):
            if counts is None:
                continue
            for (verdict, reason), count in counts.by_reason.items():
                self.decisions.labels(guard, verdict.value, reason.value).inc(count)
        if summary.gate is not None:
            for reason, count in summary.gate.decisions.items():
                judged = Verdict.ALLOW if reason is Reason.OK else Verdict.SUPPRESS
                self.decisions.labels("calibration_gate", judged.value, reason.value).inc(count)
        m = summary.metrics
        if m is None:
            return
        for counter, outcomes in (
            (
                self.barge_ins,
                {
                    "allowed": m.barge_ins_allowed,
                    "suppressed": m.barge_ins_suppressed,
                    "false_resumed": m.barge_ins_false_resumed,
                },
            ),
            (self.cancels, {"sent": m.cancels_sent, "suppressed": m.cancels_suppressed}),
            (
                self.creates,
                {
                    "sent": m.creates_sent,
                    "deferred": m.creates_deferred,
                    "dropped": m.creates_dropped,
                },
            ),
            (
                self.timers,
                {
                    "armed": m.timers_armed,
                    "fired": m.timers_fired,
                    "suppressed": m.timers_suppressed,
                },
            ),
        ):
            for outcome, count in outcomes.items():
                counter.labels(outcome).inc(count)
        self.truncations.inc(m.truncations)
        for ms in m.unheard_at_truncation_ms:
            self.unheard.observe(ms)
        for seconds in m.barge_in_reaction:
            self.reaction.observe(seconds)


# ============================================================================================
# The app


@final
class _Server:
    """What the endpoints share: the config, the metrics and the number of calls running."""

    def __init__(self, config: ServerConfig, connect_model: ModelConnector | None) -> None:
        self.config = config
        self.metrics = _Metrics()
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
            signature = request.headers.get(_SIGNATURE_HEADER)
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
            signature = websocket.headers.get(_SIGNATURE_HEADER)
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


@contextlib.asynccontextmanager
async def serving(app: Any, *, host: str = _DEFAULT_HOST) -> AsyncIterator[int]:
    """Serve an ASGI *app* with uvicorn in the running event loop, on a free port of *host*.

    For tests and demos: ``async with serving(create_app(config)) as port:`` gives a real server
    on ``http://127.0.0.1:PORT`` (WebSockets included) for the block, and stops it after.

    Args:
        app: Any ASGI application (what :func:`create_app` returns, or your app around it).
        host: The address to listen on; loopback by default.

    Yields:
        The TCP port it listens on.
    """
    import uvicorn  # noqa: PLC0415 - the server extra

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        sock.listen(512)
        config = uvicorn.Config(
            app,
            ws="websockets-sansio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)
            try:
                yield int(sock.getsockname()[1])
            finally:
                server.should_exit = True
    finally:
        sock.close()


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


# ============================================================================================
# `voiceguard serve`


class _CallFormatter(logging.Formatter):
    """Adds the call SID to a record that has one (the handler's records carry it as extra)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        sid = getattr(record, "call_sid", None)
        if sid and str(sid) not in text:
            text += f" [call {sid}]"
        return text


def _log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415 - the server extra

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["voiceguard"] = {
        "()": f"{__name__}._CallFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s",
    }
    config["handlers"]["voiceguard"] = {
        "formatter": "voiceguard",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["voiceguard"] = {
        "handlers": ["voiceguard"],
        "level": level.upper(),
        "propagate": False,
    }
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"].setdefault(name, {})["level"] = level.upper()
    return config


def _argument_type(option: _Option) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            return option.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: {exc}") from None

    parse.__name__ = option.name
    return parse


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``voiceguard serve`` to the command line's subcommands.

    Args:
        commands: What ``ArgumentParser.add_subparsers`` returned.
    """
    serve = commands.add_parser(
        "serve",
        help="run the reference server: Twilio Media Streams <-> OpenAI Realtime, guarded",
        description=(
            "Run the reference server (uvicorn): POST /incoming-call answers TwiML that connects "
            "the call to wss://<public host>/media-stream; each media stream is bridged to the "
            "Realtime API with every guard on; GET /healthz and GET /metrics (Prometheus) for "
            "operations. OPENAI_API_KEY is sent as Authorization: Bearer; with "
            "TWILIO_AUTH_TOKEN set, requests without a valid X-Twilio-Signature are refused. "
            "Every option can also be set by the environment variable named in its help; the "
            "option wins. Needs: pip install 'voiceguard[server]'."
        ),
    )
    for option in _OPTIONS:
        default = option.default if option.default not in (None, "") else "none"
        text = f"{option.help} (env {option.env}; default: {default})"
        if option.is_flag:
            serve.add_argument(
                option.flag,
                dest=option.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=text,
            )
        else:
            serve.add_argument(
                option.flag,
                dest=option.name,
                type=_argument_type(option),
                default=None,
                metavar=option.metavar,
                help=text.replace("%", "%%"),
            )
    serve.set_defaults(handler=_serve_command)


def _resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, object]:
    """Each option's value: the flag if given, else its environment variable, else the default."""
    values: dict[str, object] = {}
    for option in _OPTIONS:
        given = getattr(args, option.name, None)
        values[option.name] = given if given is not None else _from_env(option, environ)
    return values


def _export(values: Mapping[str, object], environ: MutableMapping[str, str]) -> None:
    """Write the resolved options back to the environment, for worker processes."""
    for option in _OPTIONS:
        value = values[option.name]
        if value is None:
            environ.pop(option.env, None)
        elif isinstance(value, bool):
            environ[option.env] = "true" if value else "false"
        elif isinstance(value, frozenset):
            environ[option.env] = ",".join(sorted(value))
        else:
            environ[option.env] = str(value)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def _display_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _is_loopback(host: str) -> bool:
    """Whether *host* is a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def _serve_command(args: argparse.Namespace) -> int:
    try:
        import prometheus_client  # noqa: F401, PLC0415 - only this command needs them
        import starlette  # noqa: F401, PLC0415
        import uvicorn  # noqa: PLC0415
        import websockets  # noqa: F401, PLC0415
    except ImportError as exc:
        print(
            f"voiceguard serve needs the server extra ({exc.name} is missing): "
            "pip install 'voiceguard[server]'",
            file=sys.stderr,
        )
        return 2
    try:
        values = _resolve(args, os.environ)
        config = _build_config(values, os.environ)
    except ConfigError as exc:
        print(f"voiceguard serve: {exc}", file=sys.stderr)
        return 2
    if not config.api_key:
        print(
            "voiceguard serve: OPENAI_API_KEY is not set; allowed: the API key to send to the "
            "Realtime URL as Authorization: Bearer (any non-empty value for a local simulator)",
            file=sys.stderr,
        )
        return 2
    host = str(values["host"])
    if not config.twilio_auth_token and not values["allow_unsigned"] and not _is_loopback(host):
        print(
            f"voiceguard serve: refusing to listen on {host} without TWILIO_AUTH_TOKEN: anyone "
            "who reaches the server could open model sessions on your API key; set "
            "TWILIO_AUTH_TOKEN (requests are then checked for X-Twilio-Signature), listen on "
            "127.0.0.1, or pass --allow-unsigned (development only)",
            file=sys.stderr,
        )
        return 2
    workers = int(values["workers"])  # type: ignore[call-overload]
    level = str(values["log_level"])
    try:
        sock = _bind(host, int(values["port"]))  # type: ignore[call-overload]
    except OSError as exc:
        print(f"voiceguard serve: cannot listen on {host}:{values['port']}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    common: dict[str, Any] = {
        "ws": "websockets-sansio",
        "ws_max_size": config.max_message_bytes,
        "log_config": _log_config(level),
        "log_level": level,
        "lifespan": "off",
        "server_header": False,
        "timeout_graceful_shutdown": _SHUTDOWN_GRACE,
    }
    shown_host = f"[{host}]" if ":" in host else host
    where = config.public_url or "https://<Host>"
    checks = "checked" if config.twilio_auth_token else "NOT checked (no TWILIO_AUTH_TOKEN)"
    print(
        f"voiceguard serve: listening on http://{shown_host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''}, up to {config.max_calls} calls each)\n"
        f"  Twilio voice webhook: POST {where}{INCOMING_CALL_PATH}\n"
        f"  media stream: {config.stream_url() if config.public_url else 'wss://<Host>/media-stream'}\n"
        f"  Realtime API: {_display_url(config.realtime_url)}"
        f"{' (beta)' if config.realtime_beta else ''}\n"
        f"  signatures: {checks}\n"
        "  Press Ctrl+C to stop.",
        flush=True,
    )
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess  # noqa: PLC0415

            _export(values, os.environ)
            uconfig = uvicorn.Config(
                f"{__name__}:app_from_env", factory=True, workers=workers, **common
            )
            Multiprocess(uconfig, sockets=[sock]).run()
        else:
            uconfig = uvicorn.Config(create_app(config), **common)
            uvicorn.Server(uconfig).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("voiceguard serve: stopped", flush=True)
    return 0
