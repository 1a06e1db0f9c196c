"""The demo's runs: one scenario through one bridge each, and the routing of calls to them.

Each run has a model simulator of its own, so runs played at the same time never share one; a
call's routing key (``<run>.<call>``) says which run it belongs to.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Final, final
from urllib.parse import parse_qs, urlsplit

from voiceguard.demo.measures import RunOutcome, barge_in_latencies, cut_by_another_call
from voiceguard.sim import measures as sim_measures
from voiceguard.sim.caller import CallerSimulator
from voiceguard.sim.scenarios import Scenario, ScenarioRun
from voiceguard.transports import Transport

__all__ = ("CALL_PARAMETER", "DEMO_HOST", "CallRouter", "DemoRun")

#: Where the demo runs everything: the bridges, the simulators, the callers.
DEMO_HOST: Final = "127.0.0.1"
#: The ``start.customParameters`` key that routes a call to its run's model simulator.
CALL_PARAMETER: Final = "voiceguardDemoCall"


def _call_key_of(path: str) -> str:
    values = parse_qs(urlsplit(path).query).get(CALL_PARAMETER, [""])
    return values[0]


@final
class DemoRun:
    """One scenario played through one bridge: its model simulator and its calls' bookkeeping.

    Attributes:
        scenario: The scenario.
        bridge: ``"naive"`` or ``"guarded"``.
        repetition: Which repetition of the scenario this is, from 0.
        seed: The seed of the run's audio and ids (the demo's seed plus the repetition).
        id: The run's name in its calls' routing keys, e.g. ``"guarded-3"``.
        simulator: The run's own model simulator.
        port: The port the simulator listens on, once it runs.
        started: The routing keys of the calls whose bridge started work for them.
        finished: The routing keys of the calls whose bridge finished its work for them.
        cut_by: For each of the run's calls that another call's hang-up timer ended, that other
            call, as ``"<scenario> call <n>"`` (n from 1).
    """

    def __init__(
        self, *, scenario: Scenario, bridge: str, repetition: int, seed: int, number: int
    ) -> None:
        self.scenario = scenario
        self.bridge = bridge
        self.repetition = repetition
        self.seed = seed + repetition
        self.id = f"{bridge}-{number}"
        self.simulator = scenario.make_simulator()
        if self.seed:
            self.simulator.seed += self.seed
        self.port = 0
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.cut_by: dict[str, str] = {}

    @property
    def running(self) -> int:
        """The run's calls whose bridge is still at work."""
        return len(self.started - self.finished)

    def call_key(self, number: int) -> str:
        """The routing key of the run's call *number* (from 0)."""
        return f"{self.id}.{number}"

    def caller(self, number: int, *, phone: str = "twilio") -> CallerSimulator:
        """The scenario's caller for call *number*, tagged with the call's routing key, speaking
        *phone*'s media streams."""
        base = self.scenario.make_caller(number)
        return CallerSimulator(
            script=base.script,
            echo=base.echo,
            noise_dbfs=base.noise_dbfs,
            custom_parameters={**base.custom_parameters, CALL_PARAMETER: self.call_key(number)},
            account_sid=base.account_sid,
            call_sid=base.call_sid,
            stream_sid=base.stream_sid,
            max_duration=base.max_duration,
            seed=base.seed + 1009 * self.seed,
            phone=phone,
        )

    def measure(self, played: ScenarioRun) -> RunOutcome:
        """What the bridge did in the run's calls, measured from what was played.

        Args:
            played: The run's calls and its simulator's records.

        Returns:
            The run's outcome.
        """
        false_barge_ins = truncations = cut = clean = missed = 0
        latencies: list[float] = []
        cut_by: list[str] = []
        for number, record in enumerate(played.calls):
            key = self.call_key(number)
            own = [c for c in played.connections if _call_key_of(c.path) == key]
            false_barge_ins += sim_measures.false_barge_ins(record, own)
            truncations += sim_measures.truncations_beyond_heard(record, own)
            was_cut = cut_by_another_call(record, own)
            cut += was_cut
            if was_cut and key in self.cut_by:
                cut_by.append(self.cut_by[key])
            heard, not_cleared = barge_in_latencies(record)
            latencies += heard
            missed += not_cleared
            if not was_cut and key in self.finished and not any(c.open for c in own):
                clean += 1
        errors = Counter(code or "null" for code in played.error_codes(crossed=False))
        return RunOutcome(
            scenario=self.scenario.name,
            repetition=self.repetition,
            bridge=self.bridge,
            calls=len(played.calls),
            violations=played.violations(),
            model_errors=dict(sorted(errors.items())),
            crossed_cancels=played.crossed_cancels(),
            false_barge_ins=false_barge_ins,
            truncations_beyond_heard=truncations,
            cross_call_actions=cut,
            barge_in_latencies=tuple(latencies),
            barge_ins_without_clear=missed,
            calls_ended_cleanly=clean,
            cut_by=tuple(cut_by),
        )


@final
class CallRouter:
    """Every run of the demo, by the routing key of its calls.

    Each call carries its key in ``start.customParameters`` (:data:`CALL_PARAMETER`); both
    bridges open its model connection with :meth:`connect_model`, which reaches the run's own
    simulator, and note when their work for the call starts and ends.

    Args:
        runs: The demo's runs.
    """

    def __init__(self, runs: Sequence[DemoRun]) -> None:
        self.runs = {run.id: run for run in runs}

    def run_of(self, key: str) -> DemoRun:
        """The run of the call *key*.

        Raises:
            LookupError: When no run has that call.
        """
        run = self.runs.get(key.rpartition(".")[0])
        if run is None:
            raise LookupError(f"no demo run for call {key!r}")
        return run

    def started(self, key: str) -> None:
        """Note that a bridge started work for the call *key*."""
        self.run_of(key).started.add(key)

    def finished(self, key: str) -> None:
        """Note that a bridge finished its work for the call *key*."""
        self.run_of(key).finished.add(key)

    def cut(self, victim: str, owner: str) -> None:
        """Note that the hang-up timer of the call *owner* ended the call *victim*."""
        run = self.run_of(owner)
        number = int(owner.rpartition(".")[2]) + 1
        self.run_of(victim).cut_by[victim] = f"{run.scenario.name} call {number}"

    def connect_model(self, key: str) -> AbstractAsyncContextManager[Transport]:
        """Open the model connection of call *key*: its run's simulator, over a WebSocket."""
        from voiceguard.transports.websocket import connect_websocket  # noqa: PLC0415 - optional dep

        run = self.run_of(key)
        url = f"ws://{DEMO_HOST}:{run.port}/v1/realtime?model=gpt-realtime&{CALL_PARAMETER}={key}"
        return connect_websocket(url, headers={"Authorization": "Bearer demo-needs-no-key"})
