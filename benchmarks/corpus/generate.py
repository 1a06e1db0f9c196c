"""Generate the labelled barge-in corpus: speech clips, call scripts, labels.

Usage::

    python benchmarks/corpus/generate.py            # clips (if missing) + cases.json
    python benchmarks/corpus/generate.py --resynth  # re-synthesize the speech clips too

Needs ``espeak-ng`` and ``sox`` only to synthesize the clips (they are shipped, so re-labelling
does not need them). On Debian/Ubuntu::

    apt-get update && apt-get install -y espeak-ng sox

What it makes (see ``corpus.py`` for the signal model):

* ``clips/bot_*.ul``, ``clips/greet_*.ul``, ``clips/caller_*.ul``: 8 kHz mu-law speech, cut to the
  telephone band, from several espeak-ng voices with varied rate and pitch.
* ``cases.json``: N calls. Each call draws its line independently and uniformly: echo delay
  40-600 ms, echo return loss 3-30 dB, non-linearity (none / soft clipping / AGC gain pumping),
  line noise -70..-35 dBFS, caller level -40..-10 dBFS, bot level -24..-14 dBFS; its kind
  (ordinary, caller speaks first, silence only: the caller never speaks); noise bursts (clicks,
  crackle, thumps) in some calls; a script of bot turns and caller turns in which the caller
  replies after the bot, barges in during the bot's turn (the bot then stops within 0.3-0.6 s, as
  if the barge-in had been honoured), or says nothing.
* Every ``speech_started`` that :class:`voiceguard.sim.EnergyVad` (server_vad defaults) raises on
  the inbound audio is labelled ``real`` (the clean caller track is active within the frames that
  triggered it; with the caller's true onset), ``echo`` (the echo track carries more energy than
  noise there) or ``noise``.

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

from voiceguard.audio import decode_ulaw
from voiceguard.sim import EnergyVad, VadSpeechStarted, VadSpeechStopped

GREETINGS = [
    "Thanks for calling Bright Smile Dental, this is Ava. How can I help you today?",
    "Hello, you have reached City Plumbing. I am the virtual assistant. What can I do for you?",
    "Good morning, Northside Clinic, how may I help you?",
    "Hi there! Thank you for calling Green Leaf Insurance. Who am I speaking with?",
    "Welcome to Metro Car Service. I can book a ride or check an existing booking.",
    "Hello and thanks for calling. This call may be recorded. How can I help?",
]
BOT_LINES = [
    "Sure, I can help with that. Can I have your full name, please?",
    "Let me check the calendar for you. We have an opening on Tuesday at ten thirty"
    " in the morning.",
    "Okay, and what is the best phone number to reach you on?",
    "I have booked the appointment for Thursday at three o'clock. You will get a text message.",
    "Could you spell your last name for me, one letter at a time?",
    "Our office is open Monday to Friday from eight in the morning until six in the evening.",
    "I am sorry, I did not quite catch that. Could you say it again?",
    "The total for the visit comes to one hundred and twenty dollars, including the cleaning.",
    "Is there anything else I can help you with today?",
    "Great. I will send a technician between two and four in the afternoon.",
    "Just to confirm, that is two people on Saturday evening at seven. Is that right?",
    "Your policy number starts with the letters A B and ends in four five six.",
    "We accept most major insurance plans, and we also offer a payment plan.",
    "Please hold on for a moment while I look that up in our system.",
    "The driver will arrive in about twelve minutes. It is a grey Toyota.",
    "I can transfer you to a team member, or I can take a message for you.",
    "Thank you. I have updated the address to twenty four Oak Street, apartment six.",
    "You can cancel up to twenty four hours before the appointment without a fee.",
    "Do you prefer a morning slot or an afternoon slot?",
    "Alright, everything is set. Have a wonderful day, and thanks for calling.",
]
CALLER_LINES = [
    "Yes.",
    "No.",
    "Hello?",
    "Okay.",
    "Hi, yes.",
    "Wait, wait.",
    "Sorry?",
    "Stop.",
    "Yes, that is right.",
    "No, that is not what I meant.",
    "Hold on a second.",
    "Can you repeat that please?",
    "I want to cancel my appointment.",
    "My name is John Miller.",
    "It is five five five, one two three four.",
    "Actually, can we do Wednesday instead?",
    "Hello, is anybody there?",
    "I need to talk to a real person.",
    "Thursday works for me.",
    "How much does that cost?",
    "Hi, I'm calling about my bill.",
    "Sorry, I didn't hear you.",
    "Yeah, sure, go ahead.",
    "Um, I think so.",
    "That's fine, thank you.",
    "Wait, what was the time again?",
    "I have a question about my insurance.",
    "Could you speak a bit slower?",
    "Morning, I'd like to book a cleaning.",
    "No thanks, that's everything.",
    "Excuse me, hello?",
    "Right, okay, got it.",
]
BOT_VOICES = ["en-us+f3", "en-us+f2", "en-gb+f4", "en-us+m3", "en-gb-x-rp+f1", "en-029+m1"]
CALLER_VOICES = [
    "en-us+m1",
    "en-us+m2",
    "en-us+m4",
    "en-us+m7",
    "en-gb+m3",
    "en-gb-scotland+m2",
    "en-us+f1",
    "en-us+f4",
    "en-gb+f2",
    "en-gb-x-gbclan+f3",
    "en-us-nyc+m5",
    "en-029+f5",
]


def synthesize(resynth: bool, seed: int) -> None:
    """Write the speech clips with espeak-ng and sox (skipped when they exist)."""
    corpus.CLIPS_DIR.mkdir(exist_ok=True)
    if not resynth and any(corpus.CLIPS_DIR.glob("*.ul")):
        return
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            sys.exit(
                f"{tool} not found. Install it with: apt-get update && apt-get install -y "
                "espeak-ng sox   (or use the shipped clips: run without --resynth)"
            )
    rng = np.random.default_rng(seed)
    jobs: list[tuple[str, str, str]] = []
    jobs += [
        (f"greet_{i:02d}", t, BOT_VOICES[i % len(BOT_VOICES)]) for i, t in enumerate(GREETINGS)
    ]
    jobs += [(f"bot_{i:02d}", t, BOT_VOICES[i % len(BOT_VOICES)]) for i, t in enumerate(BOT_LINES)]
    jobs += [
        (f"caller_{i:02d}", t, CALLER_VOICES[int(rng.integers(len(CALLER_VOICES)))])
        for i, t in enumerate(CALLER_LINES)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, text, voice in jobs:
            wav = Path(tmp) / f"{name}.wav"
            speed = str(int(rng.integers(145, 195)))
            pitch = str(int(rng.integers(30, 75)))
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", speed, "-p", pitch, "-w", str(wav), text],
                check=True,
            )
            # 8 kHz, telephone band, trimmed of leading/trailing silence, mu-law raw.
            subprocess.run(
                [
                    "sox",
                    str(wav),
                    "-r",
                    "8000",
                    "-e",
                    "u-law",
                    "-b",
                    "8",
                    "-t",
                    "raw",
                    str(corpus.CLIPS_DIR / f"{name}.ul"),
                    "sinc",
                    "300-3400",
                    "silence",
                    "1",
                    "0.02",
                    "1%",
                    "reverse",
                    "silence",
                    "1",
                    "0.02",
                    "1%",
                    "reverse",
                    "gain",
                    "-n",
                    "-1",
                ],
                check=True,
            )


def _clip_ms(name: str) -> int:
    return round(len(corpus.load_clip(name)) * 1000 / corpus.RATE)


def draw_case(index: int, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one call's line conditions and script."""
    greets = sorted(p.stem for p in corpus.CLIPS_DIR.glob("greet_*.ul"))
    bots = sorted(p.stem for p in corpus.CLIPS_DIR.glob("bot_*.ul"))
    callers = sorted(p.stem for p in corpus.CLIPS_DIR.glob("caller_*.ul"))
    kind = str(rng.choice(["ordinary", "caller_first", "silence_only"], p=[0.7, 0.15, 0.15]))
    condition: dict[str, Any] = {
        "kind": kind,
        "delay_ms": round(float(rng.uniform(40, 600))),
        "erl_db": round(float(rng.uniform(3, 30)), 1),
        "nonlinearity": str(rng.choice(["none", "clip", "agc"], p=[0.5, 0.25, 0.25])),
        "noise_dbfs": round(float(rng.uniform(-70, -35)), 1),
        "caller_dbfs": round(float(rng.uniform(-40, -10)), 1),
        "bot_dbfs": round(float(rng.uniform(-24, -14)), 1),
    }
    duration_ms = int(rng.uniform(12_000, 22_000)) // 20 * 20
    bot: list[dict[str, Any]] = []
    caller: list[dict[str, Any]] = []

    def say(start_ms: int) -> int:
        clip = str(rng.choice(callers))
        caller.append(
            {"clip": clip, "start_ms": start_ms, "gain_db": round(float(rng.uniform(-3, 3)), 1)}
        )
        return start_ms + _clip_ms(clip)

    t = int(rng.uniform(300, 1200))
    if kind == "caller_first":
        say(int(rng.uniform(0, 1000)))
    first = True
    while t < duration_ms - 1500:
        clip = str(rng.choice(greets if first else bots))
        length = _clip_ms(clip)
        turn: dict[str, Any] = {
            "clip": clip,
            "start_ms": t,
            "gain_db": round(float(rng.uniform(-2, 2)), 1),
        }
        bot.append(turn)
        r = rng.random()
        if kind == "silence_only" or (first and kind == "caller_first"):
            t += length + int(rng.uniform(2500, 4500))
        elif r < 0.35 and length > 1200:
            onset = t + int(rng.uniform(400, length - 400))
            turn["stop_ms"] = onset + int(rng.uniform(300, 600))
            t = say(onset) + int(rng.uniform(500, 1200))
        elif r < 0.85:
            t = say(t + length + int(rng.uniform(200, 1000))) + int(rng.uniform(500, 1200))
        else:
            t += length + int(rng.uniform(2500, 4000))
        first = False
    bursts: list[dict[str, Any]] = []
    if rng.random() < 0.4:
        for _ in range(int(rng.integers(1, 4))):
            kind_b = str(rng.choice(["click", "crackle", "thump"]))
            dur = {"click": (5, 30), "crackle": (40, 400), "thump": (60, 250)}[kind_b]
            bursts.append(
                {
                    "kind": kind_b,
                    "start_ms": int(rng.uniform(0, duration_ms - 500)),
                    "dur_ms": int(rng.uniform(*dur)),
                    "dbfs": round(
                        min(-12.0, condition["noise_dbfs"] + float(rng.uniform(15, 35))), 1
                    ),
                }
            )
    return {
        "id": f"call{index:04d}",
        "seed": int(rng.integers(2**31)),
        "duration_ms": duration_ms,
        "condition": condition,
        "bot": bot,
        "caller": caller,
        "bursts": bursts,
    }


