"""Length-prefixed frames on the private channel, and a decoder that survives any byte stream.

A frame is an 8-byte header followed by a JSON payload::

    +------+------+------+------+----------------------+----------------------+
    | 0xFF | 'C'  | 'S'  | 0x01 | payload length (u32, big-endian) | payload (UTF-8 JSON) |
    +------+------+------+------+----------------------+----------------------+

The first byte, 0xFF, can never occur in UTF-8 text, so it never occurs inside a payload. After
garbage (a stray ``os.write`` to the channel fd, a half-written frame), the decoder therefore resyncs
at the next 0xFF without guessing, and reports the skipped run once, as one `ProtocolError`.
"""

from __future__ import annotations

from .errors import ProtocolError
from .jsontext import dumps

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TypeAlias

    from pydantic import BaseModel, TypeAdapter, ValidationError

    from .protocol import Message

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "HEADER_SIZE",
    "MAGIC",
    "FrameDecoder",
    "UserModelEvent",
    "encode_frame",
    "encode_json_frame",
    "frame_payload",
]

MAGIC = b"\xffCS\x01"
#: The magic, then the payload's length as a big-endian unsigned 32-bit integer.
HEADER_SIZE = len(MAGIC) + 4
DEFAULT_MAX_FRAME_BYTES = 1 << 20
_PREVIEW = 32


def encode_frame(message: Message) -> bytes:
    """Return the frame for one message: header plus compact JSON payload."""
    return frame_payload(message.__pydantic_serializer__.to_json(message))


def frame_payload(payload: bytes) -> bytes:
    """Return the frame for an already encoded JSON payload.

    ``int.to_bytes`` rather than ``struct``: every worker writes frames, and loading struct's C
    module was 0.5 ms of a worker's start (measured side by side); only the supervisor, which
    decodes, loads it.
    """
    return MAGIC + len(payload).to_bytes(4, "big") + payload


def encode_json_frame(fields: dict[str, object]) -> bytes:
    """Return the frame for a message given as plain JSON fields, encoded without pydantic.

    For the runner's own messages (`Ready`, heartbeats, progress, tasks, the termination error):
    a worker that sends only those never pays for importing pydantic. Tests check that the results
    validate as the models they stand for, lone surrogates (undecodable file names) included.
    """
    return frame_payload(dumps(fields).encode())


class UserModelEvent:
    """A `UserEvent` already validated into the user's own model, with its stream position.

    `FrameDecoder` returns it instead of a `UserEvent` for names it was told about: the event's data
    is validated once, straight from the frame's bytes into the user's model, rather than into JSON
    values and then into the model.
    """

    __slots__ = ("seq", "value")
    kind = "user"

    def __init__(self, seq: int, value: BaseModel) -> None:
        self.seq = seq
        self.value = value


#: How every user event frame from `Channel.send_user_event` starts: only such frames try the
#: fast path of `FrameDecoder`.
_USER_PREFIX = b'{"kind":"user",'


if TYPE_CHECKING:
    #: What `FrameDecoder` makes of one frame (or of bytes that are not one); for type checkers
    #: only, so that a worker does not import typing for it.
    Decoded: TypeAlias = Message | UserModelEvent | ProtocolError


