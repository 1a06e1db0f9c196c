"""The server's options: one table for the command line, the environment and the config.

Each :class:`ServerOption` of :data:`OPTIONS` is a ``voiceguard serve`` option (``--max-calls``),
an environment variable (``VOICEGUARD_MAX_CALLS``) and, for most, a field of
:class:`~voiceguard.server.ServerConfig`; its parser checks the value wherever it comes from, and
says what is allowed when it is refused.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, final
from urllib.parse import urlsplit

from voiceguard.config import BridgeConfig, HandlerConfig
from voiceguard.errors import ConfigError, ToolError
from voiceguard.protocol import PHONES, PROVIDERS, model_provider, phone_dialect
from voiceguard.runtime._model_token import load_token_source
from voiceguard.runtime._tools import load_tools
from voiceguard.server.parameters import is_parameter_name
from voiceguard.tools import Tool
from voiceguard.transports import DEFAULT_MAX_PHONE_MESSAGE_BYTES

__all__ = (
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CALLS",
    "DEFAULT_MAX_PENDING_STREAMS",
    "DEFAULT_MAX_WAITING_CONNECTIONS",
    "DEFAULT_PORT",
    "DEFAULT_REALTIME_URL",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_STREAM_TOKEN_LIFETIME",
    "LOG_LEVELS",
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "ServerOption",
    "export_options",
    "resolve_options",
)

#: The OpenAI Realtime endpoint used unless another URL is configured.
DEFAULT_REALTIME_URL: Final = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
#: The address ``voiceguard serve`` listens on by default (loopback: nobody else reaches it).
DEFAULT_HOST: Final = "127.0.0.1"
#: The TCP port ``voiceguard serve`` listens on by default.
DEFAULT_PORT: Final = 5050
#: Concurrent calls a server takes by default (with workers, all of them together).
DEFAULT_MAX_CALLS: Final = 100
#: The largest webhook body accepted by default, in bytes.
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024
#: Media streams waiting for Twilio's ``start`` an app takes by default.
DEFAULT_MAX_PENDING_STREAMS: Final = 64
#: Seconds a connection has to send its request head (and a webhook its body), by default.
DEFAULT_REQUEST_TIMEOUT: Final = 5.0
#: Connections waiting for their request head at once, by default.
DEFAULT_MAX_WAITING_CONNECTIONS: Final = 256
#: Seconds a stream token is valid, by default.
DEFAULT_STREAM_TOKEN_LIFETIME: Final = 60.0
#: Seconds the calls in progress have to end on their own after a SIGTERM, by default.
DEFAULT_DRAIN_TIMEOUT: Final = 900.0
#: The log levels ``--log-level`` allows.
LOG_LEVELS: Final = ("critical", "error", "warning", "info", "debug")
#: The event loops ``--loop`` allows (uvicorn's names).
EVENT_LOOPS: Final = ("auto", "uvloop", "asyncio")

# --------------------------------------------------------------------------------------------
# Parsers: text in, a value out, or ValueError saying what is allowed


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


class _Tools(tuple[Tool, ...]):
    """The tools of ``--tools``, with the text they came from (the workers load them again)."""

    spec = ""


def _parse_tools(text: str) -> tuple[Tool, ...]:
    if not text.strip():
        raise ValueError("package.module:attribute naming a voiceguard.Tool, a function or a list")
    spec = text.strip()
    try:
        tools = _Tools(load_tools(spec))
    except ToolError as exc:
        problem = str(exc).removeprefix(f"tools {spec!r}: ")
        raise ValueError(f"package.module:attribute of Tools or functions ({problem})") from None
    tools.spec = spec
    return tools


def _parse_phone(text: str) -> str:
    try:
        return phone_dialect(text).name
    except ValueError:
        raise ValueError("one of " + ", ".join(PHONES)) from None


def _parse_provider(text: str) -> str:
    try:
        return model_provider(text).name
    except ValueError:
        raise ValueError("one of " + ", ".join(PROVIDERS)) from None


def _parse_token_spec(text: str) -> str:
    spec = text.strip()
    if not spec:
        raise ValueError("package.module:function that returns a bearer token")
    try:
        load_token_source(spec)
    except ConfigError as exc:
        raise ValueError(
            f"package.module:function that returns a bearer token ({exc.allowed})"
        ) from None
    return spec


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


def _seconds_parser(low: float, high: float) -> Callable[[str], float]:
    allowed = f"a number of seconds, more than {low:g} and at most {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(allowed) from None
        if not low < value <= high:  # also refuses nan
            raise ValueError(allowed)
        return value

    return parse


def _parse_hosts(text: str) -> frozenset[str]:
    hosts = frozenset(host.strip().lower() for host in text.split(",") if host.strip())
    if not hosts or any(
        any(c.isspace() or c in "/?#@" for c in host) or host.startswith(":") for host in hosts
    ):
        raise ValueError(
            "comma-separated host names as Twilio reaches the server, e.g. voice.example.com"
        )
    return hosts


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
    if text.lower() not in LOG_LEVELS:
        raise ValueError("one of " + ", ".join(LOG_LEVELS))
    return text.lower()


def _parse_loop(text: str) -> str:
    if text.lower() not in EVENT_LOOPS:
        raise ValueError("one of " + ", ".join(EVENT_LOOPS))
    return text.lower()


def _parse_text(text: str) -> str:
    return text


def _parse_parameter_names(text: str) -> frozenset[str]:
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    if not names or not all(is_parameter_name(name) for name in names):
        raise ValueError(
            "comma-separated parameter names of 1 to 64 letters, digits, '_', '-' or '.'"
        )
    return names


@final
@dataclass(frozen=True, slots=True)
class ServerOption:
    """One setting of the server: a command-line option, an environment variable, a value.

    Attributes:
        name: The setting's name, e.g. ``max_calls`` (the :class:`ServerConfig` field, when it
            is one).
        parse: Turns the text of the option or variable into the value; raises
            :class:`ValueError` saying what is allowed.
        default: The value when neither the option nor the variable is given.
        metavar: The value's placeholder in ``--help``.
        help: What the setting does, for ``--help``.
        is_flag: An on/off flag (``--x`` / ``--no-x``) rather than an option with a value.
    """

    name: str
    parse: Callable[[str], Any]
    default: object
    metavar: str
    help: str
    is_flag: bool = False

    @property
    def flag(self) -> str:
        """The command-line option, e.g. ``--max-calls``."""
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``VOICEGUARD_MAX_CALLS``."""
        return "VOICEGUARD_" + self.name.upper()

    @property
    def allowed(self) -> str:
        """What the setting allows, in words (what :attr:`parse` says of a bad value)."""
        try:
            self.parse("")
        except ValueError as exc:
            return str(exc)
        return "a string"  # pragma: no cover - every checked parser refuses ""

    def from_environ(self, environ: Mapping[str, str]) -> object:
        """The setting's value in *environ*, or its default when its variable is not set.

        Args:
            environ: The environment variables.

        Returns:
            The parsed value.

        Raises:
            ConfigError: Naming the variable, its value and what is allowed.
        """
        text = environ.get(self.env)
        if text is None:
            return self.default
        try:
            return self.parse(text)
        except ValueError as exc:
            raise ConfigError(self.env, text, str(exc)) from None


