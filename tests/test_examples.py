"""Every example runs, as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_replay_events_example_explains_each_decision() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "replay_events.py"),
            str(EXAMPLES / "data/cancel_race.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert "CANCEL ALLOW OK response_id=resp_A" in lines[1]
    assert "CANCEL_ALREADY_SENT" in lines[2]
    assert "CREATE DEFER RESPONSE_ACTIVE" in lines[3]
    assert "CREATE ALLOW OK (tool_result)" in lines[4]
    assert "CREATE SUPPRESS RESPONSE_ACTIVE" in done.stdout
    assert lines[-1] == "sent: 2 create, 2 cancel; anomalies: {'duplicate_response_done': 1}"


def test_replay_events_example_reports_a_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"intent": "turn_end"}\n{"type": "response.done"}\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "replay_events.py"), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.startswith(f"{bad}:2: realtime 'response.done': field ")
    assert "Traceback" not in done.stderr
