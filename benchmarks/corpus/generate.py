"""Generate the labelled barge-in corpora: speech clips, call scripts, labels.

Usage::

    python benchmarks/corpus/generate.py            # clips (if missing) + both cases.json
    python benchmarks/corpus/generate.py --resynth  # re-synthesize the speech clips too

Needs ``espeak-ng`` and ``sox`` only to synthesize the clips (they are shipped, so re-labelling
does not need them). On Debian/Ubuntu::

    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox

What it makes (see ``corpus.py`` for the signal model, ``script.py`` for the calls):

* ``clips/*.ul`` and ``heldout/clips/*.ul``: 8 kHz mu-law speech, cut to the telephone band, from
  espeak-ng voices in English, Hebrew, Arabic, Russian, Spanish, German, French and Portuguese
  with varied rate and pitch (``texts.py``; the held-out draw has its own texts and voices), and
  ``index.json`` beside them (each clip's text, language, role and voice).
* ``cases.json``: the tuning corpus: the 300 English calls it first had (``legacy.py``), then
  ``--cases`` multilingual calls (``script.py``); ``heldout/cases.json``: ``--heldout-cases``
  multilingual calls of the held-out draw, with another seed.
* Every ``speech_started`` that :class:`voiceguard.sim.EnergyVad` (server_vad defaults) raises on
  the inbound audio is labelled ``real`` (the clean caller track is active within the frames that
  triggered it; with the caller's true onset; ``short`` for the one-word barge-ins),
  ``backchannel`` (the caller's utterance there is a backchannel), ``echo`` (the echo track
  carries more energy than noise and background there) or ``noise`` (line noise, bursts or the
  room's background). Each event records the text and language of the caller utterance behind it
  (or null) and the condition tags used for per-condition scoring.

The labels depend only on the clean tracks and the VAD, never on any gate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
import legacy
import script
import texts

from voiceguard.audio import decode_ulaw
from voiceguard.sim import EnergyVad, VadSpeechStarted, VadSpeechStopped

#: The first second of the greeting: a caller who starts in it interrupts the greeting.
GREETING_INTERRUPT_MS = 1000

Job = tuple[str, str, str, str, str, str, str]  # name, text, language, role, voice, speed, pitch


def _jobs(draw: str, seed: int) -> list[Job]:
    """The clips of one draw (``main`` also has the legacy English clips)."""
    rng = np.random.default_rng(seed)
    jobs: list[Job] = []
    if draw == "main":
        jobs += [(n, t, "en", r, v, s, p) for n, t, r, v, s, p in legacy.jobs()]
    for language, draws in texts.LANGUAGES.items():
        d = draws[draw]
        for role in texts.ROLES:
            if draw == "main" and language == "en" and role in ("greet", "bot", "caller"):
                continue  # the legacy clips speak these
            variants = d.bot_variants if role in ("greet", "bot") else d.caller_variants
            if role == "low":
                variants = tuple(v for v in d.caller_variants if v.startswith("m")) or variants
            for i, text in enumerate(d.texts[role]):
                variant = str(rng.choice(variants))
                low = (0, 16) if role == "low" else (30, 75)
                speed = str(int(rng.integers(145, 195)))
                pitch = str(int(rng.integers(*low)))
                name = f"{language}_{role}_{i:02d}"
                jobs.append((name, text, language, role, f"{d.voice}+{variant}", speed, pitch))
    return jobs


def synthesize(store: corpus.Store, jobs: list[Job], resynth: bool) -> None:
    """Write the clips with espeak-ng and sox (those that exist are kept unless ``resynth``),
    and their ``index.json``."""
    store.clips_dir.mkdir(parents=True, exist_ok=True)
    missing = [j for j in jobs if resynth or not (store.clips_dir / f"{j[0]}.ul").exists()]
    if missing:
        for tool in ("espeak-ng", "sox"):
            if shutil.which(tool) is None:
                sys.exit(
                    f"{tool} not found. Install it with: DEBIAN_FRONTEND=noninteractive "
                    "apt-get install -y -qq espeak-ng sox   (or use the shipped clips)"
                )
    with tempfile.TemporaryDirectory() as tmp:
        for name, text, _language, _role, voice, speed, pitch in missing:
            wav = Path(tmp) / f"{name}.wav"
            subprocess.run(
                [
                    "espeak-ng",
                    *("-v", voice, "-s", speed, "-p", pitch, "-w", str(wav)),
                    texts.SPOKEN.get(text, text),
                ],
                check=True,
            )
            # 8 kHz, telephone band, trimmed of leading/trailing silence, mu-law raw.
            out = str(store.clips_dir / f"{name}.ul")
            trim = ["silence", "1", "0.02", "1%", "reverse"]
            subprocess.run(
                [
                    *("sox", str(wav), "-r", "8000", "-e", "u-law", "-b", "8", "-t", "raw", out),
                    *("sinc", "300-3400", *trim, *trim, "gain", "-n", "-1"),
                ],
                check=True,
            )
            if Path(out).stat().st_size < 800:  # under 0.1 s: espeak-ng read it as silence
                sys.exit(f"clip {name} ({voice}: {text!r}) came out empty; add it to texts.SPOKEN")
    index = {
        name: {"text": text, "language": language, "role": role, "voice": voice, "pitch": pitch}
        for name, text, language, role, voice, _speed, pitch in jobs
    }
    (store.clips_dir / "index.json").write_text(json.dumps(index, ensure_ascii=False, indent=1))


def _tags(case: dict[str, Any], utt: dict[str, Any] | None, role: str | None) -> dict[str, Any]:
    """The condition tags of an event (see ``bargein_quality.CONDITIONS``)."""
    cond = case["condition"]
    greeting = case["bot"][0]["start_ms"] if case["bot"] else 0
    return {
        "language": cond.get("language", "en"),
        "background": "none",
        "background_db": None,
        "residue": bool(cond.get("residue")),
        "drift": bool(cond.get("drift")),
        "clean_line": bool(cond.get("clean_line")),
        "greeting_interrupt": bool(
            utt is not None
            and cond["kind"] == "greeting_interrupt"
            and 0 <= utt["start_ms"] - greeting < GREETING_INTERRUPT_MS
        ),
        "low_voice": role == "low",
    }


def label(
    case: dict[str, Any], rendered: corpus.Rendered, index: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Label every speech_started the emulated server VAD raises on the inbound audio."""
    vad = EnergyVad()
    inbound_db = corpus.frame_db(np.asarray(decode_ulaw(rendered.inbound), dtype=np.float64))
    events = vad.push_energies(inbound_db)
    caller_db = corpus.frame_db(rendered.caller)
    echo_pow = 10.0 ** (corpus.frame_db(rendered.echo) / 10.0)
    noise_pow = 10.0 ** (corpus.frame_db(rendered.noise) / 10.0)
    back_pow = 10.0 ** (corpus.frame_db(rendered.background) / 10.0)
    caller_pow = 10.0 ** (caller_db / 10.0)
    active = caller_db > case["condition"]["caller_dbfs"] - corpus.CALLER_ACTIVE_BELOW_DB
    spec = case["condition"].get("background")
    labelled: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        if not isinstance(event, VadSpeechStarted):
            continue
        stop = next((e for e in events[i + 1 :] if isinstance(e, VadSpeechStopped)), None)
        first = event.speech_onset_ms // corpus.FRAME_MS
        last = event.detected_ms // corpus.FRAME_MS  # exclusive
        window = slice(first, last)
        item: dict[str, Any] = {
            "detected_ms": event.detected_ms,
            "audio_start_ms": event.audio_start_ms,
            "speech_onset_ms": event.speech_onset_ms,
            "stopped_ms": stop.detected_ms if stop else None,
            "speech_end_ms": stop.speech_end_ms if stop else None,
            "bot_active": bool(rendered.bot_frames[max(0, first - 40) : last].any()),
        }
        hits = np.nonzero(active[window])[0]
        utt: dict[str, Any] | None = None
        role: str | None = None
        if hits.size:
            f = first + int(hits[0])
            k = int(rendered.utterance[f])
            utt = case["caller"][k]
            role = index[utt["clip"]]["role"]
            while f > 0 and active[max(0, f - 15) : f].any():  # back to the start of this run
                f -= 1
            item["label"] = "backchannel" if role == "backchannel" else "real"
            item["short"] = role == "short"
            item["true_onset_ms"] = f * corpus.FRAME_MS
            ratio = caller_pow[window].sum() / max(echo_pow[window].sum(), 1e-15)
            item["caller_to_echo_db"] = round(float(10 * np.log10(ratio)), 1)
        elif echo_pow[window].sum() > noise_pow[window].sum() + back_pow[window].sum():
            item["label"] = "echo"
        else:
            item["label"] = "noise"
        item["utterance"] = case["caller"].index(utt) if utt else None
        item["text"] = index[utt["clip"]]["text"] if utt else None
        item["language"] = index[utt["clip"]]["language"] if utt else None
        tags = _tags(case, utt, role)
        if spec and back_pow[window].sum() > noise_pow[window].sum():
            tags["background"] = spec["kind"]
            tags["background_db"] = spec["level_db"]
        item["tags"] = tags
        labelled.append(item)
    return labelled


