"""Twilio request signatures: ``X-Twilio-Signature``, computed and checked.

The server page of the documentation (*Security*) says what is signed and how it is checked.

With a Twilio auth token configured, the reference server refuses every webhook and every media
stream whose signature does not match (:func:`validate_twilio_signature`). The functions work on
their own too, for a server of your own.

A signature is Base64(HMAC(secret, URL + sorted parameters)). The HMAC is SHA-1 with the
account's auth token (the legacy signature, the default), or the algorithm that the
``X-Twilio-Webhooks-Signature-Settings`` header names (``key=<sharedKeyId>,algorithm=HMAC_SHA256``,
read by :func:`signature_algorithm`) with that SharedKey's secret. A JSON webhook signs its URL
only, the URL's ``bodySHA256`` query parameter carrying the SHA-256 of the body.

Validation accepts exactly what ``twilio.request_validator.RequestValidator.validate`` (twilio
9.13.0) accepts, and refuses everything else, including the inputs on which that validator raises
an exception (a malformed port, a malformed IPv6 host, a missing signature). The ``twilio``
package is not needed: this module is written to behave as it does, its odd corners included
(they are noted where they are handled).

.. versionadded:: 0.1.0

.. versionchanged:: 0.2.0
   HMAC-SHA256 signatures (the signature settings header), ``bodySHA256`` JSON webhooks, and
   the URL variants exactly as the ``twilio`` package tries them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import ParseResult, parse_qs, urlparse

__all__ = (
    "HMAC_SHA1",
    "HMAC_SHA256",
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "compute_twilio_signature",
    "signature_algorithm",
    "validate_twilio_signature",
)

#: The request header that carries Twilio's signature (lower case, as ASGI gives headers).
SIGNATURE_HEADER: Final = "x-twilio-signature"

#: The request header that names the signing algorithm of a webhook signed with a SharedKey,
#: ``key=<sharedKeyId>,algorithm=<algorithm>`` (lower case, as ASGI gives headers); see
#: :func:`signature_algorithm`.
#:
#: .. versionadded:: 0.2.0
SIGNATURE_SETTINGS_HEADER: Final = "x-twilio-webhooks-signature-settings"

#: The legacy signature, with the account's auth token: the default algorithm.
#:
#: .. versionadded:: 0.2.0
HMAC_SHA1: Final = "HMAC_SHA1"

#: The signature with a SharedKey's secret, named by ``SIGNATURE_SETTINGS_HEADER``.
#:
#: .. versionadded:: 0.2.0
HMAC_SHA256: Final = "HMAC_SHA256"

#: The hash (a :mod:`hashlib` name) of each supported algorithm.
_HASH_NAMES: Final[Mapping[str, str]] = {HMAC_SHA1: "sha1", HMAC_SHA256: "sha256"}

#: The query parameter of a JSON webhook's URL that carries the body's SHA-256 (hex).
_BODY_HASH_PARAMETER: Final = "bodySHA256"


def signature_algorithm(settings_header: str | None) -> str:
    """The signing algorithm that an ``X-Twilio-Webhooks-Signature-Settings`` header names.

    The header is a comma-separated list of ``name=value`` parts; the first ``algorithm`` part
    with a non-empty value names the algorithm (spaces around names and values ignored, the value
    returned as written: :func:`validate_twilio_signature` then compares it case-insensitively).
    A missing or empty header, or one without an ``algorithm`` part, means the legacy signature,
    ``HMAC_SHA1``. This is ``twilio.request_validator.get_signature_algorithm``.

    Args:
        settings_header: The header's value, e.g.
            ``key=webhooks_sharedkey_...,algorithm=HMAC_SHA256``; None if the request has none.

    Returns:
        The algorithm's name, e.g. ``HMAC_SHA256``; perhaps one that is not supported.

    .. versionadded:: 0.2.0
    """
    for part in (settings_header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip()
    return HMAC_SHA1


def _hash_name(algorithm: str | None) -> str | None:
    """The hash of a supported algorithm (named in any case; None means SHA-1), else None."""
    # str.upper() as the package does, Unicode case mapping included ("\u017f".upper() is "S").
    return _HASH_NAMES.get((algorithm or HMAC_SHA1).upper())


def _values(params: Mapping[str, str | Sequence[str]], name: str) -> list[str]:
    """A parameter's values: all of them from a multi-dict, as the ``twilio`` package reads them.

    ``getall`` (multidict, aiohttp) first, then ``getlist`` (Django, Werkzeug, Starlette), then
    the mapping's value: one string, or (voiceguard's own form) a sequence of strings.
    """
    for method in ("getall", "getlist"):
        try:
            return list(getattr(params, method)(name))
        except AttributeError:
            continue
    value = params[name]
    return [value] if isinstance(value, str) else list(value)


def compute_twilio_signature(
    auth_token: str,
    url: str,
    params: Mapping[str, str | Sequence[str]] | None = None,
    *,
    algorithm: str | None = None,
) -> str:
    """Twilio's ``X-Twilio-Signature`` of a request: Base64(HMAC(secret, URL + params)).

    The signed string is the full URL as Twilio requested it (a GET's query string included),
    followed by each POST parameter's name and value, names sorted, and a repeated name's values
    sorted (duplicates counted once), exactly as ``twilio.request_validator.RequestValidator``
    computes it. A media stream's upgrade request is signed over its ``wss://`` URL with no
    parameters; a JSON webhook over its URL (with ``bodySHA256``) with no parameters.

    Args:
        auth_token: The secret: the Twilio account's auth token, or for a webhook signed with a
            SharedKey (``SIGNATURE_SETTINGS_HEADER``), that key's secret.
        url: The full URL, e.g. ``https://voice.example.com/incoming-call``.
        params: The form parameters of a POST; a name may map to several values (a sequence of
            strings, or a multi-dict's ``getall``/``getlist``).
        algorithm: ``HMAC_SHA1`` (None, the default) or ``HMAC_SHA256``, in any case;
            see :func:`signature_algorithm`.

    Returns:
        The signature, Base64.

    Raises:
        ValueError: The algorithm is not supported.

    .. versionchanged:: 0.2.0
       The *algorithm* argument; multi-dicts' ``getall``/``getlist``.
    """
    hash_name = _hash_name(algorithm)
    if hash_name is None:
        raise ValueError(f"unsupported webhook signature algorithm: {algorithm!r}")
    signed = url
    if params:
        for name in sorted(set(params)):
            for item in sorted(set(_values(params, name))):
                signed += name + item
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hash_name).digest()
    return base64.b64encode(digest).decode("ascii")


def _without_port(parsed: ParseResult) -> str:
    """The URL without its port, as ``twilio.request_validator.remove_port`` makes it."""
    if not parsed.port:
        # Port 0 counts as no port, as in the package: the URL stays as it is.
        return parsed.geturl()
    # The package cuts the network location at its first colon, not at the port. So an IPv6
    # host ("[::1]:8080" becomes "[") or a user with a password ("user:pw@host:8443" becomes
    # "user") loses more than its port, and a signature over that URL without its port is then
    # refused. Deliberately the same here: a signature passes if and only if the package passes it.
    return parsed._replace(netloc=parsed.netloc.split(":")[0]).geturl()


def _with_port(parsed: ParseResult) -> str:
    """The URL with the scheme's default port, as ``twilio.request_validator.add_port`` makes it."""
    if parsed.port:
        return parsed.geturl()
    # 443 for https only: wss:// (a media stream) and every other scheme get 80, as in the
    # package, though wss's default port is 443. "host:" (an empty port) becomes "host::80".
    port = 443 if parsed.scheme == "https" else 80
    return parsed._replace(netloc=f"{parsed.netloc}:{port}").geturl()


def _equal(expected: str, given: str) -> bool:
    """Whether two strings are equal, compared in constant time (for a given length)."""
    # UTF-8 with surrogates passed keeps every string distinct, and hmac.compare_digest takes
    # bytes of any value (it refuses str with non-ASCII characters).
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def validate_twilio_signature(
    auth_token: str,
    url: str,
    params: Mapping[str, str | Sequence[str]] | str | None,
    signature: str | None,
    *,
    algorithm: str | None = None,
) -> bool:
    """Whether *signature* is Twilio's signature of the request (compared in constant time).

    This accepts exactly what ``twilio.request_validator.RequestValidator.validate`` accepts.
    The URL is parsed and rebuilt by :mod:`urllib.parse` (so the scheme is lower-cased, tabs and
    newlines are removed, and an empty ``?``, ``#`` or ``;`` is dropped), then tried without its
    port and with the scheme's default port (443 for ``https``, 80 for any other scheme, ``wss``
    included). The signature is compared as given: surrounding whitespace makes it invalid.

    For a JSON webhook, pass the raw body as *params*: if the URL's query has a ``bodySHA256``
    parameter, the body's SHA-256 (lower-case hex) must equal its first value, and the signature
    is checked over the URL with no parameters. A body without that parameter is valid only if it
    is empty (then it is as no parameters).

    Args:
        auth_token: The secret: the Twilio account's auth token, or for a webhook signed with a
            SharedKey (``SIGNATURE_SETTINGS_HEADER``), that key's secret.
        url: The full public URL of the request, as Twilio requested it.
        params: The form parameters of a POST (None or empty for a GET or a WebSocket upgrade;
            a name may map to several values), or the raw body of a JSON webhook.
        signature: The ``X-Twilio-Signature`` header; None or empty is never valid.
        algorithm: ``HMAC_SHA1`` (None, the default) or ``HMAC_SHA256``, in any case:
            :func:`signature_algorithm` of the request's ``SIGNATURE_SETTINGS_HEADER``. An
            algorithm not supported is never valid.

    Returns:
        True if the signature matches. False, never an exception, for a URL that cannot be
        parsed (a malformed port or IPv6 host) or text that cannot be encoded in UTF-8.

    .. versionchanged:: 0.2.0
       The *algorithm* argument, a JSON body as *params*, and the URL variants exactly as the
       ``twilio`` package tries them (the signature is no longer stripped).
    """
    if _hash_name(algorithm) is None or not signature:
        # The package refuses an unsupported algorithm; it raises TypeError on None.
        return False
    try:
        # urlparse and geturl, as the package calls them: the two rebuild a URL alike on every
        # Python version (urlsplit alone would keep an empty ";params").
        parsed = urlparse(url)
        candidates = (_without_port(parsed), _with_port(parsed))
        body_matches = True
        form: Mapping[str, str | Sequence[str]] | None
        if isinstance(params, str):
            body_hash = parse_qs(parsed.query).get(_BODY_HASH_PARAMETER)
            if body_hash is not None:
                digest = hashlib.sha256(params.encode("utf-8")).hexdigest()
                body_matches = _equal(digest, body_hash[0])
            elif params:
                # Without bodySHA256 the package reads a non-empty body's characters as
                # parameter names and raises TypeError: never valid.
                return False
            form = None
        else:
            form = params
        matched = False
        for candidate in candidates:
            expected = compute_twilio_signature(auth_token, candidate, form, algorithm=algorithm)
            matched |= _equal(expected, signature)
    except ValueError:
        # urlparse and .port raise ValueError on a malformed IPv6 host or port, and encoding
        # raises UnicodeEncodeError on a lone surrogate: the package raises, we refuse.
        return False
    return body_matches and matched
