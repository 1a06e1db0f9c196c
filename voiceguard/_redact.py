"""Keeping credentials out of logs and traces: the API key, auth tokens, credential headers.

A peer can echo a secret back (a model ``error`` event quoting the key, a close reason), and the
WebSocket and HTTP libraries log what they send and receive at DEBUG, often as objects (frames,
byte strings, header lists) rather than strings. So the cleaning works on the *rendered* text,
whatever produced it:

* :class:`SecretFilter`, a :class:`logging.Filter` for handlers, renders each record's message,
  exception and stack, blanks them with :func:`redact_text`, and leaves only the clean text;
* :class:`RedactingLogger` does the same for the logger the transports hand to ``websockets``;
* :class:`~voiceguard.observe.trace.TraceRecorder` blanks the secrets in each line it writes.

What :func:`redact_text` replaces by :data:`REDACTED`:

* every secret registered with :func:`add_secrets` or given to the tool, as plain text and in its
  percent-encoded (URL-quoted) form; no other encoding (base64, hex, ...) is looked for. A
  secret shorter than :data:`MIN_SECRET_LENGTH` characters is never matched as a substring: it
  would blank ordinary words;
* a fragment of a secret (:data:`MIN_FRAGMENT_LENGTH` characters or more) right at an elision
  mark ``...``, since ``websockets`` logs a long frame as its start and its end;
* the value of a credential header (:data:`CREDENTIAL_HEADERS`, any case), as a ``Name: value``
  line (how ``websockets`` and h11 print headers) or a quoted pair (``('authorization', '...')``,
  ``{"api-key": "..."}``);
* the token after ``Bearer``, anywhere: :data:`MIN_SECRET_LENGTH` characters or more with a
  digit among them (so the words in "missing bearer authentication" stay).

The server registers its secrets once (:func:`add_secrets`); every filter, logger adapter and
trace recorder reads the registry at each use, so the order of set-up does not matter.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import quote

__all__ = (
    "CREDENTIAL_HEADERS",
    "MIN_FRAGMENT_LENGTH",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "RedactingLogger",
    "SecretFilter",
    "add_secrets",
    "blank_forms",
    "install_secret_filter",
    "redact_text",
    "registered_secrets",
    "secret_forms",
)

REDACTED: Final = "<redacted>"
#: Shorter secrets are not matched as substrings (they would blank ordinary words).
MIN_SECRET_LENGTH: Final = 8
#: The shortest piece of a secret blanked next to an elision mark ``...``.
MIN_FRAGMENT_LENGTH: Final = 4
#: Headers whose value is a credential, with any ``<prefix>-api-key`` (``x-api-key``);
#: ``x-twilio-webhooks-signature-settings`` is not one.
CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "openai-api-key", "api-key", "x-twilio-signature"}
)

_ELISION: Final = "..."
_NAMES: Final = r"(?:proxy-)?authorization|(?:[a-z0-9]+-)*api-key|x-twilio-signature"
#: A credential header's name contains one of these (a cheap test before the patterns).
_HEADER_WORDS: Final = ("authorization", "api-key", "x-twilio-signature")
_HEADER_LINE: Final = re.compile(
    rf"(?im)(?<![\w-])(?P<name>{_NAMES})(?P<sep>[ \t]*:[ \t]*)[^\r\n]*"
)
_HEADER_PAIR: Final = re.compile(
    rf"(?i)(?P<q1>['\"])(?P<name>{_NAMES})(?P=q1)(?P<sep>\s*[:,]\s*)(?P<pre>b?)(?P<q2>['\"])"
    r"(?:\\.|(?!(?P=q2))[^\\])*(?P=q2)"
)
#: A token has a digit somewhere: "bearer authentication" is prose, not a credential.
_BEARER: Final = re.compile(
    r"(?i)\b(?P<scheme>bearer)(?P<sep>\s+)(?=[A-Za-z._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{8,}"
)
#: Argument types whose ``%`` rendering is fixed by their value (kept as arguments when clean).
_PLAIN_TYPES: Final = frozenset({str, int, float, bool, type(None)})

_registered: tuple[str, ...] = ()
_registry_lock: Final = threading.Lock()


# ============================================================================================
# The registry


def add_secrets(*values: str | None) -> None:
    """Register secrets that every filter, redacting logger and trace recorder blanks from now on.

    Empty values and None are skipped (so ``add_secrets(config.api_key, config.token)`` is fine
    when either is unset); registering a secret twice is harmless. The registry is one tuple,
    replaced whole, so readers on other threads never see it half-updated.
    """
    global _registered  # noqa: PLW0603 - the one module-level registry
    with _registry_lock:
        new = tuple(v for v in dict.fromkeys(values) if v and v not in _registered)
        _registered = _registered + new


def registered_secrets() -> tuple[str, ...]:
    """The secrets registered with :func:`add_secrets`, in order."""
    return _registered


# ============================================================================================
# Cleaning text


@functools.lru_cache(maxsize=64)
def _forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    forms: dict[str, None] = {}
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            forms[secret] = None
            forms[quote(secret, safe="")] = None
    return tuple(sorted(forms, key=len, reverse=True))


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """The substrings that stand for *secrets*: each one long enough, plain and percent-encoded.

    Longest first, so a secret that contains another is blanked whole.
    """
    return _forms(tuple(secrets))


def blank_forms(text: str, forms: Sequence[str]) -> str:
    """*text* with each of *forms* (from :func:`secret_forms`) replaced by :data:`REDACTED`."""
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def _head_size(text: str, form: str) -> int:
    """The length of the longest start of *form* that *text* ends with (0 if too short)."""
    tail = text[-(len(form) - 1) :]
    start = tail.find(form[:MIN_FRAGMENT_LENGTH])
    while start != -1:  # the earliest match that runs to the end is the longest piece
        if form.startswith(tail[start:]):
            return len(tail) - start
        start = tail.find(form[:MIN_FRAGMENT_LENGTH], start + 1)
    return 0


def _blank_elided(text: str, forms: Sequence[str]) -> str:
    """Blank the pieces of a secret cut by an elision mark (``'{"error": "sk-ab...cd"}'``)."""
    parts = text.split(_ELISION)
    for index in range(len(parts) - 1):
        left, right = parts[index], parts[index + 1]
        for form in forms:
            if size := _head_size(left, form):
                left = left[:-size] + REDACTED
            # The end of a secret starting *right* is the start of the reversed secret.
            if size := _head_size(right[: len(form) - 1][::-1], form[::-1]):
                right = REDACTED + right[size:]
        parts[index], parts[index + 1] = left, right
    return _ELISION.join(parts)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """*text* with every secret (*secrets* and the registered ones), credential header value and
    bearer token replaced by :data:`REDACTED` (see the module documentation for the rules)."""
    forms = secret_forms((*secrets, *_registered))
    text = blank_forms(text, forms)
    if forms and _ELISION in text:
        text = _blank_elided(text, forms)
    lowered = text.lower()  # the patterns run only where they could match: most lines are clean
    if any(word in lowered for word in _HEADER_WORDS):
        text = _HEADER_PAIR.sub(rf"\g<q1>\g<name>\g<q1>\g<sep>\g<pre>\g<q2>{REDACTED}\g<q2>", text)
        text = _HEADER_LINE.sub(rf"\g<name>\g<sep>{REDACTED}", text)
    if "bearer" in lowered:
        text = _BEARER.sub(rf"\g<scheme>\g<sep>{REDACTED}", text)
    return text


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not break a log call
        return f"<{type(value).__name__} object>"


def _format(msg: str, args: object) -> str | None:
    """``msg % args`` as ``LogRecord.getMessage`` does it, or None if the arguments do not fit."""
    if not args:
        return msg
    try:
        return msg % args
    except Exception:
        return None


def _render(msg: object, args: object) -> str:
    """What ``LogRecord.getMessage`` gives, or a plain rendering if the arguments do not fit."""
    text = _safe_str(msg)
    rendered = _format(text, args)
    # Wrong arguments: show them, as logging's own error report would.
    return rendered if rendered is not None else f"{text} {_safe_str(args)}"


def _format_exception(exc_info: object) -> str:
    if isinstance(exc_info, BaseException):
        info: object = (type(exc_info), exc_info, exc_info.__traceback__)
    elif isinstance(exc_info, tuple):
        info = exc_info
    else:
        info = sys.exc_info()
    return logging.Formatter().formatException(info)  # type: ignore[arg-type]


def _plain(args: object) -> bool:
    if isinstance(args, tuple):
        return all(type(arg) in _PLAIN_TYPES for arg in args)
    if isinstance(args, Mapping):
        return all(type(arg) in _PLAIN_TYPES for arg in args.values())
    return False


def _redact_args(args: Any, secrets: tuple[str, ...]) -> Any:
    def one(arg: object) -> object:
        return redact_text(arg, secrets) if isinstance(arg, str) else arg

    if isinstance(args, Mapping):
        return {key: one(value) for key, value in args.items()}
    return tuple(one(arg) for arg in args)


# ============================================================================================
# Logging


@final
class SecretFilter(logging.Filter):
    """Cleans every record a handler emits; never drops one.

    Add it to a handler (a filter on a logger would miss the records of its child loggers). For
    each record it renders the message, whatever the arguments are (frame objects, bytes,
    dictionaries, exceptions), blanks it with :func:`redact_text`, and stores the clean text as
    ``record.msg`` with ``record.args = None``. Arguments that are plain strings and numbers keep
    their place instead (only their secrets blanked) when the result renders clean, because some
    formatters read them (uvicorn's access log unpacks ``record.args``). The exception is
    formatted into ``record.exc_text``, cleaned, and ``record.exc_info`` cleared, so handlers
    print the clean text; ``record.stack_info`` is cleaned too.

    Args:
        secrets: Secrets of this filter's own, on top of the registered ones
            (:func:`add_secrets`), which it reads at every record. A secret shorter than
            :data:`MIN_SECRET_LENGTH` characters is not matched as a substring.

    With no arguments it is what ``logging.config.dictConfig`` builds from
    ``{"()": "voiceguard._redact.SecretFilter"}``.
    """

    def __init__(self, *, secrets: Iterable[str] = ()) -> None:
        super().__init__()  # no name: a named filter would drop other loggers' records
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        """Clean *record* in place; always True."""
        try:
            self._clean(record)
        except Exception:  # never raise into a logging call, never let an unclean record out
            record.msg = "<log record withheld: redacting it failed>"
            record.args = None
            record.exc_info = record.exc_text = record.stack_info = None
        return True

    def _clean(self, record: logging.LogRecord) -> None:
        secrets = self._secrets
        text = _render(record.msg, record.args)
        clean = redact_text(text, secrets)
        # Plain arguments render the same every time, so a formatter may still read them.
        plain = (
            type(record.msg) is str
            and bool(record.args)
            and _plain(record.args)
            and _format(record.msg, record.args) == text
        )
        if not plain or clean != text:
            msg = redact_text(record.msg, secrets) if plain else ""
            args = _redact_args(record.args, secrets) if plain else None
            if plain and _format(msg, args) == clean:
                record.msg, record.args = msg, args
            else:
                record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _format_exception(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, secrets)


def install_secret_filter(
    secrets: Iterable[str] = (), *, loggers: Iterable[str] = ("",)
) -> SecretFilter:
    """Register *secrets* and add one :class:`SecretFilter` to every handler of *loggers*.

    For code that configures logging itself (``logging.basicConfig``); under a
    ``dictConfig``, name the filter on each handler instead. Handlers added later are not
    covered. A handler that already has a :class:`SecretFilter` is left as it is.

    Args:
        secrets: Registered (:func:`add_secrets`), so every filter sees them.
        loggers: The loggers whose handlers get the filter; ``""`` is the root logger.

    Returns:
        The filter added.
    """
    add_secrets(*secrets)
    secret_filter = SecretFilter()
    for name in loggers:
        for handler in logging.getLogger(name or None).handlers:
            if not any(isinstance(f, SecretFilter) for f in handler.filters):
                handler.addFilter(secret_filter)
    return secret_filter


if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # subscriptable from Python 3.11 on
    _LoggerAdapter = logging.LoggerAdapter


class RedactingLogger(_LoggerAdapter):
    """A logger for ``websockets`` that writes only cleaned text (see :func:`redact_text`).

    ``websockets`` logs frames and headers as objects (``"< %s", frame``), so the message is
    rendered first and then cleaned of *secrets*, the registered ones and credential headers;
    an exception is cleaned and appended to the text.
    """

    def __init__(self, logger: logging.Logger, secrets: tuple[str, ...] = ()) -> None:
        super().__init__(logger, {})
        self._secrets = tuple(s for s in secrets if s)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = redact_text(_render(msg, args), self._secrets)
        exc_info = kwargs.pop("exc_info", None)
        if exc_info:
            text += "\n" + redact_text(_format_exception(exc_info), self._secrets)
        self.logger.log(level, text, **kwargs)
