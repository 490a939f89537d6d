"""The frame codec: round trips, resynchronisation after garbage, bounded memory, no exceptions."""

from __future__ import annotations

import itertools
import json
import random
import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, JsonValue, ValidationError

from crashsight.errors import ProtocolError
from crashsight.framing import (
    HEADER_SIZE,
    MAGIC,
    FrameDecoder,
    UserModelEvent,
    encode_frame,
)
from crashsight.protocol import (
    ExceptionInfo,
    FrameInfo,
    Heartbeat,
    Message,
    Progress,
    Ready,
    RunnerTerminationError,
    TaskFinished,
    TaskStarted,
    UserEvent,
)

if TYPE_CHECKING:
    from crashsight.framing import Decoded

#: A decoded item with errors reduced to ``(problem, offset)``, so results compare with ``==``.
Outcome = Message | tuple[str, int]


def _exception_chain() -> RunnerTerminationError:
    frame = FrameInfo(file="/app/job.py", line=12, function="run", code="parse(row)")
    group = ExceptionInfo(
        type="ExceptionGroup",
        module="builtins",
        message="2 failures",
        exceptions=[
            ExceptionInfo(type="KeyError", module="builtins", message="'id'"),
            ExceptionInfo(
                type="ExceptionGroup",
                module="builtins",
                exceptions=[ExceptionInfo(type="OSError", module="builtins", errno=28)],
            ),
        ],
    )
    return RunnerTerminationError(
        phase="target",
        type="JSONDecodeError",
        module="json.decoder",
        mro_names=["json.decoder.JSONDecodeError", "ValueError", "Exception", "BaseException"],
        message="Expecting value: line 1 column 1 (char 0)",
        frames=[frame, FrameInfo(file="<frozen>", function="<module>")],
        notes=["while reading shard 3"],
        cause=ExceptionInfo(type="UnicodeError", module="builtins", context=group),
        context=ExceptionInfo(type="TimeoutError", module="builtins", errno=110),
    )


SAMPLES: list[Message] = [
    Ready(pid=4242, python="3.11.9", target="pkg.jobs:main"),
    Heartbeat(seq=7),
    Progress(message="halfway — ünïcödé ✓", fraction=0.5),
    TaskStarted(task_id="shard-3"),
    TaskFinished(task_id="shard-3", ok=False, error="ValueError: boom"),
    UserEvent(name="Metrics", data={"rows": [1, 2.5, None, True, {"": "empty key"}], "n": -1}),
    UserEvent(name="Bare"),
    _exception_chain(),
]
SAMPLE_IDS = [f"{m.kind}-{i}" for i, m in enumerate(SAMPLES)]

# Strategies: every message kind, with recursive exception chains and arbitrary JSON data.
_texts = st.text(max_size=12)
_seqs = st.integers(min_value=0, max_value=2**63 - 1)
_json_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=8,
)
_frame_infos = st.builds(
    FrameInfo,
    file=_texts,
    line=st.none() | st.integers(0),
    function=_texts,
    code=st.none() | _texts,
)
_exception_infos: st.SearchStrategy[ExceptionInfo] = st.recursive(
    st.builds(
        ExceptionInfo,
        type=_texts,
        module=_texts,
        message=_texts,
        errno=st.none() | st.integers(0, 200),
        frames=st.lists(_frame_infos, max_size=2),
        notes=st.lists(_texts, max_size=2),
    ),
    lambda inner: st.builds(
        ExceptionInfo,
        type=_texts,
        module=_texts,
        cause=st.none() | inner,
        context=st.none() | inner,
        exceptions=st.lists(inner, max_size=2),
    ),
    max_leaves=5,
)
_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Ready, seq=_seqs, pid=st.integers(), python=_texts, target=st.none() | _texts),
    st.builds(Heartbeat, seq=_seqs),
    st.builds(Progress, seq=_seqs, message=_texts, fraction=st.none() | st.floats(0, 1)),
    st.builds(TaskStarted, seq=_seqs, task_id=_texts),
    st.builds(TaskFinished, seq=_seqs, task_id=_texts, ok=st.booleans(), error=st.none() | _texts),
    st.builds(UserEvent, seq=_seqs, name=_texts, data=_json_values),
    st.builds(
        RunnerTerminationError,
        seq=_seqs,
        phase=st.sampled_from(["bootstrap", "target"]),
        type=_texts,
        module=_texts,
        cause=st.none() | _exception_infos,
        exceptions=st.lists(_exception_infos, max_size=2),
    ),
)
#: Garbage that does not contain a whole frame header, biased towards pieces of one.
_garbage = (
    st.lists(st.sampled_from([b"\xff", b"\xffC", b"\xffCS", b"\x01", b"C", b"\x00"]) | st.binary())
    .map(b"".join)
    .filter(lambda garbage: MAGIC not in garbage)
)
_PROPERTY = settings(max_examples=150)


