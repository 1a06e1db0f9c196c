"""Model providers as dialects of the one Realtime protocol: where to connect, how to sign in,
and what each changes in the messages.

OpenAI's GA Realtime API is the protocol voiceguard speaks. Azure OpenAI serves the same protocol
under another URL and another key header; xAI's Grok Voice Agent API speaks the same event family
with its own session shape. A :class:`ModelProvider` says all of that as data, so the bridge,
the reference server and the simulator take each provider as one choice (:data:`PROVIDERS`).
Every difference is recorded with its source on the provider's page of the documentation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, final
from urllib.parse import parse_qs, urlsplit

__all__ = ("PROVIDERS", "ModelProvider", "model_provider")

#: How a provider reads the key: ``Authorization: Bearer <key>`` or a header of its own.
KeyHeader = Literal["authorization", "api-key"]


def _same(message: dict[str, Any]) -> dict[str, Any]:
    return message


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ModelProvider:
    """One model provider: its endpoint, its sign-in and its differences from OpenAI GA.

    Attributes:
        name: The provider's name, as ``voiceguard serve --model-provider`` takes it.
        title: Its name for people.
        key_variable: The environment variable ``voiceguard serve`` reads the key from.
        key_header: Where the key goes: ``"authorization"`` (``Authorization: Bearer <key>``) or
            ``"api-key"`` (``api-key: <key>``, Azure's). A bearer token (e.g. Microsoft Entra
            ID) always goes in ``Authorization``.
        default_url: The endpoint used when none is configured; None when it is the user's own
            (Azure: each resource has its own host).
        url_example: An endpoint of the right shape, for error messages and ``--help``.
        paths: The URL paths the provider serves the protocol on.
        model_parameter: The query parameter that names the model (or the deployment).
    """

    name: str
    title: str
    key_variable: str
    key_header: KeyHeader
    default_url: str | None
    url_example: str
    paths: tuple[str, ...]
    model_parameter: str = "model"
    _adapt: Callable[[dict[str, Any]], dict[str, Any]] = field(
        default=_same, repr=False, compare=False
    )

    def headers(
        self, *, api_key: str | None = None, token: str | None = None
    ) -> list[tuple[str, str]]:
        """The request headers that sign a connection in.

        Args:
            api_key: The provider's key (in :attr:`key_header`).
            token: A bearer token (``Authorization: Bearer``), e.g. from Microsoft Entra ID;
                given, it is sent instead of the key.

        Returns:
            The headers, in order; empty when neither is given.
        """
        if token:
            return [("Authorization", f"Bearer {token}")]
        if not api_key:
            return []
        if self.key_header == "api-key":
            return [("api-key", api_key)]
        return [("Authorization", f"Bearer {api_key}")]

    def url_problem(self, url: str) -> str | None:
        """What is wrong with *url* as this provider's endpoint, or None if nothing is.

        A ``ws://`` URL (a local simulator) must have the provider's path too, so that a test
        against the simulator takes the path the real endpoint would.

        Args:
            url: The endpoint's ``ws://`` or ``wss://`` URL.

        Returns:
            One sentence saying what to change, or None.
        """
        try:
            parts = urlsplit(url)
        except ValueError:
            return f"not a URL; {self.title} takes e.g. {self.url_example}"
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            return f"a ws:// or wss:// URL with a host, e.g. {self.url_example}"
        path = parts.path.rstrip("/")
        if path not in self.paths:
            paths = " or ".join(self.paths)
            return f"{self.title} serves the Realtime API on {paths}, e.g. {self.url_example}"
        models = parse_qs(parts.query).get(self.model_parameter)
        if not models or not models[0].strip():
            what = "deployment" if self.name == "azure" else "model"
            return (
                f"the {what} is missing from the query string "
                f"(?{self.model_parameter}=...), e.g. {self.url_example}"
            )
        return None

    def adapt_session_update(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """A GA-shaped ``session.update`` (what :func:`session_update` builds) in this
        provider's shape; a copy, the given message is left as it is.

        Args:
            message: The ``session.update`` in OpenAI's GA shape.

        Returns:
            The message to send to this provider.
        """
        if self._adapt is _same:
            return dict(message)  # OpenAI's shape: nothing changes
        return self._adapt(copy.deepcopy(dict(message)))


def _xai_session_update(message: dict[str, Any]) -> dict[str, Any]:
    """OpenAI GA ``session.update`` -> xAI's: ``voice`` and ``turn_detection`` at the session's
    top level, no ``session.type`` and no ``session.model`` (xAI takes the model from the URL
    only); the audio formats stay under ``session.audio`` (recorded with sources on the xAI page
    of the docs)."""
    session = message.get("session")
    if not isinstance(session, dict):
        return message
    session.pop("type", None)
    session.pop("model", None)
    audio = session.get("audio")
    if isinstance(audio, dict):
        audio_input = audio.get("input")
        if isinstance(audio_input, dict) and "turn_detection" in audio_input:
            session["turn_detection"] = audio_input.pop("turn_detection")
        audio_output = audio.get("output")
        if isinstance(audio_output, dict) and "voice" in audio_output:
            session["voice"] = audio_output.pop("voice")
    return message


#: OpenAI's GA Realtime API.
OPENAI: Final = ModelProvider(
    name="openai",
    title="OpenAI",
    key_variable="OPENAI_API_KEY",
    key_header="authorization",
    default_url="wss://api.openai.com/v1/realtime?model=gpt-realtime",
    url_example="wss://api.openai.com/v1/realtime?model=gpt-realtime",
    paths=("/v1/realtime",),
)
#: Azure OpenAI's GA Realtime API (the v1 route): the deployment in ``?model=``.
AZURE: Final = ModelProvider(
    name="azure",
    title="Azure OpenAI",
    key_variable="AZURE_OPENAI_API_KEY",
    key_header="api-key",
    default_url=None,
    url_example="wss://<resource>.openai.azure.com/openai/v1/realtime?model=<deployment>",
    paths=("/openai/v1/realtime",),
)
#: xAI's Grok Voice Agent API.
XAI: Final = ModelProvider(
    name="xai",
    title="xAI Grok Voice Agent",
    key_variable="XAI_API_KEY",
    key_header="authorization",
    default_url="wss://api.x.ai/v1/realtime?model=grok-voice-latest",
    url_example="wss://api.x.ai/v1/realtime?model=grok-voice-latest",
    paths=("/v1/realtime",),
    _adapt=_xai_session_update,
)

#: Every provider, by name.
PROVIDERS: Final[Mapping[str, ModelProvider]] = {p.name: p for p in (OPENAI, AZURE, XAI)}


def model_provider(name: str) -> ModelProvider:
    """The provider called *name* (``"openai"``, ``"azure"`` or ``"xai"``).

    Args:
        name: The provider's name, in any case.

    Returns:
        The provider.

    Raises:
        ValueError: Naming the providers there are.
    """
    provider = PROVIDERS.get(name.strip().lower())
    if provider is None:
        raise ValueError(f"model provider {name!r}; allowed: {', '.join(PROVIDERS)}")
    return provider
