"""Builders of the client events voiceguard sends, as plain JSON-ready dicts.

Serialise them with :func:`~voiceguard.protocol.dumps` or hand them to the SDK's ``send``. They
raise :class:`~voiceguard.errors.LocalProtocolError` on arguments the protocol does not allow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from voiceguard.audio import PCMU, AudioFormat
from voiceguard.errors import LocalProtocolError
from voiceguard.protocol._common import quote

__all__ = (
    "END_CALL_TOOL_NAME",
    "end_call_tool",
    "function_arguments",
    "function_call_output",
    "input_audio_append",
    "input_audio_clear",
    "input_audio_commit",
    "item_delete",
    "item_truncate",
    "response_cancel",
    "response_create",
    "session_update",
    "tool_error_output",
)

#: Name of the function tool built by :func:`end_call_tool`.
END_CALL_TOOL_NAME: Final = "end_call"

_MAX_EVENT_ID: Final = 512
_EAGERNESS: Final = ("low", "medium", "high", "auto")


def _event(event_type: str, event_id: object) -> dict[str, Any]:
    message: dict[str, Any] = {"type": event_type}
    if event_id is not None:
        if not isinstance(event_id, str) or not 0 < len(event_id) <= _MAX_EVENT_ID:
            raise LocalProtocolError(
                f"{event_type}: event_id must be a non-empty string of at most {_MAX_EVENT_ID} "
                f"characters, got {quote(event_id)}"
            )
        message["event_id"] = event_id
    return message


def _check_str(event_type: str, name: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        kind = "a string" if empty else "a non-empty string"
        raise LocalProtocolError(f"{event_type}: {name} must be {kind}, got {quote(value)}")
    return value


def _check_ms(event_type: str, name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LocalProtocolError(
            f"{event_type}: {name} must be a non-negative integer, got {quote(value)}"
        )
    return value


def _check_bool(event_type: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise LocalProtocolError(f"{event_type}: {name} must be True or False, got {quote(value)}")
    return value


def _check_format(event_type: str, name: str, value: object) -> AudioFormat:
    if not isinstance(value, AudioFormat):
        raise LocalProtocolError(f"{event_type}: {name} must be an AudioFormat, got {quote(value)}")
    return value


def _turn_detection_config(
    kind: str | None,
    *,
    threshold: object,
    prefix_padding_ms: int | None,
    silence_duration_ms: int | None,
    eagerness: str | None,
    interrupt_response: bool,
    create_response: bool,
) -> dict[str, Any] | None:
    et = "session.update"
    vad_options = {
        "vad_threshold": threshold,
        "prefix_padding_ms": prefix_padding_ms,
        "silence_duration_ms": silence_duration_ms,
        "eagerness": eagerness,
    }
    if kind is None:
        given = [name for name, value in vad_options.items() if value is not None]
        if given:
            raise LocalProtocolError(f"{et}: {', '.join(given)} given but turn_detection is None")
        return None
    if kind not in ("server_vad", "semantic_vad"):
        raise LocalProtocolError(
            f"{et}: turn_detection must be 'server_vad', 'semantic_vad' or None, got {quote(kind)}"
        )
    config: dict[str, Any] = {"type": kind}
    if kind == "server_vad":
        if eagerness is not None:
            raise LocalProtocolError(f"{et}: eagerness applies to semantic_vad only")
        if threshold is not None:
            if (
                not isinstance(threshold, (int, float))
                or isinstance(threshold, bool)
                or not 0.0 <= threshold <= 1.0
            ):
                raise LocalProtocolError(
                    f"{et}: vad_threshold must be a number from 0 to 1, got {quote(threshold)}"
                )
            config["threshold"] = float(threshold)
        if prefix_padding_ms is not None:
            config["prefix_padding_ms"] = _check_ms(et, "prefix_padding_ms", prefix_padding_ms)
        if silence_duration_ms is not None:
            config["silence_duration_ms"] = _check_ms(
                et, "silence_duration_ms", silence_duration_ms
            )
    else:
        given = [
            name for name, value in vad_options.items() if value is not None and name != "eagerness"
        ]
        if given:
            raise LocalProtocolError(f"{et}: {', '.join(given)} apply to server_vad only")
        if eagerness is not None:
            if eagerness not in _EAGERNESS:
                allowed = ", ".join(_EAGERNESS)
                raise LocalProtocolError(
                    f"{et}: eagerness must be one of {allowed}, got {quote(eagerness)}"
                )
            config["eagerness"] = eagerness
    config["interrupt_response"] = _check_bool(et, "interrupt_response", interrupt_response)
    config["create_response"] = _check_bool(et, "create_response", create_response)
    return config


def session_update(
    *,
    instructions: str | None = None,
    voice: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    turn_detection: Literal["server_vad", "semantic_vad"] | None = "server_vad",
    vad_threshold: float | None = None,
    prefix_padding_ms: int | None = None,
    silence_duration_ms: int | None = None,
    eagerness: Literal["low", "medium", "high", "auto"] | None = None,
    interrupt_response: bool = False,
    create_response: bool = False,
    input_format: AudioFormat = PCMU,
    output_format: AudioFormat = PCMU,
    input_transcription_model: str | None = None,
    model: str | None = None,
    beta: bool = False,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Build a ``session.update``. The defaults give voiceguard's full turn control.

    That is: ``audio/pcmu`` both ways (Twilio audio passes through untouched) and ``server_vad``
    with ``interrupt_response`` and ``create_response`` off, so the server reports speech but never
    cancels or creates a response by itself. Options left at None are not sent (``session.update``
    is a partial update), except ``turn_detection=None``, which sends ``null``: turn detection off.

    Args:
        instructions: The system instructions.
        voice: The output voice (e.g. ``"marin"``); fixed once the model has spoken.
        tools: Tool definitions, e.g. ``[end_call_tool()]``; ``[]`` removes all tools.
        turn_detection: ``"server_vad"``, ``"semantic_vad"``, or None for no turn detection.
        vad_threshold: ``server_vad`` activation threshold, 0 to 1.
        prefix_padding_ms: ``server_vad`` audio kept from before the speech.
        silence_duration_ms: ``server_vad`` silence that ends a turn.
        eagerness: ``semantic_vad`` eagerness.
        interrupt_response: Let the server cancel the active response when speech starts.
        create_response: Let the server create a response when speech stops.
        input_format: Format of the audio voiceguard appends.
        output_format: Format of the audio the model sends.
        input_transcription_model: Turn on transcription of the caller with this model
            (e.g. ``"gpt-4o-transcribe"``).
        model: The model (GA: ``session.model``).
        beta: Build the beta shape (``input_audio_format``, top-level ``turn_detection``, no
            ``session.type``) instead of the GA shape (``session.type: "realtime"``,
            ``session.audio.input`` / ``session.audio.output``).
        event_id: Client event id, echoed in ``error.event_id`` if the update fails.

    Returns:
        The ``session.update`` message.

    Raises:
        LocalProtocolError: On a bad option, or an option that does not fit the turn detection
            kind (``vad_threshold`` with ``semantic_vad``, ...).
    """
    et = "session.update"
    message = _event(et, event_id)
    detection = _turn_detection_config(
        turn_detection,
        threshold=vad_threshold,
        prefix_padding_ms=prefix_padding_ms,
        silence_duration_ms=silence_duration_ms,
        eagerness=eagerness,
        interrupt_response=interrupt_response,
        create_response=create_response,
    )
    input_format = _check_format(et, "input_format", input_format)
    output_format = _check_format(et, "output_format", output_format)
    session: dict[str, Any] = {}
    if not beta:
        session["type"] = "realtime"
    if model is not None:
        session["model"] = _check_str(et, "model", model)
    if instructions is not None:
        session["instructions"] = _check_str(et, "instructions", instructions, empty=True)
    if tools is not None:
        tools_value: object = tools  # checked at run time: callers may not be type-checked
        if isinstance(tools_value, (str, bytes)) or not isinstance(tools_value, Sequence):
            raise LocalProtocolError(f"{et}: tools must be a sequence of mappings")
        tool_list = []
        for index, tool in enumerate(tools_value):
            if not isinstance(tool, Mapping):
                raise LocalProtocolError(
                    f"{et}: tools[{index}] must be a mapping, got {quote(tool)}"
                )
            tool_list.append(dict(tool))
        session["tools"] = tool_list
    if voice is not None:
        voice = _check_str(et, "voice", voice)
    transcription = (
        None
        if input_transcription_model is None
        else {"model": _check_str(et, "input_transcription_model", input_transcription_model)}
    )
    if beta:
        if voice is not None:
            session["voice"] = voice
        session["input_audio_format"] = input_format.to_beta()
        session["output_audio_format"] = output_format.to_beta()
        session["turn_detection"] = detection
        if transcription is not None:
            session["input_audio_transcription"] = transcription
    else:
        audio_input: dict[str, Any] = {
            "format": input_format.to_wire(),
            "turn_detection": detection,
        }
        if transcription is not None:
            audio_input["transcription"] = transcription
        audio_output: dict[str, Any] = {"format": output_format.to_wire()}
        if voice is not None:
            audio_output["voice"] = voice
        session["audio"] = {"input": audio_input, "output": audio_output}
    message["session"] = session
    return message