def _pools(index: dict[str, dict[str, Any]]) -> tuple[dict[str, script.Pools], list[str]]:
    """Per language, the clip names of each role; and all clips TV and babble may speak."""
    pools: dict[str, script.Pools] = {}
    for name, clip in sorted(index.items()):
        pools.setdefault(clip["language"], {}).setdefault(clip["role"], []).append(name)
    speech = sorted(n for n, c in index.items() if c["role"] in ("greet", "bot", "caller"))
    return pools, speech


def build(store: corpus.Store, draw: str, calls: int, seed: int, progress: str) -> str:
    """Draw, render and label one corpus into ``store``; return a one-line summary."""
    index = store.index()
    pools, speech = _pools(index)
    cases: list[dict[str, Any]] = []
    if draw == "main":
        rng = np.random.default_rng(legacy.SEED)
        cases += [legacy.draw_case(i, rng, store.clip_ms) for i in range(legacy.CALLS)]
    rng = np.random.default_rng(seed)
    languages = list(texts.LANGUAGES)
    for k in range(calls):
        language = languages[k % len(languages)]
        index_k = len(cases)
        cases.append(
            script.draw_call(
                index_k,
                rng,
                language=language,
                pools=pools[language],
                speech=speech,
                clip_ms=store.clip_ms,
            )
        )
    counts = {"real": 0, "backchannel": 0, "echo": 0, "noise": 0}
    for k, case in enumerate(cases):
        rendered = corpus.render(case, store=store, check=False)
        case["sha256"] = corpus.digest(rendered)
        case["events"] = label(case, rendered, index)
        for event in case["events"]:
            counts[event["label"]] += 1
        if k % 50 == 0:
            print(f"{progress}: {k}/{len(cases)} calls", file=sys.stderr)
    payload = {
        "description": f"voiceguard barge-in corpus ({draw}); see benchmarks/corpus/generate.py",
        "generator": {"seed": seed, "cases": len(cases), "vad": "EnergyVad() defaults"},
        "cases": cases,
    }
    text = json.dumps(payload, indent=None, separators=(",", ":"), ensure_ascii=False)
    store.cases_file.write_text(text + "\n")
    total_s = sum(c["duration_ms"] for c in cases) / 1000
    return f"{draw}: {len(cases)} calls, {total_s / 60:.1f} min of audio, events: {counts}"


def main() -> None:
    """Synthesize missing clips, then draw, render and label both corpora."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=400, help="multilingual tuning calls")
    parser.add_argument("--heldout-cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20250901)
    parser.add_argument("--heldout-seed", type=int, default=777)
    parser.add_argument("--resynth", action="store_true", help="re-synthesize the speech clips")
    args = parser.parse_args()
    for store, draw, calls, seed in (
        (corpus.MAIN, "main", args.cases, args.seed),
        (corpus.HELDOUT, "heldout", args.heldout_cases, args.heldout_seed),
    ):
        synthesize(store, _jobs(draw, seed), args.resynth)
        print(build(store, draw, calls, seed, draw))


if __name__ == "__main__":
    main()
