"""Validated, frozen configuration: every setting of voiceguard, in one place.

Every config class is a frozen, slotted, keyword-only dataclass that checks its values when it is
built (and again on :func:`dataclasses.replace`). A bad value raises
:class:`~voiceguard.ConfigError` naming the field, the value and the allowed range::

    >>> CancelConfig(cooldown=-1)
    Traceback (most recent call last):
    ...
    voiceguard.errors.ConfigError: CancelConfig.cooldown = -1 is not allowed;
    allowed: a number, 0 <= value <= 10 (seconds)

The guards' own settings are in ``voiceguard.config.guards``, what counts as a backchannel in
``voiceguard.config.backchannel``, the call's timers in
``voiceguard.config.timers``, the turn engine and its two ways in (the reference bridge, the
middleware) in ``voiceguard.config.turns``, and the plain-data form (JSON files, traces) in
``voiceguard.config.mapping``. Everything is importable from ``voiceguard.config`` (and the
classes from ``voiceguard``).
"""

from __future__ import annotations

from voiceguard.config.backchannel import ACKNOWLEDGEMENTS, BackchannelConfig
from voiceguard.config.guards import (
    CalibrationConfig,
    CancelConfig,
    CreateConfig,
    PlayoutConfig,
    StateConfig,
)
from voiceguard.config.mapping import config_from_mapping, config_to_mapping
from voiceguard.config.timers import (
    CallScopeConfig,
    HangupFallbackConfig,
    IdleLadderConfig,
    MaxCallDurationConfig,
    ResponseWatchdogConfig,
)
from voiceguard.config.turns import BridgeConfig, GuardConfig, HandlerConfig, TurnConfig

__all__ = (
    "ACKNOWLEDGEMENTS",
    "BackchannelConfig",
    "BridgeConfig",
    "CalibrationConfig",
    "CallScopeConfig",
    "CancelConfig",
    "CreateConfig",
    "GuardConfig",
    "HandlerConfig",
    "HangupFallbackConfig",
    "IdleLadderConfig",
    "MaxCallDurationConfig",
    "PlayoutConfig",
    "ResponseWatchdogConfig",
    "StateConfig",
    "TurnConfig",
    "config_from_mapping",
    "config_to_mapping",
)