def end_call_tool(
    *, description: str = "End the phone call. Call this only after saying goodbye to the caller."
) -> dict[str, Any]:
    """The function tool ``end_call`` (no arguments), to pass in ``session_update(tools=...)``.

    The reference handler hangs up politely when the model calls it: it lets the goodbye play,
    then closes the Twilio stream.

    Args:
        description: What the model is told about the tool.

    Returns:
        ``{"type": "function", "name": "end_call", "description": ..., "parameters": {...}}``.

    Raises:
        LocalProtocolError: If *description* is not a non-empty string.
    """
    return {
        "type": "function",
        "name": END_CALL_TOOL_NAME,
        "description": _check_str("end_call_tool", "description", description),
        "parameters": {"type": "object", "properties": {}, "required": []},
    }


def tool_error_output(problem: str) -> str:
    """The output of a function call that failed, for :func:`function_call_output`:
    ``{"error": problem}`` as JSON text (the model reads it and can tell the caller).

    .. versionadded:: 0.2.0
    """
    return json.dumps({"error": problem})


def function_arguments(text: str | None) -> dict[str, Any] | None:
    """A function call's ``arguments`` (JSON text) as an object, or None when they are not a JSON
    object (cut off, or not an object at all); absent arguments are an empty object.

    .. versionadded:: 0.2.0
    """
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def response_create(
    response: Mapping[str, Any] | None = None, *, event_id: str | None = None
) -> dict[str, Any]:
    """Build a ``response.create``.

    Args:
        response: Per-response overrides (``instructions``, ``tools``, ``metadata``,
            ``conversation``, ...), sent as ``response``; omitted when None.
        event_id: Client event id, echoed in ``error.event_id`` if the create fails (e.g. with
            ``conversation_already_has_active_response``).

    Returns:
        ``{"type": "response.create"}``, plus ``response`` and ``event_id`` when given.

    Raises:
        LocalProtocolError: If *response* is not a mapping, or *event_id* is invalid.
    """
    message = _event("response.create", event_id)
    if response is not None:
        if not isinstance(response, Mapping):
            raise LocalProtocolError(
                f"response.create: response must be a mapping, got {quote(response)}"
            )
        message["response"] = dict(response)
    return message


