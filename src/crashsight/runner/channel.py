"""The runner's end of the private channel: numbered frames written to an inherited socket.

The supervisor creates a socketpair, keeps one end and passes the other to the child as an inherited
file descriptor whose number is in ``CRASHSIGHT_CHANNEL_FD``. Stdout and stderr stay the user's.

Only the process that opened the channel writes to it. The variable is removed from ``os.environ``
once read and the descriptor is made non-inheritable, so programs the worker starts do not write
into (or mistake another file for) the channel; a forked child drops its copy at fork time, so it
neither interleaves frames with its parent nor keeps the channel open after the runner dies.

A second socketpair, the lifeline (``CRASHSIGHT_LIFELINE_FD``), runs the other way: the supervisor
writes to it only to ask for the stacks before a stop, and closes its end only once the runner is
reaped, so end-of-file on the runner's end means the supervisor is gone
(`crashsight.runner.orphan`). It is not the channel because a thread asleep in a read of the
channel's socket is woken by the kernel each time the supervisor's reading frees room in that
socket (about once per 14 events of 100 bytes, counted from ``/proc``), and each wake-up takes a
CPU from the supervisor; nothing but a request or the supervisor's death wakes a reader of the
lifeline.

The channel is the C socket type (``_socket``), as `crashsight.runner.stackdump` uses ``_signal``:
the ``socket`` module's Python wrapper loads selectors, enum and array (about 4 ms of every
worker's start, measured with ``-X importtime``) for nothing a channel uses.
"""

from __future__ import annotations

import _socket  # the C socket type: see the module docstring
import _thread  # not threading, which loads functools and collections: see api.task
import os
from stat import S_ISSOCK  # loaded by os already

from ..errors import ChannelBrokenError, ChannelClosedError, FrameTooLargeError
from ..framing import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_SIZE,
    encode_frame,
    encode_json_frame,
    frame_payload,
)
from ..jsontext import quote
from .modeljson import model_json

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py
if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..protocol import Message

__all__ = [
    "ANCESTOR_RUNNERS_ENV",
    "BOOTSTRAP_ENV",
    "CHANNEL_FD_ENV",
    "CHANNEL_OWNER_ENV",
    "LIFELINE_FD_ENV",
    "MAX_FRAME_ENV",
    "NO_SIGPIPE",
    "RUNNER_ID_ENV",
    "START_GATE_ENV",
    "Channel",
    "open_from_environment",
]

#: Names the inherited descriptor of the runner's end of the channel.
CHANNEL_FD_ENV = "CRASHSIGHT_CHANNEL_FD"
#: Names the inherited descriptor of the runner's end of the lifeline (see the module docstring).
LIFELINE_FD_ENV = "CRASHSIGHT_LIFELINE_FD"
#: The supervisor's maximum frame size, so the runner can refuse oversize events itself.
MAX_FRAME_ENV = "CRASHSIGHT_MAX_FRAME"
#: Set on every runner and inherited by everything it starts: the supervisor finds escaped
#: descendants (new sessions, re-parented orphans) by this marker, the way Jenkins uses BUILD_ID.
RUNNER_ID_ENV = "CRASHSIGHT_RUNNER_ID"
#: The runner ids of every supervisor above this one, space-separated, when a runner starts a
#: supervisor of its own (a nested ``crashsight run``): the inner supervisor sets its own
#: ``RUNNER_ID_ENV`` and appends the outer id here, so the outer one still finds its descendants.
ANCESTOR_RUNNERS_ENV = "CRASHSIGHT_ANCESTOR_RUNNERS"
#: A descriptor the runner reads one byte from before it runs any worker code: the supervisor
#: writes it once the runner is in its cgroup (`crashsight.runner.gate`). The exec shim reads it
#: too, by this same name.
START_GATE_ENV = "CRASHSIGHT_START_GATE"

#: The pid of the process that may open the channel, when known before it starts (the exec shim
#: sets it to its own pid, which the program keeps across execve). Descendants that inherit the
#: descriptor, such as the python children of a shell runner, leave the channel alone.
CHANNEL_OWNER_ENV = "CRASHSIGHT_CHANNEL_OWNER"

#: Set by the supervisor for bootstrap runners, which open the channel themselves: the ``.pth``
#: hook for plain Python programs stands aside.
BOOTSTRAP_ENV = "CRASHSIGHT_BOOTSTRAP"

