"""A call's ``start.customParameters`` (the TwiML ``<Parameter>`` values), checked.

Twilio passes the parameters through unchanged, so they are as trustworthy as whoever wrote the
TwiML (or reached an unsigned stream): the reference server checks them
(:func:`check_custom_parameters`) before it opens a model session for the call.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from voiceguard.errors import RemoteProtocolError

__all__ = (
    "MAX_CUSTOM_PARAMETERS",
    "MAX_CUSTOM_PARAMETER_CHARS",
    "check_custom_parameters",
    "is_parameter_name",
)

#: Limits on a call's ``start.customParameters`` (the TwiML ``<Parameter>`` values).
MAX_CUSTOM_PARAMETERS: Final = 32
MAX_CUSTOM_PARAMETER_CHARS: Final = 1024
_PARAMETER_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")


def is_parameter_name(name: str) -> bool:
    """Whether *name* may name a custom parameter: 1 to 64 letters, digits, ``_``, ``-`` or ``.``.

    Args:
        name: The parameter's name.

    Returns:
        True if it is well formed.
    """
    return _PARAMETER_NAME.match(name) is not None


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
        if not (isinstance(key, str) and is_parameter_name(key)):
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