#: Every option, in the order ``voiceguard serve --help`` lists them.
OPTIONS: Final = (
    ServerOption("host", _parse_host, DEFAULT_HOST, "HOST", "address to listen on"),
    ServerOption(
        "port",
        _int_parser(0, 65535, "0 picks a free port"),
        DEFAULT_PORT,
        "PORT",
        "TCP port, 0 to 65535; 0 picks a free one",
    ),
    ServerOption(
        "phone",
        _parse_phone,
        "twilio",
        "NAME",
        "whose media streams the server takes: " + ", ".join(PHONES) + " (the webhook answers "
        "in that provider's markup; each provider's messages are on its page of the docs)",
    ),
    ServerOption(
        "model_provider",
        _parse_provider,
        "openai",
        "NAME",
        "who serves the model: "
        + ", ".join(PROVIDERS)
        + " (its key from "
        + ", ".join(p.key_variable for p in PROVIDERS.values())
        + "; each provider's differences are on its page of the docs)",
    ),
    ServerOption(
        "realtime_url",
        _parse_ws_url,
        None,
        "URL",
        "the Realtime API's ws:// or wss:// URL, the model (Azure: the deployment) in its query "
        f"string (default: the provider's, {DEFAULT_REALTIME_URL} for openai; azure needs one, "
        "e.g. " + PROVIDERS["azure"].url_example + ")",
    ),
    ServerOption(
        "model_token",
        _parse_token_spec,
        None,
        "MODULE:NAME",
        "a function that returns a bearer token for the model (sync or async), called for each "
        "call's connection, e.g. a Microsoft Entra ID token for Azure; sent as Authorization: "
        "Bearer instead of the key",
    ),
    ServerOption(
        "realtime_beta",
        _parse_bool,
        False,
        "BOOL",
        "deprecated and ignored: OpenAI retired the Realtime beta protocol on 2026-05-12 and the "
        "server speaks the GA one (the option goes away in the next release)",
        is_flag=True,
    ),
    ServerOption(
        "public_url",
        _parse_public_url,
        None,
        "URL",
        "the URL Twilio reaches this server at, e.g. https://voice.example.com: the stream URL "
        "in the TwiML and the URL signatures are checked against (default: the request's Host)",
    ),
    ServerOption(
        "workers",
        _int_parser(1, 64),
        1,
        "N",
        "uvicorn worker processes, 1 to 64; calls share no state, the workers share the metrics "
        "(any worker's /metrics shows the whole server's), --max-calls and /healthz",
    ),
    ServerOption(
        "max_calls",
        _int_parser(1, 100_000),
        DEFAULT_MAX_CALLS,
        "N",
        "concurrent calls of the whole server (every worker's together), 1 to 100000; past it a "
        "media stream is refused (close 1013) and /healthz answers 503",
    ),
    ServerOption(
        "max_pending_streams",
        _int_parser(1, 100_000),
        DEFAULT_MAX_PENDING_STREAMS,
        "N",
        "media streams accepted but not yet started (no Twilio start), per worker, 1 to 100000; "
        "they do not count against --max-calls; one more closes the one waiting longest",
    ),
    ServerOption(
        "start_timeout",
        _seconds_parser(0, 600),
        HandlerConfig().start_timeout,
        "SECONDS",
        "how long a media stream may take to send Twilio's start (Twilio sends it at once)",
    ),
    ServerOption(
        "model_timeout",
        _seconds_parser(0, 120),
        HandlerConfig().model_timeout,
        "SECONDS",
        "how long the model may take to open a call's session (handshake and session.created); "
        "past it the caller hears a short apology and the call ends",
    ),
    ServerOption(
        "request_timeout",
        _seconds_parser(0, 600),
        DEFAULT_REQUEST_TIMEOUT,
        "SECONDS",
        "how long a connection may take to send its whole request head (and a webhook its "
        "body); a slower one is closed",
    ),
    ServerOption(
        "drain_timeout",
        _seconds_parser(0, 86_400),
        DEFAULT_DRAIN_TIMEOUT,
        "SECONDS",
        "after a SIGTERM: /healthz answers 503, new media streams are refused (1012), and the "
        "calls in progress have this long to end before each is wound up (a goodbye, then the "
        "hang-up); a second SIGTERM or Ctrl+C stops at once",
    ),
    ServerOption(
        "max_waiting_connections",
        _int_parser(1, 1_000_000),
        DEFAULT_MAX_WAITING_CONNECTIONS,
        "N",
        "connections waiting for their request head at once, per worker; one more closes the one "
        "waiting longest",
    ),
    ServerOption(
        "stream_tokens",
        _parse_bool,
        True,
        "BOOL",
        "with TWILIO_AUTH_TOKEN: the TwiML carries a short-lived token bound to the call, and a "
        "media stream must bring it (a replayed signature opens nothing); turn off only when "
        "your own TwiML connects calls to /media-stream",
        is_flag=True,
    ),
    ServerOption(
        "stream_token_lifetime",
        _seconds_parser(0, 3600),
        DEFAULT_STREAM_TOKEN_LIFETIME,
        "SECONDS",
        "how long a stream token is valid after the webhook answered",
    ),
    ServerOption(
        "allowed_hosts",
        _parse_hosts,
        None,
        "HOSTS",
        "without --public-url: the Host headers accepted (comma-separated); a request for "
        "another host is refused before its signature is checked",
    ),
    ServerOption(
        "max_message_bytes",
        _int_parser(1024, 16 * 2**20),
        DEFAULT_MAX_PHONE_MESSAGE_BYTES,
        "BYTES",
        "largest WebSocket message from Twilio, 1024 to 16777216; a bigger one closes the "
        "stream with 1009",
    ),
    ServerOption(
        "max_body_bytes",
        _int_parser(1024, 16 * 2**20),
        DEFAULT_MAX_BODY_BYTES,
        "BYTES",
        "largest webhook body, 1024 to 16777216; a bigger one is refused with 413",
    ),
    ServerOption(
        "instructions",
        _parse_text,
        None,
        "TEXT",
        "the model's instructions for each call",
    ),
    ServerOption("voice", _parse_text, None, "NAME", "the model's voice (default: the server's)"),
    ServerOption(
        "transcribe",
        _parse_text,
        None,
        "MODEL",
        "transcribe the caller with this model (e.g. gpt-4o-transcribe): a turn the barge-in "
        "gate took for echo is judged again by its words (default: no transcription)",
    ),
    ServerOption(
        "greeting",
        _parse_text,
        BridgeConfig().greeting,
        "TEXT",
        "instructions for the bot's greeting; empty: wait for the caller to speak first",
    ),
    ServerOption(
        "tools",
        _parse_tools,
        (),
        "MODULE:NAME",
        "the tools the model may call: a voiceguard.Tool, a function, or a list of them, "
        "imported from package.module:attribute (the current directory is searched too); "
        "each runs when the model calls it, its result is spoken (default: only end_call)",
    ),
    ServerOption("log_level", _parse_log_level, "info", "LEVEL", "one of " + ", ".join(LOG_LEVELS)),
    ServerOption(
        "loop",
        _parse_loop,
        "auto",
        "LOOP",
        "the event loop: auto (uvloop when installed, else asyncio), uvloop or asyncio; with "
        "asyncio a failed accept() (out of file descriptors) is logged, uvloop closes such "
        "connections without a word",
    ),
    ServerOption(
        "allow_unsigned",
        _parse_bool,
        False,
        "BOOL",
        "listen on a non-loopback address without TWILIO_AUTH_TOKEN (development only: anyone "
        "who reaches the server can then open model sessions on your API key)",
        is_flag=True,
    ),
    ServerOption(
        "allowed_parameters",
        _parse_parameter_names,
        None,
        "NAMES",
        "comma-separated names of the start.customParameters a call may carry; a call with "
        "another is refused (default: any name, within the size limits)",
    ),
    ServerOption(
        "trace_dir",
        _parse_text,
        None,
        "DIR",
        "write a trace of every call (each message in and out, each decision) to DIR, one "
        "JSON Lines file per call; replay one with voiceguard replay",
    ),
    ServerOption(
        "trace_audio",
        _parse_bool,
        False,
        "BOOL",
        "keep the audio in traces (default: each payload is replaced by its length and energy); "
        "voiceguard replay needs it to re-judge barge-ins",
        is_flag=True,
    ),
)
#: The options by name.
OPTIONS_BY_NAME: Final = {option.name: option for option in OPTIONS}


def resolve_options(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, object]:
    """Each option's value: the flag if given, else its environment variable, else the default.

    Args:
        args: The parsed command line (an option not given is None there).
        environ: The environment variables.

    Returns:
        Every option's value, by name.

    Raises:
        ConfigError: On a bad environment variable.
    """
    values: dict[str, object] = {}
    for option in OPTIONS:
        given = getattr(args, option.name, None)
        values[option.name] = given if given is not None else option.from_environ(environ)
    return values


def export_options(values: Mapping[str, object], environ: MutableMapping[str, str]) -> None:
    """Write resolved option values back to the environment, for worker processes.

    Args:
        values: What :func:`resolve_options` returned.
        environ: The environment to write to; a value of None removes its variable.
    """
    for option in OPTIONS:
        value = values[option.name]
        if value is None:
            environ.pop(option.env, None)
        elif isinstance(value, bool):
            environ[option.env] = "true" if value else "false"
        elif isinstance(value, frozenset):
            environ[option.env] = ",".join(sorted(value))
        elif isinstance(value, tuple):
            if isinstance(value, _Tools):
                environ[option.env] = value.spec
            else:
                environ.pop(option.env, None)  # no tools
        else:
            environ[option.env] = str(value)
