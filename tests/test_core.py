"""Clock, config, decisions and errors."""

from __future__ import annotations

import dataclasses
import math

import pytest

from voiceguard import (
    Action,
    CancelConfig,
    Clock,
    ClockError,
    ConfigError,
    CreateConfig,
    Decision,
    ManualClock,
    Reason,
    RemoteProtocolError,
    StateConfig,
    StateTransitionError,
    SystemClock,
    Verdict,
)


def test_manual_clock_moves_forward_only() -> None:
    clock = ManualClock(10.0)
    assert clock.now() == 10.0
    assert clock.advance(0.5) == 10.5
    clock.set(12.0)
    assert clock.now() == 12.0
    with pytest.raises(ClockError, match=r"ManualClock.set\(11.0\).*cannot go backwards"):
        clock.set(11.0)
    with pytest.raises(ClockError, match="only moves forward"):
        clock.advance(-0.001)
    with pytest.raises(ClockError):
        clock.advance(math.nan)
    with pytest.raises(ClockError, match="finite"):
        ManualClock(math.inf)
    assert clock.now() == 12.0


def test_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(ManualClock(), Clock)
    first = SystemClock().now()
    assert SystemClock().now() >= first


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
