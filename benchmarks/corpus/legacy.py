"""The first 300 calls of the tuning corpus, as the corpus was first generated (English only).

They are drawn exactly as then (same seed, same order of random draws), so their audio, labels
and ids (``call0000``-``call0299``) stay those every earlier measurement and the tests used; the
calls added later (``script.py``) follow them. Their clips are the un-prefixed ones
(``greet_*``, ``bot_*``, ``caller_*``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: Seed of the legacy draw (clips and calls).
SEED = 20250807
CALLS = 300

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


def jobs(seed: int = SEED) -> list[tuple[str, str, str, str, str, str]]:
    """Per legacy clip: name, text, role, espeak-ng voice, speed and pitch, drawn as first."""
    rng = np.random.default_rng(seed)
    named: list[tuple[str, str, str, str]] = []
    named += [
        (f"greet_{i:02d}", t, "greet", BOT_VOICES[i % len(BOT_VOICES)])
        for i, t in enumerate(GREETINGS)
    ]
    named += [
        (f"bot_{i:02d}", t, "bot", BOT_VOICES[i % len(BOT_VOICES)]) for i, t in enumerate(BOT_LINES)
    ]
    named += [
        (f"caller_{i:02d}", t, "caller", CALLER_VOICES[int(rng.integers(len(CALLER_VOICES)))])
        for i, t in enumerate(CALLER_LINES)
    ]
    out = []
    for name, text, role, voice in named:
        speed = str(int(rng.integers(145, 195)))
        pitch = str(int(rng.integers(30, 75)))
        out.append((name, text, role, voice, speed, pitch))
    return out


def draw_bursts(
    rng: np.random.Generator, chance: float, noise_dbfs: float, duration_ms: int
) -> list[dict[str, Any]]:
    """The noise bursts of one call (clicks, crackle, thumps, 15-35 dB over the line noise):
    none, or one to three with probability *chance*."""
    bursts: list[dict[str, Any]] = []
    if rng.random() < chance:
        for _ in range(int(rng.integers(1, 4))):
            kind = str(rng.choice(["click", "crackle", "thump"]))
            dur = {"click": (5, 30), "crackle": (40, 400), "thump": (60, 250)}[kind]
            bursts.append(
                {
                    "kind": kind,
                    "start_ms": int(rng.uniform(0, duration_ms - 500)),
                    "dur_ms": int(rng.uniform(*dur)),
                    "dbfs": round(min(-12.0, noise_dbfs + float(rng.uniform(15, 35))), 1),
                }
            )
    return bursts


def draw_case(
    index: int, rng: np.random.Generator, clip_ms: Callable[[str], int]
) -> dict[str, Any]:
    """Draw one legacy call's line conditions and script (``clip_ms``: a clip's length)."""
    greets = [f"greet_{i:02d}" for i in range(len(GREETINGS))]
    bots = [f"bot_{i:02d}" for i in range(len(BOT_LINES))]
    callers = [f"caller_{i:02d}" for i in range(len(CALLER_LINES))]
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
        return start_ms + clip_ms(clip)

    t = int(rng.uniform(300, 1200))
    if kind == "caller_first":
        say(int(rng.uniform(0, 1000)))
    first = True
    while t < duration_ms - 1500:
        clip = str(rng.choice(greets if first else bots))
        length = clip_ms(clip)
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
    bursts = draw_bursts(rng, 0.4, condition["noise_dbfs"], duration_ms)
    return {
        "id": f"call{index:04d}",
        "seed": int(rng.integers(2**31)),
        "duration_ms": duration_ms,
        "condition": condition,
        "bot": bot,
        "caller": caller,
        "bursts": bursts,
    }
