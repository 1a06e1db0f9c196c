"""Twilio request signatures: ``X-Twilio-Signature``, computed and checked.

The server page of the documentation (*Security*) says what is signed and how it is checked.

With a Twilio auth token configured, the reference server refuses every webhook and every media
stream whose signature does not match (:func:`validate_twilio_signature`). The functions work on
their own too, for a server of your own.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ("SIGNATURE_HEADER", "compute_twilio_signature", "validate_twilio_signature")

#: The request header that carries Twilio's signature (lower case, as ASGI gives headers).
SIGNATURE_HEADER: Final = "x-twilio-signature"


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
