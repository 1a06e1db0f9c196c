"""PlayoutBuffer: pacing, marks, heard position, pause / rewind / resume, drop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceguard import (
    ConfigError,
    PlayoutBuffer,
    PlayoutConfig,
    StateTransitionError,
)
from voiceguard.protocol import PCM24K

SECOND = bytes(range(256)) * 31 + bytes(64)  # 8000 distinct-ish bytes: one second of mu-law


def buffer(**config: object) -> PlayoutBuffer:
    return PlayoutBuffer(config=PlayoutConfig(**config))  # type: ignore[arg-type]


def test_pacing_keeps_a_bounded_lead() -> None:
    playout = buffer(chunk_ms=100, lead=0.3)
    playout.push(item_id="i1", response_id="r1", audio=SECOND)
    first = playout.pull(0.0)
    assert [(c.start_ms, c.end_ms) for c in first] == [(0, 100), (100, 200), (200, 300)]
    assert playout.pull(0.0) == []
    assert playout.pull(0.05) == []
    deadline = playout.next_deadline()
    assert deadline == pytest.approx(0.1)
    assert deadline is not None
    later = playout.pull(0.1)
    assert [c.start_ms for c in later] == [300]
    # Woken exactly at the deadline, the caller always gets a chunk (no busy loop).
    for _ in range(6):
        deadline = playout.next_deadline()
        assert deadline is not None
        assert len(playout.pull(deadline)) == 1
    assert playout.queued_ms == 0
    assert playout.next_deadline() is None


def test_chunks_carry_the_audio_in_order_with_unique_marks() -> None:
    playout = buffer()
    playout.push(item_id="i1", response_id="r1", audio=SECOND[:4000])
    playout.push(item_id="i1", response_id="r1", audio=SECOND[4000:])
    chunks = []
    t = 0.0
    while not playout.idle or playout.queued_ms:
        chunks += playout.pull(t)
        for chunk in chunks[-3:]:
            playout.mark_played(chunk.mark)
        t += 0.1
        if t > 5:
            break
    assert b"".join(c.audio for c in chunks) == SECOND
    assert len({c.mark for c in chunks}) == len(chunks)


def test_heard_position_comes_from_echoed_marks() -> None:
    playout = buffer()
    playout.push(item_id="i1", response_id="r1", audio=SECOND)
    chunks = playout.pull(0.0)
    assert playout.heard is None
    heard = playout.mark_played(chunks[0].mark)
    assert heard is not None
    assert (heard.item_id, heard.response_id, heard.heard_ms) == ("i1", "r1", 100)
    # A lost echo: the next mark implies the one before it played too.
    heard = playout.mark_played(chunks[2].mark)
    assert heard is not None and heard.heard_ms == 300
    assert not playout.playing
    assert playout.mark_played(chunks[1].mark) is None  # late echo of an implied mark
    assert playout.mark_played("someone-elses-mark") is None
    assert playout.statistics().marks_unknown == 2


def test_marks_echoed_because_of_clear_do_not_count_as_heard() -> None:
    playout = buffer()
    playout.push(item_id="i1", response_id="r1", audio=SECOND)
    chunks = playout.pull(0.0)
    playout.mark_played(chunks[0].mark)
    assert playout.pause() is True  # audio was on the phone: send clear
    for chunk in chunks[1:]:
        assert playout.mark_played(chunk.mark) is None
    heard = playout.heard
    assert heard is not None and heard.heard_ms == 100
    stats = playout.statistics()
    assert stats.marks_flushed == 2
    assert stats.rewound_ms == 200


def test_pause_rewinds_and_resume_replays_from_the_heard_position() -> None:
    playout = buffer()
    playout.push(item_id="i1", response_id="r1", audio=SECOND)
    chunks = playout.pull(0.0)
    playout.mark_played(chunks[0].mark)
    playout.pause()
    assert playout.pull(1.0) == []
    assert playout.next_deadline() is None
    assert playout.queued_ms == 900
    playout.resume()
    again = playout.pull(1.0)
    assert again[0].start_ms == 100
    assert again[0].audio == SECOND[800:1600]


def test_pause_with_nothing_on_the_phone_needs_no_clear() -> None:
    playout = buffer()
    assert playout.pause() is False
    playout.resume()
    playout.push(item_id="i1", response_id="r1", audio=SECOND[:800])
    (chunk,) = playout.pull(0.0)
    playout.mark_played(chunk.mark)
    assert playout.pause() is False


def test_drop_discards_a_cancelled_responses_audio_only() -> None:
    playout = buffer()
    playout.push(item_id="i1", response_id="r1", audio=SECOND)
    playout.pull(0.0)
    playout.pause()
    playout.push(item_id="i2", response_id="r2", audio=SECOND[:1600])
    assert playout.drop(response_id="r1") == 1000
    playout.resume()
    chunks = playout.pull(2.0)
    assert {c.item_id for c in chunks} == {"i2"}
    assert chunks[0].start_ms == 0
    assert playout.statistics().dropped_ms == 1000


def test_items_play_in_order_and_positions_are_per_item() -> None:
    playout = buffer(lead=10)
    playout.push(item_id="i1", response_id="r1", audio=SECOND[:1200])
    playout.push(item_id="i2", response_id="r2", audio=SECOND[:800])
    chunks = playout.pull(0.0)
    assert [(c.item_id, c.start_ms, c.end_ms) for c in chunks] == [
        ("i1", 0, 100),
        ("i1", 100, 150),
        ("i2", 0, 100),
    ]


def test_pcm16_audio_must_be_whole_samples() -> None:
    playout = buffer(audio_format=PCM24K)
    with pytest.raises(StateTransitionError, match="3 bytes is not a whole number of 2-byte"):
        playout.push(item_id="i1", response_id="r1", audio=b"abc")
    playout.push(item_id="i1", response_id="r1", audio=bytes(4800))
    (chunk, *_) = playout.pull(0.0)
    assert chunk.end_ms == 100
    assert len(chunk.audio) == 4800


@pytest.mark.parametrize(
    ("field", "value"),
    [("chunk_ms", 5), ("chunk_ms", 2000), ("lead", -0.1), ("audio_format", "pcmu")],
)
def test_bad_playout_config(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"PlayoutConfig.{field}"):
        PlayoutConfig(**{field: value})  # type: ignore[arg-type]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(min_value=1, max_value=3), st.integers(1, 2000)),
        st.tuples(st.just("pull"), st.floats(min_value=0, max_value=0.5), st.just(0)),
        st.tuples(st.just("echo"), st.integers(min_value=0, max_value=3), st.just(0)),
        st.tuples(st.just("pause"), st.just(0), st.just(0)),
        st.tuples(st.just("resume"), st.just(0), st.just(0)),
        st.tuples(st.just("drop"), st.integers(min_value=1, max_value=3), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_sent_audio_always_matches_the_pushed_audio_at_its_position(
    operations: list[tuple[str, float, int]],
) -> None:
    """Whatever happens, every chunk carries exactly the item's audio at its claimed position,
    the heard position never moves back within an item, and never passes what was sent."""
    playout = buffer(chunk_ms=50, lead=0.2)
    pushed: dict[str, bytearray] = {}
    order = ["i1"]
    now = 0.0
    sent_marks: list[str] = []
    sent_until: dict[str, float] = {}
    heard_until: dict[str, float] = {}
    for op, a, b in operations:
        if op == "push":
            item = f"i{int(a)}"
            if item != order[-1]:
                if item in pushed:
                    continue  # an item's audio arrives in one run
                order.append(item)
            data = bytes((n * 7 + len(pushed.get(item, b""))) % 256 for n in range(b))
            pushed.setdefault(item, bytearray()).extend(data)
            playout.push(item_id=item, response_id=f"r{item[1:]}", audio=data)
        elif op == "pull":
            now += a
            for chunk in playout.pull(now):
                start = round(chunk.start_ms * 8)
                assert bytes(pushed[chunk.item_id][start : start + len(chunk.audio)]) == chunk.audio
                assert chunk.end_ms - chunk.start_ms == len(chunk.audio) / 8
                sent_until[chunk.item_id] = max(sent_until.get(chunk.item_id, 0), chunk.end_ms)
                sent_marks.append(chunk.mark)
        elif op == "echo" and sent_marks:
            name = sent_marks.pop(0)
            for _ in range(int(a)):
                if sent_marks:
                    name = sent_marks.pop(0)
            heard = playout.mark_played(name)
            if heard is not None:
                assert heard.heard_ms >= heard_until.get(heard.item_id, 0)
                assert heard.heard_ms <= sent_until[heard.item_id]
                heard_until[heard.item_id] = heard.heard_ms
        elif op == "pause":
            if playout.pause():
                sent_marks.clear()  # Twilio echoes them after the clear: none counts
        elif op == "resume":
            playout.resume()
        elif op == "drop":
            playout.drop(response_id=f"r{int(a)}")
    assert playout.queued_ms >= 0
    assert playout.unheard_ms >= 0