#: Send flags that keep a closed peer from raising SIGPIPE (macOS has no such flag).
NO_SIGPIPE = getattr(_socket, "MSG_NOSIGNAL", 0)


class Channel:
    """Writes numbered messages to the supervisor; safe to use from several threads.

    Args:
        sock: The runner's end of the socketpair.
        max_frame_bytes: Frames larger than this are refused with `FrameTooLargeError`.
        lifeline: The runner's end of the lifeline, when the supervisor gave one.
    """

    def __init__(
        self,
        sock: _socket.socket,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        lifeline: _socket.socket | None = None,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._sock: _socket.socket | None = sock
        self._lock = _thread.allocate_lock()
        self._seq = 0
        self._broken: ChannelBrokenError | None = None
        self._lifeline = lifeline
        #: The lifeline's (device, inode): a descriptor number the program closed behind our back
        #: and reused for a file of its own must not answer for the lifeline.
        self._lifeline_identity = None if lifeline is None else _identity(lifeline.fileno())

    @property
    def usable(self) -> bool:
        """Whether a `send` could still succeed."""
        return self._sock is not None and self._broken is None

    def fileno(self) -> int:
        """The descriptor of the runner's end, or -1 once closed."""
        return -1 if self._sock is None else self._sock.fileno()

    def lifeline_fileno(self) -> int:
        """The descriptor of the runner's end of the lifeline, or -1 without one."""
        return -1 if self._lifeline is None else self._lifeline.fileno()

    def send(self, message: Message) -> None:
        """Number ``message``, frame it and write it whole.

        Raises:
            ChannelClosedError: This process closed the channel.
            ChannelBrokenError: The supervisor's end is gone.
            FrameTooLargeError: The frame exceeds ``max_frame_bytes``; nothing was sent.
        """
        with self._lock:
            message.seq = self._seq
            self._write(encode_frame(message), message.kind)

    def send_fields(self, fields: dict[str, object]) -> None:
        """Like `send`, for a message given as JSON fields (see `encode_json_frame`)."""
        with self._lock:
            self._write(encode_json_frame({**fields, "seq": self._seq}), str(fields["kind"]))

    def send_user_event(self, event: BaseModel) -> None:
        """Send a user's model as a `UserEvent` frame, from the model's own JSON serialisation."""
        cls = type(event)
        name = _json_names.get(cls)
        if name is None:
            name = _json_names[cls] = quote(cls.__name__).encode()
        data = model_json(event)
        with self._lock:
            payload = b'{"kind":"user","seq":%d,"name":%s,"data":%s}' % (self._seq, name, data)
            self._write(frame_payload(payload), "user")

    def _write(self, frame: bytes, kind: str) -> None:
        """Write one numbered frame whole; the caller holds the lock."""
        sock = self._sock
        if sock is None or self._broken is not None:
            sock = self._checked_socket()
        payload_size = len(frame) - HEADER_SIZE
        if payload_size > self.max_frame_bytes:
            raise FrameTooLargeError(
                f"a {kind!r} event encodes to {payload_size} bytes, over the channel's "
                f"{self.max_frame_bytes}-byte frame limit; nothing was sent"
            )
        try:
            sock.sendall(frame, NO_SIGPIPE)
        except OSError as exc:
            self._broken = ChannelBrokenError(
                f"the supervisor's end of the channel is gone ({exc.strerror or exc}); "
                "the supervisor died or closed it"
            )
            raise self._broken from exc
        self._seq += 1

    def close(self) -> None:
        """Close this end; the supervisor sees end-of-stream once every copy is closed.

        The lifeline stays open: the supervisor's death still stops the runner's group.
        """
        with self._lock:
            sock, self._sock = self._sock, None
            if sock is not None:
                _close_quietly(sock)

    def forget(self) -> None:
        """Drop this process's copies without locking: used in a freshly forked child only."""
        sock, self._sock = self._sock, None
        lifeline, self._lifeline = self._lifeline, None
        self._lock = _thread.allocate_lock()
        for end in (sock, lifeline):
            if end is not None:
                _close_quietly(end)

    def intact(self) -> bool:
        """Whether the lifeline's descriptor is still the lifeline's socket.

        A program may close it behind crashsight's back (a daemonising library closes every
        descriptor) and get the number back for a file of its own, which crashsight must then
        neither read nor take for the lifeline.
        """
        return self._intact_lifeline() is not None

    def drain_lifeline(self) -> tuple[bytes, bool]:
        """Read the lifeline without waiting: the requests nobody has read yet, and whether the
        supervisor's end is closed.

        The supervisor closes it only after reaping this process, so end-of-file means it died.
        The requests are read, not peeked at, because they would hide the end-of-file; whoever
        drains them answers them. Anything other than end-of-file is not an answer: no lifeline,
        or a descriptor that is no longer its socket.
        """
        lifeline = self._intact_lifeline()
        if lifeline is None:
            return b"", False
        unread = b""
        try:
            while chunk := lifeline.recv(4096, _socket.MSG_DONTWAIT):
                unread += chunk
        except OSError:
            return unread, False  # nothing more to read (the usual case), or the descriptor is gone
        return unread, True

    def _intact_lifeline(self) -> _socket.socket | None:
        lifeline = self._lifeline
        if lifeline is None or _identity(lifeline.fileno()) != self._lifeline_identity:
            return None
        return lifeline

    def _checked_socket(self) -> _socket.socket:
        if self._broken is not None:
            raise self._broken
        if self._sock is None:
            raise ChannelClosedError("the channel was closed by this process; events can't be sent")
        return self._sock


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        stat = os.fstat(fd)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


#: The JSON strings of the user's event class names, by class.
_json_names: dict[type, bytes] = {}


def _close_quietly(sock: _socket.socket) -> None:
    """Close our end; the worker may already have closed the descriptor behind our back."""
    try:
        sock.close()
    except OSError:
        sock.detach()


#: Bytes the kernel may hold for the supervisor before a send blocks (capped by the system's
#: ``net.core.wmem_max``). Every blocked send costs the worker a sleep and a wake-up; the default
#: (about 200 KiB) fills with twenty 10-KiB events while the supervisor is busy with the last batch.
_SEND_BUFFER_BYTES = 512 << 10


def _widen_send_buffer(sock: _socket.socket) -> None:
    try:  # noqa: SIM105 - contextlib is not loaded in every worker
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, _SEND_BUFFER_BYTES)
    except OSError:
        pass  # a smaller buffer only costs speed