def _decode(chunks: Iterable[bytes], decoder: FrameDecoder | None = None) -> list[Outcome]:
    """Feed every chunk, close, and return the outcomes in stream order."""
    decoder = decoder or FrameDecoder()
    items: list[Decoded] = []
    for chunk in chunks:
        items += decoder.feed(chunk)
    items += decoder.close()
    assert not any(isinstance(i, UserModelEvent) for i in items), "no user models were given"
    return [
        (i.problem, i.offset) if isinstance(i, ProtocolError) else i
        for i in items
        if not isinstance(i, UserModelEvent)
    ]


def _errors(stream: bytes, decoder: FrameDecoder | None = None) -> list[ProtocolError]:
    """Decode ``stream`` in one piece and return only the protocol errors."""
    decoder = decoder or FrameDecoder()
    items = [*decoder.feed(stream), *decoder.close()]
    return [i for i in items if isinstance(i, ProtocolError)]


def _split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


def _bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def _raw_frame(payload: bytes) -> bytes:
    return struct.pack(">4sI", MAGIC, len(payload)) + payload


def _stream(parts: Sequence[bytes | Message]) -> tuple[bytes, list[Outcome]]:
    """Build a stream of frames and garbage, and what a correct decoder makes of it.

    Each contiguous run of garbage (which must not contain `MAGIC`) is one ``garbage`` error at
    the run's offset; a trailing run that is itself the start of a header reads as ``truncated``.
    """
    stream = bytearray()
    expected: list[Outcome] = []
    run = bytearray()

    def end_run(problem: str) -> None:
        if run:
            expected.append((problem, len(stream)))
            stream.extend(run)
            run.clear()

    for part in parts:
        if isinstance(part, bytes):
            run += part
        else:
            end_run("garbage")
            stream += encode_frame(part)
            expected.append(part)
    end_run("truncated" if MAGIC.startswith(run) else "garbage")
    return bytes(stream), expected


@pytest.mark.parametrize("message", SAMPLES, ids=SAMPLE_IDS)
def test_every_kind_round_trips(message: Message) -> None:
    """Each message kind, nested exception chains and groups included, decodes to an equal value."""
    frame = encode_frame(message)
    assert frame[:4] == MAGIC
    assert int.from_bytes(frame[4:HEADER_SIZE], "big") == len(frame) - HEADER_SIZE
    assert _decode([frame]) == [message]


def test_payload_never_contains_the_resync_byte() -> None:
    """Payloads are UTF-8 JSON, so 0xFF marks frame starts only, even for non-ASCII text."""
    for message in SAMPLES:
        assert 0xFF not in encode_frame(message)[HEADER_SIZE:]


@pytest.fixture(scope="module")
def mixed_stream() -> tuple[bytes, list[Outcome]]:
    """Every sample kind, with garbage runs between, before and after the frames."""
    parts: list[bytes | Message] = [b"boot noise\n", *SAMPLES[:4], b"\xff\xffCS", *SAMPLES[4:]]
    return _stream([*parts, b"tail \xff"])


def test_split_at_every_byte_boundary_decodes_identically(
    mixed_stream: tuple[bytes, list[Outcome]],
) -> None:
    """Cutting the stream into two chunks at any offset changes nothing in the outcome."""
    stream, expected = mixed_stream
    for cut in range(len(stream) + 1):
        assert _decode(_split(stream, [cut])) == expected, f"split at {cut}"


def test_byte_by_byte_and_random_chunks_decode_identically(
    mixed_stream: tuple[bytes, list[Outcome]],
) -> None:
    """Feeding one byte at a time, or in random chunks, gives the same outcome as one chunk."""
    stream, expected = mixed_stream
    assert _decode([stream]) == expected
    assert _decode(_bytewise(stream)) == expected
    rng = random.Random(20240611)
    for _ in range(50):
        cuts = rng.sample(range(len(stream) + 1), rng.randint(1, 40))
        assert _decode(_split(stream, cuts)) == expected


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"print('debug')\n", id="text"),
        pytest.param(b"\xff", id="lone-ff"),
        pytest.param(b"\xff\xff\xff", id="ff-run"),
        pytest.param(b"abc\xffCS", id="ends-in-partial-magic"),
        pytest.param(b"\xffCS\x02\x00\x00\x00\x03abc", id="wrong-version-header"),
    ],
)
@pytest.mark.parametrize("where", ["before", "between", "after"])
def test_garbage_run_is_reported_once_and_frames_survive(garbage: bytes, where: str) -> None:
    """A run of garbage yields one error at its offset, however it is fed, and no frame is lost."""
    first, second = SAMPLES[0], SAMPLES[1]
    parts: dict[str, list[bytes | Message]] = {
        "before": [garbage, first, second],
        "between": [first, garbage, second],
        "after": [first, second, garbage],
    }
    stream, expected = _stream(parts[where])
    assert _decode([stream]) == expected
    assert _decode(_bytewise(stream)) == expected
    [error] = _errors(stream)
    if error.problem == "garbage":
        assert f"skipped {len(garbage)} bytes" in error.detail
    else:  # only a trailing piece of a header reads as a cut-off frame
        assert (where, garbage) == ("after", b"\xff")


