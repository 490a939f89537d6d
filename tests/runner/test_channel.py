"""The runner's end of the channel: numbering, whole frames, closed vs broken, the environment."""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel

from crashsight.errors import (
    ChannelBrokenError,
    ChannelClosedError,
    FrameTooLargeError,
    ProtocolError,
)
from crashsight.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_SIZE,
    FrameDecoder,
    UserModelEvent,
    encode_frame,
)
from crashsight.protocol import Heartbeat, Message, Progress, Ready, UserEvent
from crashsight.runner.channel import (
    CHANNEL_FD_ENV,
    CHANNEL_OWNER_ENV,
    LIFELINE_FD_ENV,
    MAX_FRAME_ENV,
    Channel,
    open_from_environment,
)
from crashsight.runner.stackdump import DUMP_REQUEST

if TYPE_CHECKING:
    from crashsight.framing import Decoded

_TIMEOUT = 10.0


def _received(peer: socket.socket) -> list[Message]:
    """Read the supervisor's end to end-of-stream and decode it, insisting on clean frames."""
    peer.settimeout(_TIMEOUT)
    decoder = FrameDecoder()
    items: list[Decoded] = []
    while data := peer.recv(65536):
        items += decoder.feed(data)
    items += decoder.close()
    messages = [item for item in items if not isinstance(item, ProtocolError | UserModelEvent)]
    assert messages == items, "the channel carried something that is not a clean frame"
    return messages


@pytest.fixture
def peer_and_reader() -> Iterator[tuple[socket.socket, socket.socket, Future[list[Message]]]]:
    """A socketpair: the runner's end, the supervisor's end, and a thread draining the latter."""
    runner_end, supervisor_end = socket.socketpair()
    # Closing the runner's end first gives the reader its end-of-stream before the pool joins it.
    with supervisor_end, ThreadPoolExecutor(1) as pool, runner_end:
        yield runner_end, supervisor_end, pool.submit(_received, supervisor_end)


@pytest.fixture
def channel_and_reader(
    peer_and_reader: tuple[socket.socket, socket.socket, Future[list[Message]]],
) -> Iterator[tuple[Channel, Future[list[Message]]]]:
    """A `Channel` on the runner's end; close it to let the reader see end-of-stream."""
    runner_end, _, reader = peer_and_reader
    channel = Channel(runner_end)
    yield channel, reader
    channel.close()


def test_messages_are_numbered_from_zero(
    channel_and_reader: tuple[Channel, Future[list[Message]]],
) -> None:
    """Sends get consecutive ``seq`` numbers 0, 1, 2, ..., whatever the messages carried before."""
    channel, reader = channel_and_reader
    for _ in range(3):
        channel.send(Heartbeat(seq=99))
    channel.close()
    assert reader.result(_TIMEOUT) == [Heartbeat(seq=0), Heartbeat(seq=1), Heartbeat(seq=2)]


def test_send_after_close_raises_closed(
    channel_and_reader: tuple[Channel, Future[list[Message]]],
) -> None:
    """Using the channel after closing it is the caller's mistake: `ChannelClosedError`."""
    channel, reader = channel_and_reader
    channel.close()
    channel.close()  # idempotent
    assert (channel.usable, channel.fileno()) == (False, -1)
    with pytest.raises(ChannelClosedError, match="closed by this process"):
        channel.send(Heartbeat())
    assert reader.result(_TIMEOUT) == []


def test_send_after_peer_closed_raises_broken_and_stays_broken() -> None:
    """A vanished supervisor is `ChannelBrokenError`, with the OS error as cause, every time."""
    runner_end, supervisor_end = socket.socketpair()
    supervisor_end.close()
    channel = Channel(runner_end)
    with pytest.raises(
        ChannelBrokenError, match="supervisor's end of the channel is gone"
    ) as first:
        channel.send(Heartbeat())
    assert isinstance(first.value.__cause__, OSError)
    assert not channel.usable
    with pytest.raises(ChannelBrokenError) as second:
        channel.send(Heartbeat())
    assert second.value is first.value
    channel.close()
    with pytest.raises(ChannelBrokenError):
        channel.send(Heartbeat())


def test_draining_the_lifeline_finds_the_supervisors_end() -> None:
    """A live supervisor is not gone, whatever the channel does; a closed lifeline is, with the
    requests still unread handed over (a peek would not see the end-of-file behind them); this
    process's own close of the channel changes nothing; without a lifeline there is no answer."""
    runner_end, supervisor_end = socket.socketpair()
    runner_lifeline, supervisor_lifeline = socket.socketpair()
    channel = Channel(runner_end, lifeline=runner_lifeline)
    with supervisor_end:
        channel.send(Heartbeat())  # unread when the supervisor's end closes: a reset, not EOF
    assert channel.drain_lifeline() == (b"", False)
    supervisor_lifeline.sendall(DUMP_REQUEST)
    assert channel.drain_lifeline() == (DUMP_REQUEST, False)
    supervisor_lifeline.sendall(DUMP_REQUEST)
    supervisor_lifeline.close()
    channel.close()
    assert channel.drain_lifeline() == (DUMP_REQUEST, True)
    runner_lifeline.close()
    alone, peer = socket.socketpair()
    with alone, peer:
        peer.close()
        assert Channel(alone).drain_lifeline() == (b"", False)


