"""Config, decisions and errors, and the deprecated clocks."""

from __future__ import annotations

import dataclasses
import math

import pytest

from voiceguard import (
    Action,
    CancelConfig,
    ConfigError,
    CreateConfig,
    Decision,
    Reason,
    RemoteProtocolError,
    StateConfig,
    StateTransitionError,
    Verdict,
)


def test_the_deprecated_clocks_still_work_and_warn() -> None:
    import voiceguard  # noqa: PLC0415

    with pytest.warns(DeprecationWarning, match="no API takes a clock"):
        ManualClock = voiceguard.ManualClock
    with pytest.warns(DeprecationWarning, match="ClockError is deprecated"):
        ClockError = voiceguard.ClockError
    with pytest.warns(DeprecationWarning, match="SystemClock is deprecated"):
        SystemClock = voiceguard.SystemClock
    with pytest.warns(DeprecationWarning, match="Clock is deprecated"):
        Clock = voiceguard.Clock
    with pytest.warns(DeprecationWarning, match="ClockError"):
        assert voiceguard.errors.ClockError is ClockError
    clock = ManualClock(10.0)  # type: ignore[operator]
    assert clock.advance(0.5) == 10.5
    with pytest.raises(ClockError, match="cannot go backwards"):  # type: ignore[call-overload]
        clock.set(1.0)
    assert isinstance(SystemClock(), Clock)  # type: ignore[operator, arg-type]
    assert "Clock" not in voiceguard.__all__


@pytest.mark.parametrize(
    ("build", "field", "allowed"),
    [
        (lambda: CancelConfig(cooldown=-1), "CancelConfig.cooldown", "0 <= value <= 10"),
        (lambda: CancelConfig(cooldown=11), "CancelConfig.cooldown", "0 <= value <= 10"),
        (lambda: CancelConfig(cooldown=math.nan), "CancelConfig.cooldown", "a number"),
        (lambda: CancelConfig(cooldown=True), "CancelConfig.cooldown", "a number"),
        (
            lambda: CancelConfig(cooldown="0.2"),  # type: ignore[arg-type]
            "CancelConfig.cooldown",
            "a number",
        ),
        (
            lambda: CreateConfig(max_deferred=2.5),  # type: ignore[arg-type]
            "CreateConfig.max_deferred",
            "an integer",
        ),
        (lambda: CreateConfig(max_deferred=-1), "CreateConfig.max_deferred", "an integer"),
        (lambda: CreateConfig(deferred_ttl=-2.0), "CreateConfig.deferred_ttl", "None (off)"),
        (
            lambda: CreateConfig(require_calibration=1),  # type: ignore[arg-type]
            "CreateConfig.require_calibration",
            "True",
        ),
        (lambda: StateConfig(finished_responses=0), "StateConfig.finished_responses", "1 <="),
    ],
)
def test_bad_config_names_field_value_and_range(build: object, field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()  # type: ignore[operator]
    assert info.value.field == field
    assert allowed in info.value.allowed
    message = str(info.value)
    assert message.startswith(f"{field} = ")
    assert "allowed:" in message


def test_config_is_frozen_and_replace_revalidates() -> None:
    config = CancelConfig()
    assert config.cooldown == 0.2
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cooldown = 1.0  # type: ignore[misc]
    assert dataclasses.replace(config, cooldown=0.5).cooldown == 0.5
    with pytest.raises(ConfigError):
        dataclasses.replace(config, cooldown=-0.5)
    with pytest.raises(TypeError):
        CancelConfig(0.3)  # type: ignore[call-arg]  # keyword-only


def test_config_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="cooldown"):
        CancelConfig(cooldown=-1)


def test_decision_truthiness_and_text() -> None:
    allow = Decision(action=Action.CANCEL, verdict=Verdict.ALLOW, reason=Reason.OK, response_id="r")
    deny = Decision(
        action=Action.CREATE, verdict=Verdict.DEFER, reason=Reason.RESPONSE_ACTIVE, retry_at=1.5
    )
    assert allow and allow.allowed and not allow.suppressed
    assert not deny and deny.deferred
    assert str(allow) == "CANCEL ALLOW OK response_id=r"
    assert str(deny) == "CREATE DEFER RESPONSE_ACTIVE retry_at=1.500"


def test_reason_values_are_their_names() -> None:
    """Logs, metric labels and docs spell a reason the same way."""
    for enum in (Reason, Verdict, Action):
        for member in enum:
            assert member.value == member.name


def test_error_messages_say_what_and_where() -> None:
    remote = RemoteProtocolError(
        peer="twilio", message_type="media", field="media.payload", problem="not valid base64"
    )
    assert str(remote) == "twilio 'media': field 'media.payload': not valid base64"
    assert isinstance(remote, ValueError)
    whole = RemoteProtocolError(peer="realtime", message_type=None, field=None, problem="not JSON")
    assert str(whole) == "realtime message: not JSON"
    state = StateTransitionError(state="NONE", event="CANCEL_SENT", detail="no response is active")
    assert str(state) == "CANCEL_SENT is not allowed in state NONE: no response is active"
