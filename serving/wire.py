"""The raw input tensors of a serialized ``ModelInferRequest``, as views of the received bytes.

Why: protobuf's upb parser aliases the message's bytes (parsing an 8 MB request allocates next
to nothing), but reading ``request.raw_input_contents[i]`` makes a ``bytes`` copy of the tensor
each time: 8 MB more per 8 MB call. The tensors are top-level length-delimited fields (number 7
in ``grpc_predict_v2.proto``), so one pass over the top-level fields finds them without parsing
anything nested: each is returned as a ``memoryview`` slice of the message, in wire order (the
order protobuf gives them). Only worth it for large messages: for a small one the copy is cheaper
than this loop (:mod:`serving.grpc_server` uses it above ``LARGE_BODY_BYTES``).

The message has been parsed by protobuf first, so it is well formed; the bounds are checked
anyway, and a message that is not raises :class:`WireError`.
"""

from __future__ import annotations

RAW_INPUT_CONTENTS = 7  # ModelInferRequest.raw_input_contents

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    value = shift = 0
    end = len(buf)
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def length_delimited(message: bytes, field: int = RAW_INPUT_CONTENTS) -> list[memoryview]:
    """Every top-level occurrence of length-delimited ``field`` in ``message``, as views."""
    buf = memoryview(message)
    out: list[memoryview] = []
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == _LENGTH_DELIMITED:
            size, pos = _varint(buf, pos)
            stop = pos + size
            if stop > end:
                raise WireError(f"field {number} runs past the end of the message")
            if number == field:
                out.append(buf[pos:stop])
            pos = stop
        elif wire_type == _VARINT:
            _, pos = _varint(buf, pos)
        elif wire_type == _FIXED64:
            pos += 8
        elif wire_type == _FIXED32:
            pos += 4
        else:  # groups (3, 4) are not in proto3; 6 and 7 do not exist
            raise WireError(f"field {number} has wire type {wire_type}")
        if pos > end:
            raise WireError(f"field {number} runs past the end of the message")
    return out
