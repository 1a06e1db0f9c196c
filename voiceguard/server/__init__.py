"""The reference server: Twilio Media Streams in, the OpenAI Realtime API out, every call guarded.

``voiceguard serve`` runs it. Needs the ``server`` extra (``pip install 'voiceguard[server]'``).
Its modules, one concern each:

* ``voiceguard.server.app``: the ASGI app (the endpoints, each call), :func:`create_app` and
  :func:`app_from_env`.
* ``voiceguard.server.config``: :class:`ServerConfig`.
* ``voiceguard.server.options``: the option table of the command line, the environment and the
  config.
* ``voiceguard.server.signatures``: Twilio request signatures.
* ``voiceguard.server.tokens``: stream tokens, binding a media stream to its call.
* ``voiceguard.server.edge``: the limits on connections that never finish a request (imports
  uvicorn).
* ``voiceguard.server.parameters``: the checks of a call's custom parameters.
* ``voiceguard.server.metrics``: the Prometheus metrics.
* ``voiceguard.server.capacity``: the calls of every worker process, counted together.
* ``voiceguard.server.workers``: the directory the workers share, and their supervisor (imports
  uvicorn).
* ``voiceguard.server.drain``: the graceful drain on SIGTERM.
* ``voiceguard.server.serve``: the ``voiceguard serve`` command, and :func:`serving` for tests.
"""

from __future__ import annotations

from voiceguard.server.app import app_from_env, create_app
from voiceguard.server.config import ServerConfig
from voiceguard.server.options import DEFAULT_REALTIME_URL
from voiceguard.server.parameters import (
    MAX_CUSTOM_PARAMETER_CHARS,
    MAX_CUSTOM_PARAMETERS,
    check_custom_parameters,
)
from voiceguard.server.serve import add_serve_command, serving
from voiceguard.server.signatures import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    compute_twilio_signature,
    signature_algorithm,
    validate_twilio_signature,
)
from voiceguard.server.tokens import StreamTokens

__all__ = (
    "DEFAULT_REALTIME_URL",
    "HMAC_SHA1",
    "HMAC_SHA256",
    "MAX_CUSTOM_PARAMETERS",
    "MAX_CUSTOM_PARAMETER_CHARS",
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "ServerConfig",
    "StreamTokens",
    "add_serve_command",
    "app_from_env",
    "check_custom_parameters",
    "compute_twilio_signature",
    "create_app",
    "serving",
    "signature_algorithm",
    "validate_twilio_signature",
)
