"""Runs every command block of README.md that a ``<!-- ci: ... -->`` marker names, as written.

Each block runs in a copy of the repository (the files git tracks, and new ones it does not
ignore) with a fresh, empty ``.venv``, so a block installs exactly the extras it names and
nothing else is there. A marker says what the block must do:

* ``<!-- ci: runs -->``: every command exits 0 (``bash -euo pipefail``);
  ``<!-- ci: runs, makes FILE -->``: and FILE exists afterwards;
* ``<!-- ci: serves -->``: the commands before the last exit 0; the last one starts a server,
  which must say where it listens (``listening on`` / ``running on`` a ``http://`` or ``ws://``
  address) and answer an HTTP request there; then it gets Ctrl+C (SIGINT) and must stop.

Usage: ``python .ci/readme.py [README.md]``. Prints one line per block and the output of each
block that failed; exits 1 if any did.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- ci: (?P<kind>runs|serves)(?:, makes (?P<makes>\S+))? -->$")
ADDRESS = re.compile(r"(?:listening|running) on (?:http|ws)://(?P<host>[0-9.]+):(?P<port>\d+)")
#: Seconds a block's commands may take (an install and an example), and a server to say where
#: it listens, and to stop after Ctrl+C.
RUN_LIMIT = 600.0
LISTEN_LIMIT = 60.0
STOP_LIMIT = 15.0


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    kind: str
    makes: str | None
    commands: list[str]

    @property
    def title(self) -> str:
        return f"{self.page} line {self.line}: {self.commands[-1]}"


def read_blocks(readme: Path) -> list[Block]:
    """The marked blocks of *readme*; a marker with no ```bash block right after is an error."""
    lines = readme.read_text().splitlines()
    found: list[Block] = []
    for number, text in enumerate(lines):
        marker = MARKER.match(text.strip())
        if marker is None:
            if text.strip().startswith("<!-- ci:"):
                raise SystemExit(f"{readme}:{number + 1}: a marker this script does not know")
            continue
        if number + 1 >= len(lines) or lines[number + 1].strip() != "```bash":
            raise SystemExit(f"{readme}:{number + 1}: the marker is not followed by ```bash")
        commands: list[str] = []
        for body in lines[number + 2 :]:
            if body.strip() == "```":
                break
            if body.strip():
                commands.append(body)
        if not commands:
            raise SystemExit(f"{readme}:{number + 1}: an empty block")
        found.append(
            Block(
                page=readme.name,
                line=number + 3,
                kind=marker["kind"],
                makes=marker["makes"],
                commands=commands,
            )
        )
    return found


def copy_repository(into: Path) -> None:
    """The files git tracks, and those it does not ignore, copied into *into* (no venvs)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if not source.is_file():
            continue  # deleted in the work tree
        target = into / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def run(commands: list[str], where: Path, log: Path) -> bool:
    with log.open("ab") as out:
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", "\n".join(commands)],
                cwd=where,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_LIMIT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            out.write(f"\n[readme.py] still running after {RUN_LIMIT:g} s\n".encode())
            return False
    return done.returncode == 0


def answers(host: str, port: str) -> bool:
    """Whether anything HTTP answers at host:port (any status counts)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def serve(command: str, where: Path, log: Path) -> bool:
    out = log.open("ab")
    server = subprocess.Popen(
        ["bash", "-c", command],
        cwd=where,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + LISTEN_LIMIT
        address = None
        while address is None and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.2)
            address = ADDRESS.search(log.read_text(errors="replace"))
        if address is None:
            out.write(b"\n[readme.py] the server never said where it listens\n")
            return False
        if not answers(address["host"], address["port"]):
            out.write(b"\n[readme.py] nothing answered at the address it gave\n")
            return False
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=STOP_LIMIT)
        except subprocess.TimeoutExpired:
            out.write(f"\n[readme.py] still running {STOP_LIMIT:g} s after Ctrl+C\n".encode())
            return False
        return True
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        out.close()


def check(block: Block, where: Path) -> tuple[bool, Path]:
    copy_repository(where)
    log = where / "readme-block.log"
    subprocess.run([sys.executable, "-m", "venv", str(where / ".venv")], check=True)
    if block.kind == "runs":
        ok = run(block.commands, where, log)
        if ok and block.makes is not None and not (where / block.makes).exists():
            with log.open("a") as out:
                out.write(f"\n[readme.py] {block.makes} was not made\n")
            ok = False
    else:
        *setup, last = block.commands
        ok = (not setup or run(setup, where, log)) and serve(last, where, log)
    return ok, log


def main(argv: list[str]) -> int:
    readme = Path(argv[0]) if argv else ROOT / "README.md"
    found = read_blocks(readme)
    if not found:
        print(f"{readme}: no <!-- ci: ... --> blocks", file=sys.stderr)
        return 1
    failed = 0
    for number, block in enumerate(found, 1):
        began = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="voiceguard-readme-") as tmp:
            ok, log = check(block, Path(tmp))
            took = time.monotonic() - began
            print(
                f"[{number}/{len(found)}] {'ok    ' if ok else 'FAILED'} {took:5.1f} s  "
                f"{block.title}",
                flush=True,
            )
            if not ok:
                failed += 1
                print(log.read_text(errors="replace")[-6000:], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
