"""The reference server's configuration, :class:`ServerConfig`, and the URLs built from it.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, final
from urllib.parse import urlsplit

from voiceguard._deprecated import warn_deprecated
from voiceguard.config import BridgeConfig, HandlerConfig
from voiceguard.errors import ConfigError
from voiceguard.protocol import PHONES, PROVIDERS, ModelProvider, PhoneDialect
from voiceguard.runtime._model_token import load_token_source
from voiceguard.server.options import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CALLS,
    DEFAULT_MAX_PENDING_STREAMS,
    DEFAULT_MAX_WAITING_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_STREAM_TOKEN_LIFETIME,
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
#: Why ``realtime_beta`` does nothing any more.
RETIRED_BETA: Final = (
    "OpenAI retired the Realtime beta protocol on 2026-05-12 (a beta session is refused with "
    "beta_api_shape_disabled); the server speaks the GA protocol and sends no OpenAI-Beta header"
)
#: The options that are fields of :class:`ServerConfig` (the others only matter to
#: ``voiceguard serve``: where to listen, how many workers, the log level).
_CONFIG_OPTIONS: Final = (
    "phone",
    "model_provider",
    "realtime_url",
    "model_token",
    "realtime_beta",
    "public_url",
    "max_calls",
    "max_pending_streams",
    "start_timeout",
    "model_timeout",
    "tools",
    "request_timeout",
    "drain_timeout",
    "max_waiting_connections",
    "stream_tokens",
    "stream_token_lifetime",
    "allowed_hosts",
    "max_message_bytes",
    "max_body_bytes",
    "instructions",
    "voice",
    "transcribe",
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
        phone: Whose media streams the server takes: ``"twilio"``, ``"telnyx"``, ``"plivo"`` or
            ``"vonage"`` (:data:`~voiceguard.protocol.PHONES`): the webhook's answer and the
            stream's messages are in that provider's words. Signatures and stream tokens are
            Twilio's.
        model_provider: Who serves the model: ``"openai"``, ``"azure"`` or ``"xai"`` (see
            :data:`~voiceguard.protocol.PROVIDERS`): the URL's shape, the key's header, and the
            session shape the server sends.
        realtime_url: The Realtime API's ``ws://`` or ``wss://`` URL, the model (Azure: the
            deployment) in its query string; None takes the provider's
            (:attr:`~voiceguard.protocol.ModelProvider.default_url`; Azure has none: each
            resource has its own host). Checked against the provider's URL shape.
        api_key: The provider's key, sent as it takes it (``Authorization: Bearer`` for OpenAI
            and xAI, ``api-key`` for Azure); never logged or shown in ``repr``. None sends no
            key.
        model_token: A function that returns a bearer token (plain or async), called for each
            call's model connection and sent as ``Authorization: Bearer`` instead of the key:
            e.g. a Microsoft Entra ID token provider for Azure. None uses the key.
        realtime_beta: Deprecated and ignored (a warning when True): OpenAI retired the Realtime
            beta protocol on 2026-05-12 (such a session is refused with
            ``beta_api_shape_disabled``), and the server speaks the GA protocol with no
            ``OpenAI-Beta`` header. Goes away in the next release.
        public_url: The ``http(s)://`` URL Twilio reaches this server at, perhaps with a path
            prefix; the media stream URL in the TwiML and the URLs signatures are checked against
            are built from it. None falls back to the request's ``Host`` header, which is right
            only when nothing between Twilio and the server rewrites it.
        twilio_auth_token: With a token, webhooks and media streams need a valid
            ``X-Twilio-Signature``; None checks nothing. Never shown in ``repr``.
        max_calls: Concurrent calls this app takes (a call counts from Twilio's ``start``);
            past it a media stream is closed with 1013 ("try again later") and ``/healthz``
            answers 503. Default 100. For apps sharing a directory (the workers of
            ``voiceguard serve --workers N``), the calls of all of them together.
        max_pending_streams: Media streams accepted but not yet started; they do not count
            against :attr:`max_calls`, and one more closes the one that has waited longest
            (Twilio sends ``start`` at once, so a real call is never the oldest for long).
            Default 64. How long one may wait is ``handler.start_timeout`` (3 s).
        request_timeout: Seconds a connection has to send its whole request head (under
            ``voiceguard serve``, see :mod:`voiceguard.server.edge`) and a webhook its body
            (408 past it). Default 5 s.
        drain_timeout: Seconds the calls in progress have to end on their own once the server
            drains (under ``voiceguard serve``, from a SIGTERM; see
            :mod:`voiceguard.server.drain`); past it each is wound up, a goodbye and the hang-up.
            Default 900 (15 minutes).
        max_waiting_connections: Connections waiting for their request head at once, under
            ``voiceguard serve``; one more closes the one waiting longest. Default 256.
        stream_tokens: With :attr:`twilio_auth_token`: the TwiML of each call carries a
            short-lived token bound to the call (:mod:`voiceguard.server.tokens`), and a media
            stream whose ``start`` does not bring a valid, unused one is refused before any
            model session (a replayed signature opens nothing). Default on; turn it off only
            when TwiML of your own connects calls to the media stream.
        stream_token_lifetime: Seconds a stream token is valid. Default 60.
        allowed_hosts: Without :attr:`public_url`: the ``Host`` headers accepted (lower case);
            a request for another host is refused (400) before its signature is checked.
            None accepts any host (``voiceguard serve`` refuses that beyond loopback when
            signatures are checked).
        metrics_token: With a token, ``GET /metrics`` needs ``Authorization: Bearer <token>``
            (401 without) and ``/healthz`` shows the call counts only to its bearer. Never
            shown in ``repr``. None: both answer anyone.
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

    phone: str = "twilio"
    model_provider: str = "openai"
    realtime_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model_token: Callable[[], str | Awaitable[str]] | None = field(default=None, repr=False)
    realtime_beta: bool = False
    public_url: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    max_calls: int = DEFAULT_MAX_CALLS
    max_pending_streams: int = DEFAULT_MAX_PENDING_STREAMS
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    max_waiting_connections: int = DEFAULT_MAX_WAITING_CONNECTIONS
    stream_tokens: bool = True
    stream_token_lifetime: float = DEFAULT_STREAM_TOKEN_LIFETIME
    allowed_hosts: frozenset[str] | None = None
    metrics_token: str | None = field(default=None, repr=False)
    max_message_bytes: int = DEFAULT_MAX_PHONE_MESSAGE_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    handler: HandlerConfig = field(default_factory=HandlerConfig)
    trace_dir: str | None = None
    trace_audio: bool = False
    allowed_parameters: frozenset[str] | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        self._check_model(owner)
        self._check_phone(owner)
        for name in (
            "public_url",
            "max_calls",
            "max_pending_streams",
            "request_timeout",
            "drain_timeout",
            "max_waiting_connections",
            "stream_token_lifetime",
            "max_message_bytes",
            "max_body_bytes",
        ):
            value = getattr(self, name)
            if name == "public_url" and value is None:
                continue
            option = OPTIONS_BY_NAME[name]
            default = option.default
            kind = (
                str
                if default is None
                else (int, float)
                if isinstance(default, float)
                else type(default)
            )
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ConfigError(f"{owner}.{name}", value, option.allowed)
            try:
                option.parse(str(value))
            except ValueError as exc:
                raise ConfigError(f"{owner}.{name}", value, str(exc)) from None
        hosts: object = self.allowed_hosts
        if hosts is not None and not (
            isinstance(hosts, frozenset)
            and hosts
            and all(isinstance(h, str) and h == h.lower() and h.strip() == h for h in hosts)
        ):
            raise ConfigError(
                f"{owner}.allowed_hosts", hosts, "a non-empty frozenset of lower-case host names"
            )
        for flag in ("realtime_beta", "trace_audio", "stream_tokens"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{owner}.{flag}", getattr(self, flag), "True or False")
        if self.realtime_beta:
            warn_deprecated(f"{owner}.realtime_beta", RETIRED_BETA, stacklevel=3)
        trace_dir: object = self.trace_dir  # checked at run time: callers may not be typed
        if trace_dir is not None and not (isinstance(trace_dir, str) and trace_dir):
            raise ConfigError(f"{owner}.trace_dir", trace_dir, "a directory path or None")
        for name in ("api_key", "twilio_auth_token", "metrics_token"):
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

    def _check_phone(self, owner: str) -> None:
        phone: object = self.phone
        if not isinstance(phone, str) or phone not in PHONES:
            raise ConfigError(f"{owner}.phone", phone, "one of " + ", ".join(PHONES))
        if phone != "twilio" and self.twilio_auth_token is not None:
            raise ConfigError(
                f"{owner}.phone",
                phone,
                "twilio while a Twilio auth token is set (its signatures are Twilio's); unset "
                "TWILIO_AUTH_TOKEN for another provider's calls",
            )

    def _check_model(self, owner: str) -> None:
        name: object = self.model_provider
        if not isinstance(name, str) or name not in PROVIDERS:
            raise ConfigError(f"{owner}.model_provider", name, "one of " + ", ".join(PROVIDERS))
        provider = PROVIDERS[name]
        url: object = self.realtime_url
        if url is None:
            if provider.default_url is None:
                raise ConfigError(
                    f"{owner}.realtime_url",
                    None,
                    f"{provider.title} has no default endpoint: give yours, e.g. "
                    + provider.url_example,
                )
            object.__setattr__(self, "realtime_url", provider.default_url)
        else:
            problem = provider.url_problem(url) if isinstance(url, str) else "a ws:// URL"
            if problem is not None:
                raise ConfigError(f"{owner}.realtime_url", url, problem)
        token = self.model_token
        if token is not None and not callable(token):
            raise ConfigError(f"{owner}.model_token", token, "a function that returns a token")

    @property
    def phone_dialect(self) -> PhoneDialect:
        """The :class:`~voiceguard.protocol.PhoneDialect` of :attr:`phone`."""
        return PHONES[self.phone]

    @property
    def provider(self) -> ModelProvider:
        """The :class:`~voiceguard.protocol.ModelProvider` of :attr:`model_provider`."""
        return PROVIDERS[self.model_provider]

    @property
    def model_url(self) -> str:
        """The endpoint the calls connect to (:attr:`realtime_url`, or the provider's)."""
        assert self.realtime_url is not None  # filled in when the config was made
        return self.realtime_url

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
        environ: Where the secrets are read from: the provider's key (``OPENAI_API_KEY``,
            ``AZURE_OPENAI_API_KEY`` or ``XAI_API_KEY``), ``TWILIO_AUTH_TOKEN``
            and ``VOICEGUARD_METRICS_TOKEN``.

    Returns:
        The configuration.

    Raises:
        ConfigError: When a value is not allowed.
    """
    greeting = values["greeting"]
    provider = PROVIDERS[str(values["model_provider"])]
    token_spec = values["model_token"]
    if token_spec is not None and not isinstance(token_spec, str):
        raise ConfigError("model_token", token_spec, "package.module:function")
    bridge = BridgeConfig(
        instructions=values["instructions"] or None,  # type: ignore[arg-type]
        voice=values["voice"] or None,  # type: ignore[arg-type]
        input_transcription_model=values["transcribe"] or None,  # type: ignore[arg-type]
        greeting=greeting if greeting else None,  # type: ignore[arg-type]
    )
    handler = HandlerConfig(
        bridge=bridge,
        start_timeout=values["start_timeout"],  # type: ignore[arg-type]
        model_timeout=values["model_timeout"],  # type: ignore[arg-type]
        tools=values["tools"],  # type: ignore[arg-type]
    )
    return ServerConfig(
        phone=values["phone"],  # type: ignore[arg-type]
        model_provider=provider.name,
        realtime_url=values["realtime_url"],  # type: ignore[arg-type]
        api_key=environ.get(provider.key_variable) or None,
        model_token=None if token_spec is None else load_token_source(token_spec),
        realtime_beta=values["realtime_beta"],  # type: ignore[arg-type]
        public_url=values["public_url"],  # type: ignore[arg-type]
        twilio_auth_token=environ.get("TWILIO_AUTH_TOKEN") or None,
        max_calls=values["max_calls"],  # type: ignore[arg-type]
        max_pending_streams=values["max_pending_streams"],  # type: ignore[arg-type]
        request_timeout=values["request_timeout"],  # type: ignore[arg-type]
        drain_timeout=values["drain_timeout"],  # type: ignore[arg-type]
        max_waiting_connections=values["max_waiting_connections"],  # type: ignore[arg-type]
        stream_tokens=values["stream_tokens"],  # type: ignore[arg-type]
        stream_token_lifetime=values["stream_token_lifetime"],  # type: ignore[arg-type]
        allowed_hosts=values["allowed_hosts"],  # type: ignore[arg-type]
        metrics_token=environ.get("VOICEGUARD_METRICS_TOKEN") or None,
        max_message_bytes=values["max_message_bytes"],  # type: ignore[arg-type]
        max_body_bytes=values["max_body_bytes"],  # type: ignore[arg-type]
        handler=handler,
        trace_dir=values["trace_dir"] or None,  # type: ignore[arg-type]
        trace_audio=values["trace_audio"],  # type: ignore[arg-type]
        allowed_parameters=values["allowed_parameters"],  # type: ignore[arg-type]
    )
