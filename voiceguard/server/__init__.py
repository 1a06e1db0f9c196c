"""The reference server: Twilio Media Streams in, the OpenAI Realtime API out, every call guarded.

See ``voiceguard.server.app`` for the endpoints; ``voiceguard serve`` runs it. Needs the
``server`` extra (``pip install 'voiceguard[server]'``).
"""

from __future__ import annotations

from voiceguard.server.app import (
    DEFAULT_REALTIME_URL,
    MAX_CUSTOM_PARAMETER_CHARS,
    MAX_CUSTOM_PARAMETERS,
    ServerConfig,
    add_serve_command,
    app_from_env,
    check_custom_parameters,
    compute_twilio_signature,
    create_app,
    serving,
    validate_twilio_signature,
)

__all__ = (
    "DEFAULT_REALTIME_URL",
    "MAX_CUSTOM_PARAMETERS",
    "MAX_CUSTOM_PARAMETER_CHARS",
    "ServerConfig",
    "add_serve_command",
    "app_from_env",
    "check_custom_parameters",
    "compute_twilio_signature",
    "create_app",
    "serving",
    "validate_twilio_signature",
)
