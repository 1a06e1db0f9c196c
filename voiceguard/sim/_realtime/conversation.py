"""The conversation of one connection: its items, their wire form, and the client events that
create, truncate, retrieve and delete them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, final

from voiceguard.protocol import ClientEventError, ItemCreate, ItemDelete, ItemTruncate
from voiceguard.sim._realtime.context import Context
from voiceguard.sim._realtime.outbox import Outbox

__all__ = ("Conversation", "Item")


@dataclass(slots=True, kw_only=True)
class Item:
    """One conversation item (or an item of an out-of-band response)."""

    id: str
    type: str
    role: str | None = None
    status: str = "completed"
    content: str | None = None  # "input_audio", "output_audio", "output_text", "input_text", ...
    audio_ms: int = 0
    transcript: str | None = None
    text: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    in_conversation: bool = True


@final
class Conversation:
    """The items of the default conversation, in order."""

    __slots__ = ("_context", "_items", "_order", "_outbox")

    def __init__(self, context: Context, outbox: Outbox) -> None:
        self._context = context
        self._outbox = outbox
        self._items: dict[str, Item] = {}
        self._order: list[str] = []

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def last_id(self) -> str | None:
        """The id of the last item, or None for an empty conversation."""
        return self._order[-1] if self._order else None

    def append(self, item: Item) -> None:
        """Put *item* at the end of the conversation, with no event."""
        self._items[item.id] = item
        self._order.append(item.id)

    def add(self, item: Item, previous: str | None) -> None:
        """Put *item* at the end and announce it (``conversation.item.added``, and ``.done``
        when it is complete)."""
        self.append(item)
        wire = self.wire(item)
        emit = self._outbox.emit
        emit({"type": "conversation.item.added", "previous_item_id": previous, "item": wire})
        if item.status == "completed":
            emit({"type": "conversation.item.done", "previous_item_id": previous, "item": wire})

    def wire(self, item: Item) -> dict[str, Any]:
        """The item as the server sends it."""
        wire: dict[str, Any] = {"id": item.id, "object": "realtime.item", "type": item.type}
        if item.type == "message":
            wire["status"] = item.status
            wire["role"] = item.role
            content: list[dict[str, Any]] = []
            if item.content == "input_audio":
                content.append({"type": "input_audio", "transcript": None})
            elif item.content == "output_audio":
                kind = "audio" if self._context.beta else "output_audio"
                content.append({"type": kind, "transcript": item.transcript or ""})
            elif item.content == "output_text":
                kind = "text" if self._context.beta else "output_text"
                content.append({"type": kind, "text": item.text or ""})
            elif item.content is not None:
                content.append({"type": item.content, "text": item.text or ""})
            wire["content"] = content
        elif item.type == "function_call":
            wire.update(
                status=item.status, name=item.name, call_id=item.call_id, arguments=item.arguments
            )
        elif item.type == "function_call_output":
            wire.update(call_id=item.call_id, output=item.output)
        return wire

    def find(self, item_id: str, event_id: str | None, code: str) -> Item:
        """The item *item_id*.

        Raises:
            ClientEventError: With *code*, if there is no such item.
        """
        item = self._items.get(item_id)
        if item is None:
            raise ClientEventError(
                code,
                f"Item with item_id not found: {item_id}",
                param="item_id",
                event_id=event_id,
            )
        return item

    def retrieve(self, item_id: str, event_id: str | None) -> None:
        """Answer a ``conversation.item.retrieve``."""
        item = self.find(item_id, event_id, "item_retrieve_invalid_item_id")
        self._outbox.emit({"type": "conversation.item.retrieved", "item": self.wire(item)})

    def create(self, event: ItemCreate) -> None:
        """Answer a ``conversation.item.create``."""
        raw = event.item
        kind = raw.get("type")
        allowed = ("message", "function_call", "function_call_output")
        if kind not in allowed:
            names = ", ".join(f"'{a}'" for a in allowed)
            raise ClientEventError(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: {names}.",
                param="item.type",
                event_id=event.event_id,
            )
        previous = event.previous_item_id
        if previous is not None and previous != "root" and previous not in self._items:
            raise ClientEventError(
                "invalid_value",
                f"Previous item with item_id not found: {previous}",
                param="previous_item_id",
                event_id=event.event_id,
            )
        raw_id = raw.get("id")
        item_id = raw_id if isinstance(raw_id, str) and raw_id else self._context.new_id("item_")
        if item_id in self._items:
            raise ClientEventError(
                "invalid_value",
                f"Item with item_id already exists: {item_id}",
                param="item.id",
                event_id=event.event_id,
            )
        item = Item(id=item_id, type=str(kind))
        if kind == "message":
            role = raw.get("role")
            if role not in ("user", "assistant", "system"):
                raise ClientEventError(
                    "invalid_value",
                    f"Invalid value: '{role}'. Supported values are: 'user', 'assistant', "
                    "'system'.",
                    param="item.role",
                    event_id=event.event_id,
                )
            item.role = str(role)
            parts = raw.get("content")
            first = parts[0] if isinstance(parts, list) and parts else {}
            part_type = first.get("type") if isinstance(first, Mapping) else None
            if role == "assistant" and part_type in ("audio", "output_audio"):
                raise ClientEventError(
                    "invalid_value",
                    "Assistant audio messages cannot be created; only text content is allowed.",
                    param="item.content",
                    event_id=event.event_id,
                )
            item.content = part_type if isinstance(part_type, str) else "input_text"
            text = first.get("text") if isinstance(first, Mapping) else None
            item.text = text if isinstance(text, str) else None
        elif kind == "function_call":
            item.name = str(raw.get("name", ""))
            item.call_id = str(raw.get("call_id", ""))
            item.arguments = str(raw.get("arguments", ""))
        else:
            call_id = raw.get("call_id")
            if not isinstance(call_id, str):
                raise ClientEventError(
                    "missing_required_parameter",
                    "Missing required parameter: 'item.call_id'.",
                    param="item.call_id",
                    event_id=event.event_id,
                )
            item.call_id = call_id
            output = raw.get("output")
            item.output = output if isinstance(output, str) else ""
        if previous is None:
            previous = self.last_id()
        self.add(item, None if previous == "root" else previous)

    def truncate(self, event: ItemTruncate) -> None:
        """Answer a ``conversation.item.truncate``."""
        item = self.find(event.item_id, event.event_id, "item_truncate_invalid_item_id")
        if (
            item.type != "message"
            or item.role != "assistant"
            or item.content != "output_audio"
            or (item.audio_ms == 0 and item.status == "in_progress")
        ):
            raise ClientEventError(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                param="item_id",
                event_id=event.event_id,
            )
        if event.content_index != 0:
            raise ClientEventError(
                "invalid_value",
                f"Invalid 'content_index': item has no content part {event.content_index}.",
                param="content_index",
                event_id=event.event_id,
            )
        if event.audio_end_ms > item.audio_ms:
            raise ClientEventError(
                None,
                f"Audio content of {item.audio_ms}ms is already shorter than "
                f"{event.audio_end_ms}ms",
                param="audio_end_ms",
                event_id=event.event_id,
            )
        item.audio_ms = event.audio_end_ms
        item.transcript = ""
        self._outbox.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item.id,
                "content_index": event.content_index,
                "audio_end_ms": event.audio_end_ms,
            }
        )

    def delete(self, event: ItemDelete) -> None:
        """Answer a ``conversation.item.delete``."""
        item = self.find(event.item_id, event.event_id, "item_delete_invalid_item_id")
        del self._items[item.id]
        if item.id in self._order:
            self._order.remove(item.id)
        self._outbox.emit({"type": "conversation.item.deleted", "item_id": item.id})
