"""The wire codec: exact round trips, stdlib-JSON compatibility, hard limits."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payloads import wire

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_round_trip_and_stdlib_compatible(value):
    encoded = wire.dumps(value)
    assert wire.loads(encoded) == value
    assert json.loads(encoded) == value  # the client may use any JSON parser


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_crash_the_decoder(data):
    try:
        wire.loads(data)
    except wire.ProtocolError:
        pass


def test_lone_surrogates_are_escaped():
    encoded = wire.dumps({"k": "a\udcffb"})
    assert b"\\udcff" in encoded
    assert wire.loads(encoded) == {"k": "a\udcffb"}


def test_unsupported_types_are_refused_without_calling_them():
    class Boom:
        def __repr__(self):
            raise AssertionError("repr called")

    with pytest.raises(wire.ProtocolError):
        wire.dumps({"x": Boom()})
    with pytest.raises(wire.ProtocolError):
        wire.dumps({1: "int key"})
    with pytest.raises(wire.ProtocolError):
        wire.dumps(float("nan"))


def test_depth_is_bounded_both_ways():
    deep = "[" * (wire.MAX_DEPTH + 5) + "]" * (wire.MAX_DEPTH + 5)
    with pytest.raises(wire.ProtocolError, match="deeper"):
        wire.loads(deep.encode())
    value: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        value = [value]
    with pytest.raises(wire.ProtocolError, match="deeper"):
        wire.dumps(value)


def test_frame_limits():
    with pytest.raises(wire.ProtocolError, match="exceeds"):
        wire.frame_length((wire.MAX_REQUEST_FRAME + 1).to_bytes(4, "big"), wire.MAX_REQUEST_FRAME)
    with pytest.raises(wire.ProtocolError, match="exceeds"):
        wire.encode_frame({"x": "a" * 100}, limit=50)
    frame = wire.encode_frame({"id": 1, "op": "ping"})
    length = wire.frame_length(frame[:4])
    assert wire.decode_body(frame[4:4 + length]) == {"id": 1, "op": "ping"}
    with pytest.raises(wire.ProtocolError, match="object"):
        wire.decode_body(b"[1, 2]")
    with pytest.raises(wire.ProtocolError):
        wire.decode_body(b'{"a": 1} trailing')


@given(json_values)
@settings(max_examples=200, deadline=None)
def test_client_decoder_agrees_with_the_wire_codec(value):
    from inspector._channel import decode_body

    message = {"value": value}
    assert decode_body(wire.dumps(message)) == wire.decode_body(wire.dumps(message))


@pytest.mark.parametrize("body", [b"[1]", b'{"a": NaN}', b'{"a": Infinity}', b"\xff",
                                  b"[" * 100000 + b"]" * 100000, b'{"a": 1} x'])
def test_client_decoder_refuses_what_the_protocol_forbids(body):
    from inspector._channel import decode_body

    with pytest.raises(wire.ProtocolError):
        decode_body(body)
