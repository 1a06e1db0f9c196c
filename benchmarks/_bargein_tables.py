"""The text report of ``bargein_quality.py``: markdown tables per corpus, and the targets."""

from __future__ import annotations

from typing import Any

#: The targets of docs/performance.md: (name, result key, bound, "max" or "min").
TARGETS = (
    ("false barge-ins <= 2 %", "false_rate", 0.02, "max"),
    ("missed barge-ins <= 2 %", "missed_rate", 0.02, "max"),
    ("backchannels that stop the bot <= 10 %", "backchannels", 0.10, "max"),
    ("short barge-ins stopped >= 97 %", "short_barge_ins", 0.97, "min"),
)


def _ms(value: float | None) -> str:
    """A delay in ms, or a dash."""
    return "-" if value is None else f"{value:.0f} ms"


def _rate(result: dict[str, Any], key: str) -> float:
    """A rate of a strategy's result (shares of utterances are nested)."""
    value = result[key]
    return float(value["rate"] if isinstance(value, dict) else value)


def targets(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, bool]]:
    """Per target and corpus: the voiceguard figure and whether it meets the target."""
    out = []
    for name, key, bound, kind in TARGETS:
        for corpus_name, result in results.items():
            ours = result["strategies"]["voiceguard"]
            value = _rate(ours, key)
            met = value <= bound if kind == "max" else value >= bound
            out.append((name, corpus_name, f"{100 * value:.1f} %", met))
    return out


def print_tables(results: dict[str, dict[str, Any]]) -> None:
    """Print the strategy table, pauses, late barge-ins and per-condition table per corpus."""
    for corpus_name, result in results.items():
        ev = result["events"]
        print(
            f"\n## {corpus_name} corpus: {result['calls']} calls, {result['minutes']} min, "
            f"{sum(ev.values())} speech_started ({ev['echo']} echo, {ev['noise']} noise, "
            f"{ev['real']} real, {ev['backchannel']} backchannel), {result['seconds']} s\n"
        )
        print(
            "| strategy | false | missed | false + missed | backchannels stopping the bot "
            "| short barge-ins stopped | median delay | p95 delay | median added delay |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in result["strategies"].items():
            bc, short = r["backchannels"], r["short_barge_ins"]
            print(
                f"| {name} | {100 * r['false_rate']:.1f} % | {100 * r['missed_rate']:.1f} % "
                f"| {100 * (r['false_rate'] + r['missed_rate']):.1f} % "
                f"| {100 * bc['rate']:.1f} % ({bc['stopped']} of {bc['of']}) "
                f"| {100 * short['rate']:.1f} % ({short['stopped']} of {short['of']}) "
                f"| {_ms(r['median_delay_ms'])} | {_ms(r['p95_delay_ms'])} "
                f"| {_ms(r['median_added_delay_ms'])} |"
            )
        pauses = result["pauses"]
        if pauses["available"]:
            print("\nPauses to listen of voiceguard (ECHO_UNCERTAIN)\n")
            print("| outcome | count | median pause |\n|---|---:|---:|")
            for key, value in pauses.items():
                if key != "available":
                    name = key.replace("_", " ")
                    print(f"| {name} | {value['count']} | {_ms(value['median_ms'])} |")
        ls = result["late_barge_ins"]
        share = 100 * ls["hidden_caught"] / max(1, ls["hidden_utterances"])
        print(
            "\nLate barge-ins of voiceguard (not counted above)\n\n"
            "| hidden caller utterances | caught late | median delay | p95 delay "
            "| missed events recovered late | median delay | spurious late barge-ins |\n"
            "|---:|---:|---:|---:|---:|---:|---:|\n"
            f"| {ls['hidden_utterances']} | {ls['hidden_caught']} ({share:.0f} %) "
            f"| {_ms(ls['hidden_median_delay_ms'])} | {_ms(ls['hidden_p95_delay_ms'])} "
            f"| {ls['missed_events_recovered_late']} | {_ms(ls['recovered_median_delay_ms'])} "
            f"| {ls['spurious_late_barge_ins']} of {ls['late_barge_ins']} "
            f"({ls['echo_noise_segments_suppressed']} echo/noise segments watched) |"
        )
        print("\nPer condition: false % / missed % (events: echo+noise / real)\n")
        names = list(result["strategies"])
        print("| condition | band | " + " | ".join(names) + " | events |")
        print("|---|---|" + "---:|" * (len(names) + 1))
        for group, bands in result["breakdown"].items():
            for band, per in bands.items():
                count = per[names[0]]
                if not count["events_false_candidates"] + count["events_real"]:
                    continue
                cells = [
                    f"{100 * per[n]['false_rate']:.1f} / {100 * per[n]['missed_rate']:.1f}"
                    for n in names
                ]
                print(
                    f"| {group} | {band} | "
                    + " | ".join(cells)
                    + f" | {count['events_false_candidates']} / {count['events_real']} |"
                )
    print("\n## Targets (voiceguard)\n\n| target | corpus | result | met |\n|---|---|---:|---|")
    for name, corpus_name, value, met in targets(results):
        print(f"| {name} | {corpus_name} | {value} | {'yes' if met else 'no'} |")
