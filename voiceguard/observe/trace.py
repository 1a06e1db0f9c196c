"""Call traces: every message of a call and every decision, one JSON Lines file per call.

A :class:`TraceRecorder` is handed to a :class:`~voiceguard.MediaHandler` (``trace=``; the
reference server makes one per call with ``--trace-dir``). It writes, in the order they happen:

* ``header``: the format version, the bridge's configuration and whether audio was kept;
* ``in``: every message from the phone or the model that reached the bridge, with the monotonic
  time the bridge was given for it;
* ``tick``, ``timer``, ``close``: the bridge being woken at a deadline, a call-scoped timer
  firing, the call's final sends;
* ``decision``: every decision of the call's guards (allowed, suppressed or deferred);
* ``out``: every message sent to either peer, and the bridge's timer and hang-up requests;
* ``bad``: a malformed message (not fed to the bridge);
* ``end``: why the call ended, and the calibration gate's final estimates.

Those are exactly the inputs of :class:`~voiceguard.BridgeCore` with their times, so
:func:`voiceguard.observe.replay.replay` can feed them to a fresh bridge and get the same decisions.

Audio payloads are replaced by their length and energy (``{"bytes": 160, "dbfs": -42.5}``)
unless the recorder is asked to keep them (``audio="full"``). A trace without audio can be read
and drawn, but the calibration gate cannot judge energy it never saw, so only a trace with audio
can be re-decided. No API key or auth token reaches the bridge, and a secret that a peer echoes
back (a model ``error`` quoting the key) is replaced by ``<redacted>`` in every line written: the
recorder's ``secrets`` and those registered for the process (the reference server registers its
API key and auth token), as plain text and percent-encoded.

:func:`load_trace` reads a trace back; a malformed line raises :class:`TraceError` naming the
file, the line and the problem.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeAlias, final

from voiceguard._redact import REDACTED, blank_forms, registered_secrets, secret_forms
from voiceguard.audio import ulaw_energy_dbfs
from voiceguard.config import BridgeConfig, config_from_mapping, config_to_mapping
from voiceguard.decisions import Decision
from voiceguard.errors import ConfigError, VoiceguardError
from voiceguard.tools import Tool

__all__ = (
    "TRACE_FORMAT",
    "TRACE_VERSION",
    "AudioMode",
    "Trace",
    "TraceError",
    "TraceRecorder",
    "bridge_config_from_mapping",
    "bridge_config_to_mapping",
    "decision_record",
    "load_trace",
    "trace_dir_problem",
)

#: The ``format`` field of a trace's header line.
TRACE_FORMAT: Final = "voiceguard-trace"
#: The version of the trace format this module writes and reads.
TRACE_VERSION: Final = 1

#: ``"summary"``: audio payloads replaced by their length and energy; ``"full"``: kept.
AudioMode: TypeAlias = Literal["summary", "full"]

#: The guard behind each kind of decision (the same names as the metric labels and the logs).
_GUARD_OF_ACTION: Final = {
    "BARGE_IN": "calibration_gate",
    "CANCEL": "cancel_arbiter",
    "CREATE": "response_create_guard",
    "TRUNCATE": "bridge",
    "TIMER": "call_scope",
}
_KINDS: Final = frozenset(
    {"header", "in", "out", "tick", "timer", "close", "decision", "bad", "end", "tool"}
)
_REALTIME_AUDIO_DELTAS: Final = frozenset({"response.output_audio.delta", "response.audio.delta"})
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9_.-]")


class TraceError(VoiceguardError, ValueError):
    """A trace file is malformed, or cannot be used for what was asked.

    The message names the file, the line (when one is at fault) and the problem.

    .. versionadded:: 0.1.0
    """


# ============================================================================================
# Configuration to and from plain data


def bridge_config_to_mapping(config: BridgeConfig) -> dict[str, Any]:
    """A :class:`~voiceguard.BridgeConfig` as plain JSON data (nested sections as objects).

    .. versionadded:: 0.1.0
    """
    return config_to_mapping(config)


def bridge_config_from_mapping(
    data: Mapping[str, Any], *, base: BridgeConfig | None = None
) -> BridgeConfig:
    """Build a :class:`~voiceguard.BridgeConfig` from plain data, over *base* (or the defaults).

    Only the fields given change: ``{"calibration": {"speech_margin_db": 8}}`` changes one.
    (:func:`voiceguard.config_from_mapping` does the same for any configuration.)

    Raises:
        ConfigError: For an unknown field (named with its path) or a value out of range.

    .. versionadded:: 0.1.0
    """
    return config_from_mapping(data, base if base is not None else BridgeConfig())


# ============================================================================================
# Recording


def _audio_summary(payload: object) -> object:
    if not isinstance(payload, str):
        return payload
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return {"bytes": None, "dbfs": None}
    if not audio:
        return {"bytes": 0, "dbfs": None}
    return {"bytes": len(audio), "dbfs": round(ulaw_energy_dbfs(audio), 2)}


def _redact(message: Mapping[str, Any]) -> dict[str, Any]:
    """*message* with its audio payload replaced by its length and energy."""
    out = dict(message)
    media = out.get("media")
    if out.get("event") == "media" and isinstance(media, Mapping) and "payload" in media:
        out["media"] = {**media, "payload": _audio_summary(media["payload"])}
    kind = out.get("type")
    if kind in _REALTIME_AUDIO_DELTAS and "delta" in out:
        out["delta"] = _audio_summary(out["delta"])
    elif kind == "input_audio_buffer.append" and "audio" in out:
        out["audio"] = _audio_summary(out["audio"])
    return out


def _forms_in_json(forms: tuple[str, ...]) -> tuple[str, ...]:
    """*forms* as they appear inside a JSON line (escaped like ``json.dumps`` escapes them)."""
    return tuple(dict.fromkeys((*forms, *(json.dumps(form)[1:-1] for form in forms))))


def _blanked(value: object, forms: tuple[str, ...]) -> object:
    """*value* (a record's JSON data) with the secrets' *forms* blanked in every string.

    A number or other scalar that spells a secret becomes the string ``<redacted>``, so the line
    stays valid JSON and the secret still goes.
    """
    if isinstance(value, str):
        return blank_forms(value, forms)
    if isinstance(value, Mapping):
        return {
            blank_forms(key, forms) if isinstance(key, str) else key: _blanked(item, forms)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_blanked(item, forms) for item in value]
    text = json.dumps(value)
    return REDACTED if any(form in text for form in forms) else value


def trace_dir_problem(directory: str | os.PathLike[str]) -> str | None:
    """Why traces could not be written to *directory*, or None when they can.

    Creates the directory (a recorder would, at its first record) and writes a temporary file
    there: only writing tells whether it can be written, and a command must know before it runs
    (a demo's 30 s, a server's calls), not after.

    .. versionadded:: 0.2.0
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        return "not a directory (a file of that name exists)"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the directory: {exc.strerror or exc}"
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return f"cannot write files there: {exc.strerror or exc}"
    return None


def _file_name(call_sid: str | None, stream_sid: str | None) -> str:
    name = _UNSAFE_NAME.sub("_", f"{call_sid or 'call'}-{stream_sid or 'stream'}")[:120]
    return name + ".jsonl"


@final
class TraceRecorder:
    """Writes one call's trace (see the module documentation for what it holds).

    Args:
        directory: Where to write; the file is named after the call and stream SIDs once the
            stream starts (``CA...-MZ....jsonl``); a trace of the same call again is suffixed.
        audio: ``"summary"`` (the default) replaces audio payloads by their length and energy;
            ``"full"`` keeps them, which a replay with re-decided barge-ins needs.
        config: The bridge's configuration, written in the header (the handler sets it).
        secrets: Replaced by ``<redacted>`` wherever they appear in a record, with those
            registered for the process (the reference server registers its API key, auth token
            and metrics token), read at every record. A secret shorter than 8 characters is
            not looked for (it would blank ordinary words). A line is searched for them before
            it is written, and rebuilt only when one is in it, so a frame of audio costs a few
            substring checks.

    The file is opened at the first record and closed by :meth:`close` (the handler closes it
    when the call ends). Writing never raises into the call: an ``OSError`` stops the trace and
    is kept in :attr:`error`.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       The *secrets* option; registered secrets are redacted.
    """

    __slots__ = (
        "_audio",
        "_config",
        "_directory",
        "_file",
        "_forms",
        "_json_forms",
        "_now",
        "_registered",
        "_secrets",
        "_tools",
        "error",
        "path",
    )

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        audio: AudioMode = "summary",
        config: BridgeConfig | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        if audio not in ("summary", "full"):
            raise ConfigError("TraceRecorder.audio", audio, '"summary" or "full"')
        self._directory = Path(directory)
        self._secrets = tuple(secret for secret in secrets if secret)
        self._registered: tuple[str, ...] | None = None  # the registry the forms were made for
        self._forms: tuple[str, ...] = ()
        self._json_forms: tuple[str, ...] = ()
        self._audio: AudioMode = audio
        self._config = config if config is not None else BridgeConfig()
        self._tools: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        self._now = 0.0
        #: The file written, once it was opened.
        self.path: Path | None = None
        #: The error that stopped the trace, if one did.
        self.error: OSError | None = None

    @property
    def audio(self) -> AudioMode:
        """Whether audio payloads are kept (``"full"``) or summarised (``"summary"``)."""
        return self._audio

    def set_config(self, config: BridgeConfig) -> None:
        """Set the configuration written in the header (before the first record)."""
        self._config = config

    def set_tools(self, tools: Sequence[Tool]) -> None:
        """Set the tools the model was offered, written in the header (before the first record).

        .. versionadded:: 0.2.0
        """
        self._tools = [tool.definition() for tool in tools]

    # ------------------------------------------------------------------ records

    def start(self, text: str, now: float, *, call_sid: str | None, stream_sid: str | None) -> None:
        """Twilio's ``start`` message: opens the file and writes the header, then the message."""
        if self._file is None and self.error is None:
            try:
                self._directory.mkdir(parents=True, exist_ok=True)
                path = self._directory / _file_name(call_sid, stream_sid)
                number = 1
                while path.exists():
                    number += 1
                    path = self._directory / (
                        _file_name(call_sid, stream_sid)[:-6] + f"-{number}.jsonl"
                    )
                self._file = path.open("x", encoding="utf-8")
                self.path = path
            except OSError as exc:
                self.error = exc
                return
            self._write(
                {
                    "k": "header",
                    "format": TRACE_FORMAT,
                    "version": TRACE_VERSION,
                    "audio": self._audio,
                    "call_sid": call_sid,
                    "stream_sid": stream_sid,
                    "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                        timespec="seconds"
                    ),
                    "config": bridge_config_to_mapping(self._config),
                    **({"tools": self._tools} if self._tools else {}),
                }
            )
        self.received("phone", text, now)

    def received(self, peer: Literal["phone", "model"], text: str, now: float) -> None:
        """A message from *peer* that is about to be fed to the bridge at *now*."""
        self._now = now
        if self._file is None:
            return
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self._write({"k": "in", "peer": peer, "t": now, "text": text})
            return
        if self._audio == "summary":
            message = _redact(message)
        self._write({"k": "in", "peer": peer, "t": now, "msg": message})

    def bad(self, peer: Literal["phone", "model"], problem: str, now: float) -> None:
        """A malformed message from *peer* (it never reaches the bridge)."""
        # Blanked before it is cut: a cut could leave half a secret the line check cannot see.
        self._update_forms()
        problem = blank_forms(problem, self._forms)[:200]
        self._write({"k": "bad", "peer": peer, "t": now, "problem": problem})

    def tick(self, now: float) -> None:
        """The bridge is woken at its deadline (:meth:`~voiceguard.BridgeCore.on_tick`)."""
        self._now = now
        self._write({"k": "tick", "t": now})

    def timer(self, name: str, now: float, *, number: int | None = None) -> None:
        """One of the call's own timers fires: ``watchdog``, ``idle_prompt`` (with its *number*),
        ``idle_hangup``, ``max_duration``, ``max_duration_hard`` or ``hangup_fallback``.

        The turn engine tells of its own timers through ``BridgeCore(on_timer=...)`` (the media
        handler wires it here); they fire inside a tick or an input, which the trace records
        before them, so :func:`~voiceguard.observe.replay.replay` reads a ``timer`` record as
        one more tick at its time.
        """
        self._now = now
        record: dict[str, Any] = {"k": "timer", "t": now, "name": name}
        if number is not None:
            record["number"] = number
        self._write(record)

    def close_call(self, now: float) -> None:
        """The bridge's final sends (:meth:`~voiceguard.BridgeCore.close`)."""
        self._now = now
        self._write({"k": "close", "t": now})

    def decision(self, decision: Decision) -> None:
        """A guard's decision (a :data:`~voiceguard.DecisionSink`), at the current input."""
        self._write(decision_record(decision, self._now))

    def sent(self, peer: Literal["phone", "model"], message: Mapping[str, Any], now: float) -> None:
        """A message sent to *peer*."""
        if self._file is None:
            return
        body = dict(message) if self._audio == "full" else _redact(message)
        self._write({"k": "out", "peer": peer, "t": now, "msg": body})

    def tool_result(self, call_id: str, output: str, now: float) -> None:
        """A tool's result (or error) as it was handed to the bridge.

        .. versionadded:: 0.2.0
        """
        self._now = now
        self._write({"k": "tool", "t": now, "call_id": call_id, "output": output})

    def action(self, what: str, now: float, **fields: object) -> None:
        """One of the bridge's other requests to the runtime, such as ``hang_up``."""
        self._write({"k": "out", "peer": "runtime", "t": now, "action": what, **fields})

    def end(self, now: float, *, ended_by: str, gate: Mapping[str, Any] | None = None) -> None:
        """The call ended; closes the file."""
        self._write({"k": "end", "t": now, "ended_by": ended_by, "gate": dict(gate or {})})
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                self.error = exc

    def _update_forms(self) -> None:
        """Follow the registry: it is replaced whole when a secret is added, so ``is`` tells."""
        registered = registered_secrets()
        if registered is not self._registered:
            self._registered = registered
            self._forms = secret_forms((*self._secrets, *registered))
            self._json_forms = _forms_in_json(self._forms)

    def _write(self, record: Mapping[str, Any]) -> None:
        file = self._file
        if file is None:
            return
        try:
            line = json.dumps(record, separators=(",", ":"))
            self._update_forms()
            for form in self._json_forms:  # a few substring checks; rebuilt only on a hit
                if form in line:
                    line = json.dumps(_blanked(record, self._forms), separators=(",", ":"))
                    break
            file.write(line + "\n")
        except (OSError, ValueError) as exc:
            self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
            self.close()