def response_cancel(
    response_id: str | None = None, *, event_id: str | None = None
) -> dict[str, Any]:
    """Build a ``response.cancel``.

    Args:
        response_id: The response to cancel; None (the default) cancels the active response of
            the default conversation, and the key is then omitted.
        event_id: Client event id, echoed in ``error.event_id`` if the cancel fails (e.g. with
            ``response_cancel_not_active``).

    Returns:
        Exactly ``{"type": "response.cancel"}``, plus ``response_id`` and ``event_id`` when given.

    Raises:
        LocalProtocolError: If *response_id* is given but not a non-empty string.
    """
    message = _event("response.cancel", event_id)
    if response_id is not None:
        message["response_id"] = _check_str("response.cancel", "response_id", response_id)
    return message


def item_truncate(
    item_id: str, audio_end_ms: int, content_index: int = 0, *, event_id: str | None = None
) -> dict[str, Any]:
    """Build a ``conversation.item.truncate``: keep only the audio the caller heard.

    The server also deletes the item's transcript, so the model's context holds no unheard text.
    Never truncate beyond the audio received for the item: the server answers with an error.

    Args:
        item_id: The assistant audio item.
        audio_end_ms: Audio to keep, in ms (an integer, at least 0).
        content_index: The content part; 0 for audio items.
        event_id: Client event id.

    Returns:
        The ``conversation.item.truncate`` message.

    Raises:
        LocalProtocolError: If *audio_end_ms* or *content_index* is negative or not an integer,
            or *item_id* is not a non-empty string.
    """
    et = "conversation.item.truncate"
    message = _event(et, event_id)
    message["item_id"] = _check_str(et, "item_id", item_id)
    message["content_index"] = _check_ms(et, "content_index", content_index)
    message["audio_end_ms"] = _check_ms(et, "audio_end_ms", audio_end_ms)
    return message