def test_separate_garbage_runs_are_reported_separately() -> None:
    """Three runs of garbage around two frames give three errors, each with its own offset."""
    stream, expected = _stream([b"aa", SAMPLES[0], b"\xffbb", SAMPLES[1], b"cc"])
    assert [e for e in expected if isinstance(e, tuple)] == [
        ("garbage", 0),
        ("garbage", 2 + len(encode_frame(SAMPLES[0]))),
        ("garbage", len(stream) - 2),
    ]
    assert _decode(_bytewise(stream)) == expected


def test_oversize_frame_is_skipped_across_many_chunks() -> None:
    """A frame over the limit is one ``oversize`` error; its payload is skipped unbuffered."""
    limit, chunk = 64, 7
    oversize = encode_frame(Progress(message="x" * 1000))
    stream = oversize + encode_frame(Heartbeat(seq=1))
    decoder = FrameDecoder(max_frame_bytes=limit)
    items: list[Decoded] = []
    for piece in _split(stream, range(chunk, len(stream), chunk)):
        items += decoder.feed(piece)
        assert len(decoder._buf) < HEADER_SIZE + limit + chunk
    items += decoder.close()
    [error, heartbeat] = items
    assert isinstance(error, ProtocolError)
    assert (error.problem, error.offset) == ("oversize", 0)
    assert f"declares {len(oversize) - HEADER_SIZE} bytes" in error.detail
    assert heartbeat == Heartbeat(seq=1)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20], ids=["bytewise", "small reads", "one read"])
def test_oversize_frame_between_whole_frames_is_reported_not_decoded(chunk: int) -> None:
    """An oversize frame that arrives whole, amid whole frames, is still refused.

    With one read, every frame is complete in the buffer: the limit holds there too, not only
    for a frame that arrives in pieces (the other oversize tests).
    """
    limit = 64
    oversize = encode_frame(Progress(message="x" * 100))
    stream = encode_frame(Heartbeat(seq=0)) + oversize + encode_frame(Heartbeat(seq=2))
    items = _decode(_split(stream, range(chunk, len(stream), chunk)), FrameDecoder(limit))
    assert items == [
        Heartbeat(seq=0),
        ("oversize", len(encode_frame(Heartbeat(seq=0)))),
        Heartbeat(seq=2),
    ]


def test_frame_exactly_at_the_limit_is_accepted() -> None:
    """The limit is inclusive: a payload of exactly ``max_frame_bytes`` decodes."""
    frame = encode_frame(SAMPLES[2])
    decoder = FrameDecoder(max_frame_bytes=len(frame) - HEADER_SIZE)
    assert _decode([frame], decoder) == [SAMPLES[2]]


def test_stream_ending_inside_an_oversize_frame_is_truncated() -> None:
    """Closing while an oversize payload is still being skipped reports a truncated frame."""
    oversize = encode_frame(Progress(message="x" * 1000))
    errors = _errors(oversize[:-10], FrameDecoder(max_frame_bytes=64))
    assert [e.problem for e in errors] == ["oversize", "truncated"]
    assert "10 bytes short of an oversize frame" in errors[1].detail


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc3\x28", id="bad-utf8"),
        pytest.param(b"[1, 2, 3]", id="not-an-object"),
        pytest.param(b'{"kind": "heartbeat", "bogus": 1}', id="unknown-field"),
        pytest.param(b'{"kind": "progress"}', id="missing-field"),
        pytest.param(b'{"kind": "launch_missiles"}', id="unknown-kind"),
    ],
)
def test_invalid_payload_is_reported_with_the_validation_error(payload: bytes) -> None:
    """A well-framed payload that is not a valid message is ``invalid``, caused by pydantic."""
    lead = encode_frame(SAMPLES[0])
    stream = lead + _raw_frame(payload) + encode_frame(SAMPLES[1])
    assert _decode([stream]) == [SAMPLES[0], ("invalid", len(lead)), SAMPLES[1]]
    [error] = _errors(stream)
    assert isinstance(error.__cause__, ValidationError)
    assert f"frame of {len(payload)} bytes failed validation" in error.detail


@pytest.mark.parametrize("kept", [1, 3, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 1, -1])
def test_close_mid_frame_reports_truncation(kept: int) -> None:
    """End of stream inside a header or payload is one ``truncated`` error at the frame start."""
    lead = encode_frame(SAMPLES[0])
    cut = encode_frame(SAMPLES[3])[:kept]
    assert _decode([lead + cut]) == [SAMPLES[0], ("truncated", len(lead))]


