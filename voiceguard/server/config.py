"""The reference server's configuration, :class:`ServerConfig`, and the URLs built from it.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, final
from urllib.parse import urlsplit

from voiceguard.config import BridgeConfig, HandlerConfig
from voiceguard.errors import ConfigError
from voiceguard.server.options import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CALLS,
    DEFAULT_REALTIME_URL,
    OPTIONS_BY_NAME,
)
from voiceguard.server.parameters import is_parameter_name
from voiceguard.transports import DEFAULT_MAX_PHONE_MESSAGE_BYTES

__all__ = ("INCOMING_CALL_PATH", "MEDIA_STREAM_PATH", "ServerConfig", "config_from_values")

logger = logging.getLogger("voiceguard.server")

#: Where Twilio posts the voice webhook.
INCOMING_CALL_PATH: Final = "/incoming-call"
#: Where Twilio opens the media stream.
MEDIA_STREAM_PATH: Final = "/media-stream"
#: The options that are fields of :class:`ServerConfig` (the others only matter to
#: ``voiceguard serve``: where to listen, how many workers, the log level).
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
    max_calls: int = DEFAULT_MAX_CALLS
    max_message_bytes: int = DEFAULT_MAX_PHONE_MESSAGE_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
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
            option = OPTIONS_BY_NAME[name]
            if not isinstance(value, type(option.default) if option.default is not None else str):
                raise ConfigError(f"{owner}.{name}", value, option.allowed)
            try:
                option.parse(str(value))
            except ValueError as exc:
                raise ConfigError(f"{owner}.{name}", value, str(exc)) from None
        body: object = self.max_body_bytes
        if not (isinstance(body, int) and not isinstance(body, bool)):
            raise ConfigError(
                f"{owner}.max_body_bytes", body, OPTIONS_BY_NAME["max_body_bytes"].allowed
            )
        try:
            OPTIONS_BY_NAME["max_body_bytes"].parse(str(body))
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
            and all(isinstance(n, str) and is_parameter_name(n) for n in allowed)
        ):
            raise ConfigError(
                f"{owner}.allowed_parameters",
                allowed,
                OPTIONS_BY_NAME["allowed_parameters"].allowed,
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
        values = {name: OPTIONS_BY_NAME[name].from_environ(env) for name in _CONFIG_OPTIONS}
        return config_from_values(values, env)

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


def config_from_values(values: Mapping[str, object], environ: Mapping[str, str]) -> ServerConfig:
    """The configuration from resolved option values and the secrets in the environment.

    Args:
        values: Option values by name (what :func:`~voiceguard.server.options.resolve_options`
            returns); every name of the config's options must be there.
        environ: Where ``OPENAI_API_KEY`` and ``TWILIO_AUTH_TOKEN`` are read from.

    Returns:
        The configuration.

    Raises:
        ConfigError: When a value is not allowed.
    """
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