def open_from_environment() -> Channel | None:
    """Open the channel named by ``CRASHSIGHT_CHANNEL_FD``, or return None outside a supervisor.

    The variables are consumed: they are removed from ``os.environ`` so that child programs, which
    do not inherit the descriptors, never try to open them.
    """
    raw = os.environ.pop(CHANNEL_FD_ENV, None)
    raw_lifeline = os.environ.pop(LIFELINE_FD_ENV, None)
    owner = os.environ.pop(CHANNEL_OWNER_ENV, None)
    if not raw:
        return None
    if owner and owner != str(os.getpid()):
        # An inherited copy in a descendant of the runner (a shell's python child): only the
        # runner itself may write, or frames from several writers would interleave.
        for number in (raw, raw_lifeline):
            _close_number(number)
        return None
    sock = _adopt(raw)
    if sock is None:
        _close_number(raw_lifeline)
        return None
    _widen_send_buffer(sock)
    try:
        limit = int(os.environ.get(MAX_FRAME_ENV, DEFAULT_MAX_FRAME_BYTES))
    except ValueError:
        limit = DEFAULT_MAX_FRAME_BYTES
    return Channel(sock, limit, _adopt(raw_lifeline))


def _adopt(raw: str | None) -> _socket.socket | None:
    """The inherited socket numbered ``raw``, blocking and no longer passed on to programs."""
    if not raw:
        return None
    try:
        sock = _socket.socket(fileno=int(raw))
    except (ValueError, OSError):
        return None  # not a number, not open, or not a socket: nothing of ours
    os.set_inheritable(sock.fileno(), False)
    sock.setblocking(True)
    return sock


def _close_number(raw: str | None) -> None:
    """Close the inherited socket numbered ``raw``; any other file there is not crashsight's (the
    ``.pth`` file the interpreter is reading, say) and stays open."""
    try:
        fd = int(raw or "")
        if S_ISSOCK(os.fstat(fd).st_mode):
            os.close(fd)
    except (ValueError, OSError):
        pass