def test_memory_stays_bounded_on_random_bytes() -> None:
    """50 MB of random bytes in 64 KiB chunks never grow the buffer past a frame plus a chunk."""
    chunk, total = 64 * 1024, 50 * 1000 * 1000
    decoder = FrameDecoder()
    rng = random.Random(0)
    fed = 0
    while fed < total:
        items = decoder.feed(rng.randbytes(chunk))
        fed += chunk
        assert all(isinstance(item, ProtocolError) for item in items)
        assert len(decoder._buf) < decoder.max_frame_bytes + chunk
    assert all(isinstance(item, ProtocolError) for item in decoder.close())
    assert (decoder._offset, len(decoder._buf)) == (fed, 0)


@_PROPERTY
@given(messages=st.lists(_messages, max_size=6), data=st.data())
def test_property_messages_round_trip_in_any_chunking(
    messages: list[Message], data: st.DataObject
) -> None:
    """Any list of messages, encoded and fed in arbitrary chunks, decodes to an equal list."""
    stream = b"".join(encode_frame(m) for m in messages)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert _decode(_split(stream, cuts)) == messages


@_PROPERTY
@given(
    pairs=st.lists(st.tuples(_garbage, _messages), max_size=5),
    trailing=_garbage,
    data=st.data(),
)
def test_property_garbage_never_swallows_the_next_frame(
    pairs: list[tuple[bytes, Message]], trailing: bytes, data: st.DataObject
) -> None:
    """Frames right after garbage (with no whole header in it) all decode, in any chunking."""
    stream, expected = _stream([*(part for pair in pairs for part in pair), trailing])
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert _decode(_split(stream, cuts)) == expected


@settings(max_examples=150)
@given(
    chunks=st.lists(
        st.binary(max_size=2048) | _messages.map(encode_frame) | st.just(MAGIC), max_size=12
    ),
    limit=st.integers(0, 4096),
)
def test_property_arbitrary_bytes_never_raise_and_always_terminate(
    chunks: list[bytes], limit: int
) -> None:
    """Any input decodes within the deadline, without raising, accounting for every byte."""
    decoder = FrameDecoder(max_frame_bytes=limit)
    fed = 0
    for chunk in chunks:
        items = decoder.feed(chunk)
        fed += len(chunk)
        assert all(isinstance(i, ProtocolError | BaseModel) for i in items)
        assert decoder._offset + len(decoder._buf) == fed
        assert len(decoder._buf) < HEADER_SIZE + limit
    assert all(isinstance(e, ProtocolError) for e in decoder.close())
    assert (decoder._offset, len(decoder._buf)) == (fed, 0)


class _Metric(BaseModel):
    step: int
    tags: list[str] = []


class _Note(BaseModel):
    text: str


_USER_MODELS: dict[str, type[BaseModel]] = {"_Metric": _Metric, "_Note": _Note}
_user_frames = st.builds(
    UserEvent,
    seq=_seqs,
    name=st.sampled_from(["_Metric", "_Note", "Other", 'quo"te']),
    data=_json_values
    | st.builds(dict, step=st.integers(), tags=st.lists(_texts, max_size=2))
    | st.builds(dict, text=_texts),
).map(
    lambda event: _raw_frame(
        b'{"kind":"user","seq":%d,"name":%s,"data":%s}'
        % (
            event.seq,
            json.dumps(event.name, ensure_ascii=False).encode(),
            json.dumps(event.data, ensure_ascii=False).encode(),
        )
    )
)


@_PROPERTY
@given(frames=st.lists(_user_frames | _messages.map(encode_frame), max_size=6), data=st.data())
def test_property_user_models_validate_once_with_the_same_outcome(
    frames: list[bytes], data: st.DataObject
) -> None:
    """The user-model fast path gives what the full path plus the model's validation gives.

    A user event whose name is a registered model and whose data validates comes back as that
    model with its sequence number; every other frame decodes exactly as without user models.
    """
    stream = b"".join(frames)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    fast = FrameDecoder(user_models=_USER_MODELS)
    got = [*(i for chunk in _split(stream, cuts) for i in fast.feed(chunk)), *fast.close()]
    expected: list[object] = []
    for item in _decode([stream]):
        if isinstance(item, UserEvent) and item.name in _USER_MODELS:
            try:
                value = _USER_MODELS[item.name].model_validate_json(json.dumps(item.data))
            except ValidationError:
                pass
            else:
                expected.append(("model", item.seq, value))
                continue
        expected.append(item)
    assert [
        ("model", i.seq, i.value)
        if isinstance(i, UserModelEvent)
        else (i.problem, i.offset)
        if isinstance(i, ProtocolError)
        else i
        for i in got
    ] == expected
