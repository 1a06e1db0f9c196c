"""What ``voiceguard call`` plays, read from its options: the callers, one per call, and where.

The script syntax is the command's (see :mod:`voiceguard.sim.call_command`); every bad value
raises :class:`Refused` with one line naming the option, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, final
from urllib.parse import urlsplit

from voiceguard.sim.caller import (
    CallerSimulator,
    EchoPath,
    HangUp,
    PressDigit,
    ScriptStep,
    Speak,
)
from voiceguard.sim.scenarios import SCENARIOS, Scenario

__all__ = ("BETWEEN_CALLS", "MAX_CALLS", "Plan", "Refused", "plan_calls")

#: ``--calls`` allows 1 to this many calls.
MAX_CALLS: Final = 20
#: Seconds between two calls of a script (a scenario has its own ``between_calls``).
BETWEEN_CALLS: Final = 0.5


class Refused(Exception):
    """A one-line reason ``voiceguard call`` cannot go on (exit status 2)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What to play: the callers, one per call, and where to."""

    url: str
    headers: Mapping[str, str]
    scenario: Scenario | None
    callers: tuple[CallerSimulator, ...]
    between_calls: float
    check: bool

    @property
    def what(self) -> str:
        if self.scenario is not None:
            return f"scenario {self.scenario.name}"
        steps = len(self.callers[0].script)
        return f"a script of {steps} step{'s' if steps != 1 else ''}"


def _seconds(option: str, given: str, text: str, *, what: str) -> float:
    """*text* (a part of the option's value *given*) as seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise Refused(f"{option} {given!r}: {what} {text!r} is not allowed; allowed: seconds >= 0")
    return value


def _when(option: str, given: str, text: str) -> tuple[float | None, float | None]:
    """``(at, after_heard)`` from ``S`` (at S) or ``heard=S`` (after hearing S)."""
    name, sep, value = text.partition("=")
    if sep:
        if name.strip() != "heard":
            raise Refused(
                f"{option} {given!r}: {name.strip()!r} is not allowed; allowed: SECONDS or "
                "heard=SECONDS"
            )
        return None, _seconds(option, given, value.strip(), what="heard")
    return _seconds(option, given, text.strip(), what="time"), None


def _script_step(option: str, text: str) -> ScriptStep:
    parts = text.split(":")
    if option == "--say":
        if not 1 <= len(parts) <= 3:
            raise Refused(
                f"{option} {text!r}: allowed: WHEN[:DURATION[:LEVEL]], e.g. 1.0:0.8 or "
                "heard=3:0.8 (seconds, LEVEL in dBFS)"
            )
        duration = 1.5 if len(parts) < 2 else _seconds(option, text, parts[1], what="duration")
        level = -20.0
        if len(parts) == 3:
            try:
                level = float(parts[2])
            except ValueError:
                level = math.nan
            if not (math.isfinite(level) and -90.0 <= level <= 0.0):
                raise Refused(
                    f"{option} {text!r}: level {parts[2]!r} is not allowed; allowed: dBFS from "
                    "-90 to 0 (default -20)"
                )
        at, after_heard = _when(option, text, parts[0])
        return Speak(at=at, after_heard=after_heard, duration=duration, level_dbfs=level)
    if option == "--press":
        digit = parts[1] if len(parts) == 2 else ""
        if digit not in tuple("0123456789*#"):
            raise Refused(
                f"{option} {text!r}: allowed: WHEN:DIGIT with a digit 0-9, * or #, e.g. 2.5:#"
            )
        at, after_heard = _when(option, text, parts[0])
        return PressDigit(at=at, after_heard=after_heard, digit=digit)
    if len(parts) != 1:
        raise Refused(f"{option} {text!r}: allowed: WHEN, e.g. 6 or heard=3.6")
    at, after_heard = _when(option, text, parts[0])
    return HangUp(at=at, after_heard=after_heard)


def _check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise Refused(f"URL {url!r}: allowed: a ws:// or wss:// URL ({exc})") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise Refused(
            f"URL {url!r}: allowed: a ws:// or wss:// URL with a host, e.g. "
            "ws://127.0.0.1:5050/media-stream"
        )
    return url


def _headers(texts: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for text in texts:
        name, sep, value = text.partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() or ord(c) < 33 for c in name):
            raise Refused(
                f"--header {text!r}: allowed: 'Name: value', e.g. 'X-Twilio-Signature: ...'"
            )
        headers[name] = value.strip()
    return headers


def _parameters(texts: Sequence[str]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise Refused(f"--parameter {text!r}: allowed: name=value, e.g. lang=en")
        parameters[name.strip()] = value
    return parameters


def _calls(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        calls = int(text)
    except ValueError:
        calls = 0
    if not 1 <= calls <= MAX_CALLS:
        raise Refused(f"--calls {text!r} is not allowed; allowed: an integer from 1 to {MAX_CALLS}")
    return calls


def plan_calls(args: argparse.Namespace) -> Plan:
    """The calls to make, from the options; raises :class:`Refused` on a bad one."""
    url = _check_url(args.url)
    headers = _headers(args.header or ())
    parameters = _parameters(args.parameter or ())
    steps = [_script_step(option, text) for option, text in args.script or ()]
    calls = _calls(args.calls)
    phone = getattr(args, "phone", None) or "twilio"
    if args.scenario is not None:
        scenario = _scenario(args, steps=bool(steps), calls=calls)
        count = scenario.calls if calls is None else calls
        return Plan(
            url=url,
            headers=headers,
            scenario=scenario,
            callers=tuple(
                _tagged(scenario.make_caller(n), parameters, phone=phone) for n in range(count)
            ),
            between_calls=scenario.between_calls,
            check=args.check,
        )
    if args.check:
        raise Refused("--check without --scenario is not allowed; allowed: with --scenario NAME")
    if not steps:
        raise Refused(
            "nothing to play: give --scenario NAME or a script (--say, --press, --hang-up)"
        )
    caller = CallerSimulator(
        script=steps, echo=_echo(args.echo), max_duration=_max_duration(args.max_duration)
    )
    return Plan(
        url=url,
        headers=headers,
        scenario=None,
        callers=tuple(_tagged(caller, parameters, seed=n, phone=phone) for n in range(calls or 1)),
        between_calls=BETWEEN_CALLS,
        check=False,
    )


def _scenario(args: argparse.Namespace, *, steps: bool, calls: int | None) -> Scenario:
    scenario = SCENARIOS.get(args.scenario)
    if scenario is None:
        raise Refused(
            f"--scenario {args.scenario!r} is not allowed; allowed: one of " + ", ".join(SCENARIOS)
        )
    for option, given in (
        ("--say/--press/--hang-up", steps),
        ("--echo", args.echo is not None),
        ("--max-duration", args.max_duration is not None),
    ):
        if given:
            raise Refused(
                f"{option} with --scenario is not allowed; allowed: a scenario (its callers "
                "bring their own script and line) or a script, not both"
            )
    if args.check and calls is not None and calls != scenario.calls:
        raise Refused(
            f"--calls {calls} with --check is not allowed; allowed: the scenario's own "
            f"{scenario.calls} (its rules are about those calls)"
        )
    return scenario


def _echo(text: str | None) -> EchoPath | None:
    if text is None:
        return None
    delay, sep, loss = text.partition(":")
    try:
        return EchoPath(delay=float(delay), return_loss_db=float(loss) if sep else 12.0)
    except ValueError:
        raise Refused(
            f"--echo {text!r}: allowed: DELAY[:LOSS], e.g. 0.1:6 (seconds from 0 to 2, echo "
            "return loss in dB >= 0)"
        ) from None


def _max_duration(text: str | None) -> float:
    if text is None:
        return 60.0
    value = _seconds("--max-duration", text, text, what="duration")
    if not 0 < value <= 3600:
        raise Refused(
            f"--max-duration {text!r} is not allowed; allowed: seconds over 0, up to 3600"
        )
    return value


def _tagged(
    base: CallerSimulator,
    parameters: Mapping[str, str],
    *,
    seed: int | None = None,
    phone: str = "twilio",
) -> CallerSimulator:
    """*base* with *parameters* added and SIDs of its own (a bot may key its state by them:
    every run of the command gets new ones)."""
    return CallerSimulator(
        script=base.script,
        echo=base.echo,
        noise_dbfs=base.noise_dbfs,
        custom_parameters={**base.custom_parameters, **parameters},
        account_sid=base.account_sid,
        call_sid=base.call_sid or "CA" + secrets.token_hex(16),
        stream_sid=base.stream_sid or "MZ" + secrets.token_hex(16),
        max_duration=base.max_duration,
        seed=base.seed if seed is None else seed,
        phone=phone,
    )