def label(case: dict[str, Any], rendered: corpus.Rendered) -> list[dict[str, Any]]:
    """Label every speech_started the emulated server VAD raises on the inbound audio."""
    vad = EnergyVad()
    inbound_db = corpus.frame_db(np.asarray(decode_ulaw(rendered.inbound), dtype=np.float64))
    events = vad.push_energies(inbound_db)
    caller_db = corpus.frame_db(rendered.caller)
    echo_pow = 10.0 ** (corpus.frame_db(rendered.echo) / 10.0)
    noise_pow = 10.0 ** (corpus.frame_db(rendered.noise) / 10.0)
    caller_pow = 10.0 ** (caller_db / 10.0)
    active = caller_db > case["condition"]["caller_dbfs"] - corpus.CALLER_ACTIVE_BELOW_DB
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
        if hits.size:
            f = first + int(hits[0])
            while f > 0 and active[max(0, f - 15) : f].any():  # back to the start of this run
                f -= 1
            item["label"] = "real"
            item["true_onset_ms"] = f * corpus.FRAME_MS
            ratio = caller_pow[window].sum() / max(echo_pow[window].sum(), 1e-15)
            item["caller_to_echo_db"] = round(float(10 * np.log10(ratio)), 1)
        elif echo_pow[window].sum() > noise_pow[window].sum():
            item["label"] = "echo"
        else:
            item["label"] = "noise"
        labelled.append(item)
    return labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20250807)
    parser.add_argument("--resynth", action="store_true", help="re-synthesize the speech clips")
    args = parser.parse_args()
    synthesize(args.resynth, args.seed)
    rng = np.random.default_rng(args.seed)
    cases = []
    counts = {"real": 0, "echo": 0, "noise": 0}
    for index in range(args.cases):
        case = draw_case(index, rng)
        rendered = corpus.render(case, check=False)
        case["sha256"] = corpus.digest(rendered)
        case["events"] = label(case, rendered)
        for event in case["events"]:
            counts[event["label"]] += 1
        cases.append(case)
    payload = {
        "description": "voiceguard barge-in corpus; see benchmarks/corpus/generate.py",
        "generator": {"seed": args.seed, "cases": args.cases, "vad": "EnergyVad() defaults"},
        "cases": cases,
    }
    corpus.CASES_FILE.write_text(json.dumps(payload, indent=None, separators=(",", ":")) + "\n")
    total_s = sum(c["duration_ms"] for c in cases) / 1000
    print(f"{len(cases)} calls, {total_s / 60:.1f} min of audio, events: {counts}")


if __name__ == "__main__":
    main()