def test_draining_ignores_a_reused_descriptor_number() -> None:
    """The program closed the lifeline's descriptor behind its back and the number came back as
    another socket whose peer is gone: that end-of-file says nothing about the supervisor."""
    runner_end, supervisor_end = socket.socketpair()
    runner_lifeline, supervisor_lifeline = socket.socketpair()
    channel = Channel(runner_end, lifeline=runner_lifeline)
    number = runner_lifeline.fileno()
    os.close(number)
    held: list[socket.socket] = []
    try:
        while not any(s.fileno() == number for s in held):
            held += socket.socketpair()
        reused = next(s for s in held if s.fileno() == number)
        peer = held[held.index(reused) ^ 1]  # its other end: socketpair() returns them together
        peer.close()
        assert reused.recv(1, socket.MSG_PEEK) == b""  # the reused number reads end-of-file
        assert not channel.intact()
        assert channel.drain_lifeline() == (b"", False)
    finally:
        runner_lifeline.detach()  # the number is `reused`'s now: closed below, not twice
        for s in (runner_end, supervisor_end, supervisor_lifeline, *held):
            s.close()


def test_too_large_frame_sends_nothing_and_keeps_the_number(
    peer_and_reader: tuple[socket.socket, socket.socket, Future[list[Message]]],
) -> None:
    """An oversize event raises `FrameTooLargeError`, writes no byte and uses up no ``seq``."""
    runner_end, _, reader = peer_and_reader
    fits = Progress(message="x" * 50)
    limit = len(encode_frame(fits)) - HEADER_SIZE
    channel = Channel(runner_end, max_frame_bytes=limit)
    with pytest.raises(FrameTooLargeError, match=f"'progress' event encodes to {limit + 1} bytes"):
        channel.send(Progress(message="x" * 51))
    channel.send(fits)
    channel.close()
    assert reader.result(_TIMEOUT) == [Progress(seq=0, message="x" * 50)]


def test_concurrent_senders_produce_whole_consecutive_frames(
    channel_and_reader: tuple[Channel, Future[list[Message]]],
) -> None:
    """8 threads x 500 sends give 4000 intact frames numbered 0..3999, each thread in order."""
    channel, reader = channel_and_reader
    threads, per_thread = 8, 500
    start = threading.Barrier(threads)

    def sender(worker: int) -> None:
        start.wait(_TIMEOUT)
        for i in range(per_thread):
            channel.send(Progress(message=f"{worker}:{i}", fraction=i / per_thread))

    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(sender, w) for w in range(threads)]:
            done.result(_TIMEOUT)
    channel.close()
    messages = reader.result(_TIMEOUT)
    assert [m.seq for m in messages] == list(range(threads * per_thread))
    by_worker: dict[str, list[int]] = {}
    for message in messages:
        assert isinstance(message, Progress)
        worker, i = message.message.split(":")
        by_worker.setdefault(worker, []).append(int(i))
    assert by_worker == {str(w): list(range(per_thread)) for w in range(threads)}


def _closed(number: int) -> bool:
    try:
        os.fstat(number)
    except OSError as exc:
        return exc.errno == errno.EBADF
    return False


def _handed_over(monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[int, socket.socket]:
    """A socketpair end handed over as a bare inheritable descriptor named by ``name``."""
    runner_end, supervisor_end = socket.socketpair()
    fd = runner_end.detach()
    os.set_inheritable(fd, True)
    monkeypatch.setenv(name, str(fd))
    return fd, supervisor_end


@pytest.fixture
def inheritable_fd(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, socket.socket]]:
    """The channel's end handed over in the environment, without a lifeline."""
    monkeypatch.delenv(LIFELINE_FD_ENV, raising=False)
    fd, supervisor_end = _handed_over(monkeypatch, CHANNEL_FD_ENV)
    with supervisor_end:
        yield fd, supervisor_end