def decision_record(decision: Decision, now: float) -> dict[str, Any]:
    """The trace record (``"k": "decision"``) of *decision*, made at *now*.

    .. versionadded:: 0.2.0
    """
    return {
        "k": "decision",
        "t": now,
        "guard": _GUARD_OF_ACTION.get(decision.action.value, "bridge"),
        "action": decision.action.value,
        "verdict": decision.verdict.value,
        "reason": decision.reason.value,
        "response_id": decision.response_id,
        "item_id": decision.item_id,
        "retry_at": decision.retry_at,
        "detail": decision.detail,
    }


# ============================================================================================
# Loading


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """A loaded trace.

    Attributes:
        path: The file it was read from.
        header: The header line (format, version, audio mode, SIDs, configuration).
        records: Every other line, in order, as plain JSON objects (each has ``k`` and ``t``).
        lines: The line number of each record in the file (for error messages).

    .. versionadded:: 0.1.0
    """

    path: Path
    header: Mapping[str, Any]
    records: Sequence[Mapping[str, Any]]
    lines: Sequence[int] = ()

    @property
    def audio(self) -> AudioMode:
        """``"full"`` if audio payloads were kept, else ``"summary"``."""
        return "full" if self.header.get("audio") == "full" else "summary"

    @property
    def call_sid(self) -> str | None:
        """The call's SID, from the header."""
        sid = self.header.get("call_sid")
        return sid if isinstance(sid, str) else None

    @property
    def config(self) -> BridgeConfig:
        """The bridge configuration the call ran with."""
        data = self.header.get("config", {})
        try:
            return bridge_config_from_mapping(data)
        except ConfigError as exc:
            raise TraceError(
                f"{self.path}:1: the recorded configuration is invalid: {exc}"
            ) from None

    @property
    def tools(self) -> tuple[Mapping[str, Any], ...]:
        """The tools the model was offered (as ``session.tools`` lists them), from the header."""
        tools = self.header.get("tools", ())
        return tuple(t for t in tools if isinstance(t, Mapping)) if isinstance(tools, list) else ()

    def of_kind(self, *kinds: str) -> Iterator[Mapping[str, Any]]:
        """The records of the given kinds, in order."""
        return (record for record in self.records if record["k"] in kinds)

    def decisions(self) -> list[Mapping[str, Any]]:
        """The recorded decisions, in order."""
        return list(self.of_kind("decision"))


