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

import json
import struct
from typing import TYPE_CHECKING

from .errors import ProtocolError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .protocol import Message

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "HEADER_SIZE",
    "MAGIC",
    "FrameDecoder",
    "encode_frame",
    "encode_json_frame",
    "frame_payload",
]

MAGIC = b"\xffCS\x01"
_HEADER = struct.Struct(">4sI")
HEADER_SIZE = _HEADER.size
DEFAULT_MAX_FRAME_BYTES = 1 << 20
_PREVIEW = 32


def encode_frame(message: Message) -> bytes:
    """Return the frame for one message: header plus compact JSON payload."""
    return frame_payload(message.__pydantic_serializer__.to_json(message))


def frame_payload(payload: bytes) -> bytes:
    """Return the frame for an already encoded JSON payload."""
    return _HEADER.pack(MAGIC, len(payload)) + payload


def encode_json_frame(fields: dict[str, object]) -> bytes:
    """Return the frame for a message given as plain JSON fields, encoded without pydantic.

    Only for the runner's first message (`Ready`): it goes out before the wire models are
    loaded, so a worker that never sends another event never pays for importing pydantic. A test
    checks that the result validates as the model it stands for.
    """
    # ASCII escapes keep the payload valid UTF-8 even for lone surrogates (undecodable file names).
    return frame_payload(json.dumps(fields, separators=(",", ":")).encode())


class FrameDecoder:
    """Turns chunks of channel bytes into messages and protocol errors, in stream order.

    The decoder never raises on input: every problem comes back as a `ProtocolError` value in the
    result list, so a caller can report it and carry on. Memory stays bounded by ``max_frame_bytes``
    plus one read chunk, whatever the input.

    Args:
        max_frame_bytes: Largest payload accepted. A larger declared length is reported as
            ``oversize`` and its payload skipped unread.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        # Imported here, not at module level: workers import this module to write frames, and
        # only the supervisor, which decodes, needs the models and pydantic.
        from pydantic import ValidationError

        from .protocol import MESSAGE_ADAPTER

        self._adapter = MESSAGE_ADAPTER
        self._invalid = ValidationError
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._offset = 0  # stream offset of self._buf[0]
        self._skip = 0  # payload bytes of an oversize frame still to discard
        self._garbage_start: int | None = None
        self._garbage_len = 0
        self._garbage_preview = b""

    def feed(self, data: bytes) -> list[Message | ProtocolError]:
        """Consume ``data`` and return everything it completed."""
        out: list[Message | ProtocolError] = []
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            self._offset += dropped
            data = data[dropped:]
        buf = self._buf
        buf += data
        while buf:
            if buf[0] != 0xFF:
                self._discard_garbage(buf.find(0xFF))
                continue
            if len(buf) < HEADER_SIZE:
                if not MAGIC.startswith(bytes(buf[: len(MAGIC)])):
                    self._discard_garbage(1)
                    continue
                break
            magic, length = _HEADER.unpack_from(buf)
            if magic != MAGIC:
                self._discard_garbage(1)
                continue
            self._end_garbage(out)
            if length > self.max_frame_bytes:
                out.append(
                    ProtocolError(
                        "oversize",
                        f"frame declares {length} bytes, over the {self.max_frame_bytes}-byte limit;"
                        " skipped",
                        offset=self._offset,
                    )
                )
                self._consume(HEADER_SIZE)
                dropped = min(length, len(buf))
                self._consume(dropped)
                self._skip = length - dropped
                continue
            end = HEADER_SIZE + length
            if len(buf) < end:
                break
            payload = buf[HEADER_SIZE:end]
            offset = self._offset
            self._consume(end)
            out.append(self._validate(payload, offset))
        return out

    def close(self) -> list[ProtocolError]:
        """Signal end of stream; report a truncated last frame or trailing garbage."""
        out: list[Message | ProtocolError] = []
        if self._buf and self._buf[0] == 0xFF and self._garbage_start is None:
            have = len(self._buf)
            if have >= HEADER_SIZE:
                _, length = _HEADER.unpack_from(self._buf)
                detail = f"the channel closed {have - HEADER_SIZE} bytes into a {length}-byte frame"
            else:
                detail = f"the channel closed inside a frame header ({have} of {HEADER_SIZE} bytes)"
            out.append(ProtocolError("truncated", detail, offset=self._offset))
            self._consume(have)
        elif self._buf:
            self._discard_garbage(len(self._buf))
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

    def _validate(self, payload: bytes | bytearray, offset: int) -> Message | ProtocolError:
        try:
            return self._adapter.validate_json(payload)
        except self._invalid as exc:
            error = ProtocolError(
                "invalid",
                f"frame of {len(payload)} bytes failed validation: "
                f"{_first_error(exc)}; payload starts {bytes(payload[:_PREVIEW])!r}",
                offset=offset,
            )
            error.__cause__ = exc
            return error

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._offset += n

    def _discard_garbage(self, n: int) -> None:
        """Drop ``n`` bytes that are not a frame (all of the buffer when ``n`` is -1)."""
        if n < 0:
            n = len(self._buf)
        if self._garbage_start is None:
            self._garbage_start = self._offset
            self._garbage_preview = bytes(self._buf[:_PREVIEW])
        self._garbage_len += n
        self._consume(n)

    def _end_garbage(self, out: list[Message | ProtocolError]) -> None:
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


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"