@pytest.mark.parametrize(
    ("max_frame", "expected"),
    [
        pytest.param("4096", 4096, id="honoured"),
        pytest.param("lots", DEFAULT_MAX_FRAME_BYTES, id="garbage-ignored"),
        pytest.param(None, DEFAULT_MAX_FRAME_BYTES, id="unset"),
    ],
)
def test_open_from_environment_takes_over_the_descriptor(
    inheritable_fd: tuple[int, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
    max_frame: str | None,
    expected: int,
) -> None:
    """The variable is consumed, the fd made non-inheritable, and the frame limit honoured."""
    fd, supervisor_end = inheritable_fd
    if max_frame is None:
        monkeypatch.delenv(MAX_FRAME_ENV, raising=False)
    else:
        monkeypatch.setenv(MAX_FRAME_ENV, max_frame)
    channel = open_from_environment()
    assert channel is not None
    try:
        assert CHANNEL_FD_ENV not in os.environ
        assert not os.get_inheritable(fd)
        assert (channel.fileno(), channel.max_frame_bytes) == (fd, expected)
        assert channel.lifeline_fileno() == -1
        channel.send(Heartbeat())
    finally:
        channel.close()
    assert _received(supervisor_end) == [Heartbeat(seq=0)]


def test_open_from_environment_takes_over_the_lifeline(
    inheritable_fd: tuple[int, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifeline's variable is consumed and its descriptor kept from programs started later;
    closing the channel leaves it open, and a forked child's `forget` drops both."""
    fd, _ = inheritable_fd
    lifeline_fd, supervisor_lifeline = _handed_over(monkeypatch, LIFELINE_FD_ENV)
    channel = open_from_environment()
    assert channel is not None
    with supervisor_lifeline:
        assert LIFELINE_FD_ENV not in os.environ
        assert channel.lifeline_fileno() == lifeline_fd
        assert not os.get_inheritable(lifeline_fd)
        channel.close()
        assert channel.intact()
        assert not _closed(lifeline_fd)
        channel.forget()
        assert channel.lifeline_fileno() == -1
        assert _closed(fd)
        assert _closed(lifeline_fd)


def test_open_from_environment_leaves_a_descendant_out(
    inheritable_fd: tuple[int, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that is not the channel's owner (a shell runner's python child) closes its
    inherited copies of both ends and opens nothing."""
    fd, _ = inheritable_fd
    lifeline_fd, supervisor_lifeline = _handed_over(monkeypatch, LIFELINE_FD_ENV)
    monkeypatch.setenv(CHANNEL_OWNER_ENV, str(os.getppid()))
    with supervisor_lifeline:
        assert open_from_environment() is None
        assert _closed(fd)
        assert _closed(lifeline_fd)
        assert not {CHANNEL_FD_ENV, LIFELINE_FD_ENV, CHANNEL_OWNER_ENV} & set(os.environ)


def test_a_descendant_closes_only_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Numbers a descendant did not inherit may name its own files (the ``.pth`` file the
    interpreter is reading): only a socket is closed."""
    read_fd, write_fd = os.pipe()
    try:
        monkeypatch.setenv(CHANNEL_FD_ENV, str(read_fd))
        monkeypatch.setenv(LIFELINE_FD_ENV, str(write_fd))
        monkeypatch.setenv(CHANNEL_OWNER_ENV, str(os.getppid()))
        assert open_from_environment() is None
        assert not _closed(read_fd)
        assert not _closed(write_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="unset"),
        pytest.param("", id="empty"),
        pytest.param("three", id="not-a-number"),
        pytest.param("-1", id="negative"),
        pytest.param("2147483647", id="not-open"),
    ],
)
def test_open_from_environment_without_a_usable_descriptor(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    """Outside a supervisor, or with a value that names no socket, there is no channel."""
    if value is None:
        monkeypatch.delenv(CHANNEL_FD_ENV, raising=False)
    else:
        monkeypatch.setenv(CHANNEL_FD_ENV, value)
    assert open_from_environment() is None
    assert CHANNEL_FD_ENV not in os.environ


def test_open_from_environment_refuses_a_non_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """A descriptor that is not a socket (here a pipe) is not mistaken for the channel."""
    read_fd, write_fd = os.pipe()
    try:
        monkeypatch.setenv(CHANNEL_FD_ENV, str(write_fd))
        assert open_from_environment() is None
        os.fstat(write_fd)  # still open: the caller's descriptor was not taken over
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_fields_frame_validates_as_the_model_it_stands_for() -> None:
    """`Ready` is written without pydantic; the supervisor's decoder reads it as a real `Ready`."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        channel = Channel(theirs)
        channel.send_fields(
            {"kind": "ready", "pid": 42, "python": "3.11.7", "protocol": 1, "target": "m:f"}
        )
        channel.send(Heartbeat())
        decoded = FrameDecoder().feed(ours.recv(65536))
    assert decoded == [
        Ready(seq=0, pid=42, python="3.11.7", protocol=1, target="m:f"),
        Heartbeat(seq=1),
    ]


class Checkpoint(BaseModel):
    step: int
    note: str
    tags: list[str]


def test_user_event_frame_validates_as_user_event() -> None:
    """A user model is framed from its own JSON; the decoder reads the `UserEvent` it stands for."""
    event = Checkpoint(step=7, note='ünïcode "quoted" \\ and </script>', tags=["a", "b"])
    ours, theirs = socket.socketpair()
    with ours, theirs:
        channel = Channel(theirs)
        channel.send(Heartbeat())
        channel.send_user_event(event)
        decoded = FrameDecoder().feed(ours.recv(65536))
    assert decoded == [
        Heartbeat(seq=0),
        UserEvent(seq=1, name="Checkpoint", data=event.model_dump(mode="json")),
    ]
