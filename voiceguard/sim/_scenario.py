"""What a scenario is: the scripted peers, and the rules a correct bridge follows.

The names here are public through :mod:`voiceguard.sim.scenarios`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, final

from voiceguard.protocol import model_provider
from voiceguard.sim.caller import CallerSimulator
from voiceguard.sim.realtime import RealtimeSimulator

if TYPE_CHECKING:
    from voiceguard.sim.scenarios import ScenarioRun

__all__ = ("Expectation", "Scenario")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """One thing a correct bridge must (or must not) do in a scenario.

    Attributes:
        kind: ``"must"`` or ``"must_not"``.
        text: The rule, in words (``"cancel the greeting because of its own echo"``).
        holds: Returns True when the bridge behaved correctly in the run.
    """

    kind: Literal["must", "must_not"]
    text: str
    holds: Callable[[ScenarioRun], bool]

    def describe(self) -> str:
        """``"must ..."`` or ``"must not ..."``."""
        return f"{'must' if self.kind == 'must' else 'must not'} {self.text}"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A scripted call (or calls) with the rules a correct bridge follows.

    Attributes:
        name: Short identifier, e.g. ``"cancel-races-done"``.
        title: One line for humans.
        description: What happens and why it is hard.
        make_simulator: Builds a fresh :class:`~voiceguard.sim.realtime.RealtimeSimulator`.
        make_caller: Builds a fresh :class:`~voiceguard.sim.caller.CallerSimulator` for call
            number *n* (0, 1, ...).
        calls: How many calls are made one after the other to the same bridge.
        twilio_latency: One-way latency between the caller and the bridge, in seconds.
        model_latency: One-way latency between the bridge and the model, in seconds. It is
            deliberately not a multiple of 5 ms: then a message from the model and a message
            from Twilio never reach the bridge at the same instant, so the bridge's own tasks
            never race and a run in virtual time is reproducible.
        between_calls: Seconds between the end of one call and the start of the next.
        expectations: The rules.
    """

    name: str
    title: str
    description: str
    make_simulator: Callable[[], RealtimeSimulator]
    make_caller: Callable[[int], CallerSimulator]
    calls: int = 1
    twilio_latency: float = 0.03
    model_latency: float = 0.0251
    between_calls: float = 0.5
    expectations: tuple[Expectation, ...] = ()

    def simulator_for(self, provider: str) -> RealtimeSimulator:
        """A fresh simulator of the scenario's model speaking *provider*'s dialect
        (``"openai"``, ``"azure"`` or ``"xai"``): the same script, another provider.

        Raises:
            ValueError: For a provider there is not.
        """
        simulator = self.make_simulator()
        simulator.provider = model_provider(provider)
        return simulator