class FrameDecoder:
    """Turns chunks of channel bytes into messages and protocol errors, in stream order.

    The decoder never raises on input: every problem comes back as a `ProtocolError` value in the
    result list, so a caller can report it and carry on. Memory stays bounded by ``max_frame_bytes``
    plus one read chunk, whatever the input.

    Args:
        max_frame_bytes: Largest payload accepted. A larger declared length is reported as
            ``oversize`` and its payload skipped unread.
        user_models: The user's event models by name. A user event frame whose name is one of
            them and whose data validates as that model comes back as a `UserModelEvent`,
            validated once, in one pass over the frame's bytes. Every other frame, and one whose
            data does not validate, takes the full path: the `Message` union.
    """

    def __init__(
        self,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        user_models: Mapping[str, type[BaseModel]] | None = None,
    ) -> None:
        # Imported here, not at module level: workers import this module to write frames, and
        # only the supervisor, which decodes, needs the models and pydantic.
        import struct

        from pydantic import ValidationError

        from .protocol import MESSAGE_ADAPTER

        self._unpack_header = struct.Struct(">4sI").unpack_from

        # The adapters' core validators, called straight: `TypeAdapter.validate_json`'s own
        # Python wrapper cost 0.3 us of the 1.8 a 100-byte user event takes (measured).
        self._validate = MESSAGE_ADAPTER.validator.validate_json
        self._invalid = ValidationError
        self._validate_user = (
            _user_envelope(tuple(sorted(user_models.items()))).validator.validate_json
            if user_models
            else None
        )
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._offset = 0  # stream offset of self._buf[0]
        self._skip = 0  # payload bytes of an oversize frame still to discard
        self._garbage_start: int | None = None
        self._garbage_len = 0
        self._garbage_preview = b""

    def feed(self, data: bytes) -> list[Decoded]:
        """Consume ``data`` and return everything it completed."""
        out: list[Decoded] = []
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            self._offset += dropped
            data = data[dropped:]
        # Frames are parsed in place, and the consumed prefix dropped once, at the end. Frames
        # are parsed straight from the bytes read (slices of bytes validate faster than slices of
        # a bytearray), and only an unfinished last frame is copied, to wait for the rest: a read
        # that starts inside a frame first completes that one frame. Only a frame split inside
        # its header makes the whole read go through the buffer.
        pos = 0
        if len(self._buf) >= HEADER_SIZE:
            pos = self._finish_buffered(data, out)
            if self._buf:
                return out  # all of it went into the unfinished frame
        buf: bytes | bytearray = data
        if self._buf:
            buf = self._buf
            buf += data
        size = len(buf)
        while pos < size:
            if buf[pos] != 0xFF:
                found = buf.find(0xFF, pos)
                pos = self._garbage(buf, pos, size if found < 0 else found)
                continue
            if size - pos < HEADER_SIZE:
                if not MAGIC.startswith(bytes(buf[pos : pos + len(MAGIC)])):
                    pos = self._garbage(buf, pos, pos + 1)
                    continue
                break
            magic, length = self._unpack_header(buf, pos)
            if magic != MAGIC:
                pos = self._garbage(buf, pos, pos + 1)
                continue
            if self._garbage_start is not None:
                self._end_garbage(out)
            if length > self.max_frame_bytes:
                out.append(
                    ProtocolError(
                        "oversize",
                        f"frame declares {length} bytes, over the {self.max_frame_bytes}-byte limit;"
                        " skipped",
                        offset=self._offset + pos,
                    )
                )
                pos += HEADER_SIZE
                dropped = min(length, size - pos)
                pos += dropped
                self._skip = length - dropped
                continue
            end = pos + HEADER_SIZE + length
            if end > size:
                break
            out.append(self._decode(buf, pos + HEADER_SIZE, end, self._offset + pos))
            pos = end
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < size:
            self._buf = bytearray(buf[pos:])
        self._offset += pos
        return out

    def _finish_buffered(self, data: bytes, out: list[Decoded]) -> int:
        """Complete the buffered frame from the front of ``data``; return the bytes taken.

        The buffered frame's header was checked when it was kept (magic, length within the
        limit). Once it is whole it is decoded, and the stream offset moves to ``data[0]``.
        """
        pending = self._buf
        length: int = self._unpack_header(pending)[1]
        missing = HEADER_SIZE + length - len(pending)
        if len(data) < missing:
            pending += data
            return len(data)
        frame = bytes(pending) + data[:missing]
        out.append(self._decode(frame, HEADER_SIZE, len(frame), self._offset))
        self._offset += len(pending)
        pending.clear()
        return missing

    def close(self) -> list[ProtocolError]:
        """Signal end of stream; report a truncated last frame or trailing garbage."""
        out: list[Decoded] = []
        buf = self._buf
        if buf and buf[0] == 0xFF and self._garbage_start is None:
            have = len(buf)
            if have >= HEADER_SIZE:
                _, length = self._unpack_header(buf)
                detail = f"the channel closed {have - HEADER_SIZE} bytes into a {length}-byte frame"
            else:
                detail = f"the channel closed inside a frame header ({have} of {HEADER_SIZE} bytes)"
            out.append(ProtocolError("truncated", detail, offset=self._offset))
        elif buf:
            self._garbage(buf, 0, len(buf))
        self._offset += len(buf)
        buf.clear()
        if self._skip:
            out.append(
                ProtocolError(
                    "truncated",
                    f"the channel closed {self._skip} bytes short of an oversize frame",
                    offset=self._offset,
                )
            )
            self._skip = 0
        self._end_garbage(out)
        return [e for e in out if isinstance(e, ProtocolError)]

    def _decode(self, buf: bytes | bytearray, start: int, end: int, offset: int) -> Decoded:
        """Validate the payload ``buf[start:end]``; the fast path first, then the full union."""
        payload = buf[start:end]
        if self._validate_user is not None and payload.startswith(_USER_PREFIX):
            try:
                envelope = self._validate_user(payload)
            except self._invalid:
                pass  # another name, or data that is not the model: the full path reports it
            else:
                return UserModelEvent(envelope["seq"], envelope["data"])
        try:
            return self._validate(payload)  # type: ignore[no-any-return]  # a Message, by schema
        except self._invalid as exc:
            error = ProtocolError(
                "invalid",
                f"frame of {len(payload)} bytes failed validation: "
                f"{_first_error(exc)}; payload starts {bytes(payload[:_PREVIEW])!r}",
                offset=offset,
            )
            error.__cause__ = exc
            return error

    def _garbage(self, buf: bytes | bytearray, start: int, stop: int) -> int:
        """Count ``buf[start:stop]`` as bytes that are not a frame; return ``stop``."""
        if self._garbage_start is None:
            self._garbage_start = self._offset + start
            self._garbage_preview = bytes(buf[start : start + _PREVIEW])
        self._garbage_len += stop - start
        return stop

    def _end_garbage(self, out: list[Decoded]) -> None:
        if self._garbage_start is None:
            return
        out.append(
            ProtocolError(
                "garbage",
                f"skipped {self._garbage_len} bytes that are not frames, starting "
                f"{self._garbage_preview!r}",
                offset=self._garbage_start,
            )
        )
        self._garbage_start = None
        self._garbage_len = 0