def item_delete(item_id: str, *, event_id: str | None = None) -> dict[str, Any]:
    """Build a ``conversation.item.delete`` (e.g. for a committed turn judged to be echo).

    Args:
        item_id: The item to delete.
        event_id: Client event id.

    Returns:
        The ``conversation.item.delete`` message.

    Raises:
        LocalProtocolError: If *item_id* is not a non-empty string.
    """
    et = "conversation.item.delete"
    message = _event(et, event_id)
    message["item_id"] = _check_str(et, "item_id", item_id)
    return message


def input_audio_append(payload_b64: str, *, event_id: str | None = None) -> dict[str, Any]:
    """Build an ``input_audio_buffer.append`` (no reply comes back).

    Args:
        payload_b64: Base64 audio in the session's input format; a Twilio ``media.payload`` passes
            through unchanged when both sides use ``audio/pcmu``. It is not decoded here (this
            runs for every frame), only checked to be a string.
        event_id: Client event id.

    Returns:
        ``{"type": "input_audio_buffer.append", "audio": payload_b64}``.

    Raises:
        LocalProtocolError: If *payload_b64* is not a string.
    """
    et = "input_audio_buffer.append"
    message = _event(et, event_id)
    message["audio"] = _check_str(et, "payload_b64", payload_b64, empty=True)
    return message


def input_audio_commit(*, event_id: str | None = None) -> dict[str, Any]:
    """Build an ``input_audio_buffer.commit`` (not needed with turn detection on).

    Args:
        event_id: Client event id.

    Returns:
        ``{"type": "input_audio_buffer.commit"}``.

    Raises:
        LocalProtocolError: If *event_id* is invalid.
    """
    return _event("input_audio_buffer.commit", event_id)


def input_audio_clear(*, event_id: str | None = None) -> dict[str, Any]:
    """Build an ``input_audio_buffer.clear``.

    Args:
        event_id: Client event id.

    Returns:
        ``{"type": "input_audio_buffer.clear"}``.

    Raises:
        LocalProtocolError: If *event_id* is invalid.
    """
    return _event("input_audio_buffer.clear", event_id)


def function_call_output(
    call_id: str, output: str, *, event_id: str | None = None
) -> dict[str, Any]:
    """Build the ``conversation.item.create`` that answers a function call.

    A response is not created by this; send :func:`response_create` when the model should go on.

    Args:
        call_id: The ``call_id`` of the function call.
        output: The result, usually a JSON string.
        event_id: Client event id.

    Returns:
        ``{"type": "conversation.item.create", "item": {"type": "function_call_output",
        "call_id": ..., "output": ...}}``.

    Raises:
        LocalProtocolError: If *call_id* is not a non-empty string or *output* is not a string.
    """
    et = "conversation.item.create"
    message = _event(et, event_id)
    message["item"] = {
        "type": "function_call_output",
        "call_id": _check_str(et, "call_id", call_id),
        "output": _check_str(et, "output", output, empty=True),
    }
    return message