def _check_record(record: object, number: int, path: Path) -> Mapping[str, Any]:
    where = f"{path}:{number}"
    if not isinstance(record, dict):
        raise TraceError(f"{where}: a record must be a JSON object, not {type(record).__name__}")
    kind = record.get("k")
    if kind not in _KINDS:
        raise TraceError(
            f"{where}: field 'k' is {kind!r}; expected one of {', '.join(sorted(_KINDS))}"
        )
    if kind == "header":
        raise TraceError(f"{where}: a second header (only the first line is one)")
    t = record.get("t")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or math.isnan(t):
        raise TraceError(f"{where}: {kind} record: field 't' is {t!r}; expected a number")
    if kind in ("in", "out") and record.get("peer") not in ("phone", "model", "runtime"):
        raise TraceError(
            f"{where}: {kind} record: field 'peer' is {record.get('peer')!r}; "
            "expected 'phone' or 'model'"
        )
    if kind == "in" and not isinstance(record.get("msg"), dict) and "text" not in record:
        raise TraceError(f"{where}: in record: field 'msg' is missing or not an object")
    strings = {"decision": ("guard", "action", "verdict", "reason"), "tool": ("call_id", "output")}
    if kind in strings:
        for name in strings[kind]:
            if not isinstance(record.get(name), str):
                raise TraceError(
                    f"{where}: {kind} record: field {name!r} is {record.get(name)!r}; "
                    "expected a string"
                )
    if kind == "timer" and not isinstance(record.get("name"), str):
        raise TraceError(f"{where}: timer record: field 'name' is missing or not a string")
    return record


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace written by :class:`TraceRecorder`.

    Raises:
        TraceError: If the file cannot be read, is not a trace, is of another version, or a line
            is malformed (the message names the line number and the problem).
        OSError: Never; read errors become :class:`TraceError`.

    .. versionadded:: 0.1.0
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{file}: cannot read the trace: {exc}") from None
    lines = text.splitlines()
    if not lines:
        raise TraceError(f"{file}: empty file; a trace starts with a header line")
    records: list[Mapping[str, Any]] = []
    numbers: list[int] = []
    header: Mapping[str, Any] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise TraceError(f"{file}:{number}: not JSON: {exc}") from None
        if header is None:
            if not isinstance(record, dict) or record.get("format") != TRACE_FORMAT:
                raise TraceError(
                    f"{file}:{number}: not a voiceguard trace (the first line must be a header "
                    f'with "format": "{TRACE_FORMAT}")'
                )
            if record.get("version") != TRACE_VERSION:
                raise TraceError(
                    f"{file}:{number}: trace format version {record.get('version')!r}; "
                    f"this voiceguard reads version {TRACE_VERSION}"
                )
            header = record
            continue
        records.append(_check_record(record, number, file))
        numbers.append(number)
    if header is None:
        raise TraceError(f"{file}: only blank lines; a trace starts with a header line")
    return Trace(path=file, header=header, records=tuple(records), lines=tuple(numbers))