#: `_user_envelope`'s validators, by set of models: the runner side never fills it.
_envelopes: dict[tuple[tuple[str, type[BaseModel]], ...], TypeAdapter[Any]] = {}


def _user_envelope(models: tuple[tuple[str, type[BaseModel]], ...]) -> TypeAdapter[Any]:
    """A validator of `UserEvent` frames whose data is the model its name names.

    The envelope is the `UserEvent` wire shape (same fields, same constraints, unknown fields
    forbidden) with ``data`` typed as the user's model, one variant per name, told apart by the
    name: one validation from the frame's bytes, where the full path builds JSON values first and
    then validates those again into the model. Built once per set of models (a decoder per runner
    would otherwise pay tens of milliseconds for it).
    """
    known = _envelopes.get(models)
    if known is not None:
        return known
    import functools
    import operator
    from typing import Annotated, Literal

    from pydantic import ConfigDict, Field, TypeAdapter, with_config
    from typing_extensions import TypedDict

    typed_dict: Any = TypedDict  # the functional form, with field types known only at run time
    forbid_extra = with_config(ConfigDict(extra="forbid"))
    variants: list[Any] = [
        forbid_extra(
            typed_dict(
                f"{model.__name__}Envelope",
                {
                    "kind": Literal["user"],
                    "seq": Annotated[int, Field(ge=0)],
                    "name": Literal[name],
                    "data": model,
                },
            )
        )
        for name, model in models
    ]
    if len(variants) == 1:
        adapter: TypeAdapter[Any] = TypeAdapter(variants[0])
    else:
        union: Any = functools.reduce(operator.or_, variants)
        adapter = TypeAdapter(Annotated[union, Field(discriminator="name")])
    _envelopes[models] = adapter
    return adapter


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"
