"""Stream tokens: a media stream bound to the call whose webhook the server answered.

Twilio signs a media stream's upgrade request over its URL alone, and that URL is the same for
every call, so a captured ``X-Twilio-Signature`` would open any number of streams, each a model
session on the operator's API key. With stream tokens on, the TwiML the server writes for a call
carries a short-lived token as a stream ``<Parameter>`` (it arrives in
``start.customParameters``): an HMAC-SHA256, keyed by a secret derived from the Twilio auth
token, over the call's ``CallSid``, ``AccountSid`` and an expiry time. The stream's ``start`` must
bring a token that is valid for its own call, not expired, and not used before by this process:
a replayed signature or a replayed token opens nothing.

Tokens are checked in the worker that takes the stream; the webhook may have been answered by
another worker or machine, as long as all share the auth token (the key) and roughly the time
(expiry is wall-clock seconds). A token used once is remembered by the process that saw it until
it expires, so with several workers a replayed token could open one stream per worker while it
lives (a minute by default): still bounded, and only for the token's own call.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Final, final

from voiceguard.errors import CallRefused

__all__ = ("STREAM_TOKEN_PARAMETER", "StreamTokens")

#: The stream ``<Parameter>`` that carries the token.
STREAM_TOKEN_PARAMETER: Final = "voiceguard_token"
_VERSION: Final = "v1"
_KEY_LABEL: Final = b"voiceguard stream token v1"
#: Tokens remembered as used, at most (older ones are forgotten once expired).
_MAX_USED: Final = 100_000


@final
class StreamTokens:
    """Issues and checks the tokens that bind media streams to their calls.

    Args:
        auth_token: The Twilio auth token; the tokens' key is derived from it (never the token
            itself), so every server that checks Twilio's signatures can check tokens too.
        lifetime: Seconds a token is valid after the webhook answered. Twilio opens the stream
            right after it fetched the TwiML; the default 60 s allows a slow network.
        clock: Wall-clock seconds (a token may be checked by another process than the one that
            issued it); :func:`time.time` by default, injected in tests.
    """

    def __init__(
        self,
        auth_token: str,
        *,
        lifetime: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not auth_token:
            raise ValueError("stream tokens need the Twilio auth token")
        self._key = hmac.new(auth_token.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()
        self._lifetime = lifetime
        self._clock = clock
        self._used: dict[str, float] = {}  # token -> expiry

    @property
    def remembered(self) -> int:
        """Tokens remembered as used (each until it expires)."""
        return len(self._used)

    def issue(self, call_sid: str, account_sid: str) -> str:
        """A token for the call, for the TwiML's ``<Parameter name="voiceguard_token">``."""
        expires = int(self._clock() + self._lifetime)
        return f"{_VERSION}.{expires}.{self._mac(call_sid, account_sid, expires)}"

    def check(self, start_parameters: Mapping[str, str], call_sid: str, account_sid: str) -> None:
        """Check the token a stream's ``start`` brought, and use it up.

        Args:
            start_parameters: ``start.customParameters``.
            call_sid: ``start.callSid``.
            account_sid: ``start.accountSid``.

        Raises:
            ~voiceguard.CallRefused: Why (missing, malformed, for another call, expired, used).
        """
        token = start_parameters.get(STREAM_TOKEN_PARAMETER)
        if not token:
            raise CallRefused(
                f"no stream token (customParameters.{STREAM_TOKEN_PARAMETER}); streams are "
                "opened only by the TwiML this server wrote for the call"
            )
        version, _, rest = token.partition(".")
        expires_text, _, mac = rest.partition(".")
        if version != _VERSION or not expires_text.isdigit() or len(expires_text) > 12:
            raise CallRefused("malformed stream token")
        expires = int(expires_text)
        if not hmac.compare_digest(mac, self._mac(call_sid, account_sid, expires)):
            raise CallRefused("the stream token is not this call's")
        now = self._clock()
        if now > expires:
            raise CallRefused(f"the stream token expired {now - expires:.0f} s ago")
        self._forget(now)
        if token in self._used:
            raise CallRefused("the stream token was used already (a replayed stream)")
        self._used[token] = expires

    def _mac(self, call_sid: str, account_sid: str, expires: int) -> str:
        signed = f"{_VERSION}|{call_sid}|{account_sid}|{expires}".encode()
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode("ascii")

    def _forget(self, now: float) -> None:
        # Tokens are used in about the order they expire: forget from the oldest on.
        used = self._used
        while used:
            token, expires = next(iter(used.items()))
            if expires >= now and len(used) < _MAX_USED:
                return
            del used[token]
