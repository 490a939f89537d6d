"""A user's event as JSON: orjson for large events writes what pydantic's ``to_json`` would."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, SerializeAsAny, ValidationError, field_serializer

from crashsight.runner import modeljson
from crashsight.runner.modeljson import BYTES_PER_VALUE, LARGE, model_json

#: Any text but lone surrogates (hypothesis's default): pydantic's ``to_json`` refuses those, so
#: there is nothing to compare with (their own path is tested below).
_TEXT = st.text()
#: Long enough for any event below to suit orjson, however many values it has besides.
_BIG = "x" * (BYTES_PER_VALUE * 64)


class Inner(BaseModel):
    when: datetime.datetime
    tags: list[str]


class Rich(BaseModel):
    """One field of each kind of JSON value pydantic writes, and a few it converts first."""

    text: str
    number: int
    ratio: float
    flag: bool
    maybe: int | None
    blob: bytes
    amount: decimal.Decimal
    ident: uuid.UUID
    mapping: dict[str, float]
    inner: Inner
    items: list[Inner]


class Constants(BaseModel):
    """A model that writes infinities as JSON's ``Infinity`` rather than null."""

    model_config = ConfigDict(ser_json_inf_nan="constants")
    ratio: float
    text: str


class HoldsConstants(BaseModel):
    """A default model with a nested model that writes infinities as constants."""

    inner: Constants
    text: str


@pytest.fixture(autouse=True)
def fresh_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no class routed to orjson."""
    monkeypatch.setattr(modeljson, "_fast", set())
    monkeypatch.setattr(modeljson, "_suits", {})
    monkeypatch.setattr(modeljson, "_unsure", set())


_INNERS = st.builds(
    Inner, when=st.datetimes(timezones=st.none() | st.just(datetime.UTC)), tags=st.lists(_TEXT)
)
_RICH = st.builds(
    Rich,
    text=_TEXT,
    # orjson writes integers from -2**63 to 2**64 - 1 and refuses the rest, which to_json writes
    number=st.integers() | st.sampled_from([-(2**63) - 1, -(2**63), 2**64 - 1, 2**64]),
    ratio=st.floats(),  # NaN and infinities included: null, both ways
    flag=st.booleans(),
    maybe=st.none() | st.integers(-(2**63), 2**63 - 1),
    blob=_TEXT.map(str.encode),
    amount=st.decimals(allow_nan=False, allow_infinity=False),
    ident=st.uuids(),
    mapping=st.dictionaries(_TEXT, st.floats(allow_nan=False)),
    inner=_INNERS,
    items=st.lists(_INNERS, max_size=3),
)


def _route_to_orjson(cls: type[BaseModel], event: BaseModel) -> None:
    model_json(event)
    assert cls in modeljson._fast


_INNER = Inner(when=datetime.datetime(2026, 12, 1), tags=["a"])
_LARGE_RICH = Rich(
    text=_BIG, number=1, ratio=0.5, flag=True, maybe=None, blob=b"", amount=decimal.Decimal(1),
    ident=uuid.UUID(int=1), mapping={}, inner=_INNER, items=[],
)  # fmt: skip


@settings(max_examples=200)
@given(event=_RICH)
def test_orjson_writes_what_to_json_writes(event: Rich) -> None:
    """Once a class's events are large they go through orjson: the JSON reads back the same,
    and validates into the same model as pydantic's own would."""
    modeljson._fast.clear()
    _route_to_orjson(Rich, _LARGE_RICH)
    orjson_wrote = _spy_on_orjson()
    try:
        written = model_json(event)
    finally:
        modeljson._orjson_dumps = orjson_wrote.real
    expected = event.__pydantic_serializer__.to_json(event)
    # orjson wrote it, unless the event holds what it refuses (it then went to to_json)
    assert orjson_wrote == ([written] if -(2**63) <= event.number < 2**64 else [])
    assert json.loads(written) == json.loads(expected)
    assert _read_back(written) == _read_back(expected)


class _Spy(list[bytes]):
    """What orjson wrote, in order; ``real`` is its writer."""

    real: Callable[[object], bytes]


def _spy_on_orjson() -> _Spy:
    real = modeljson._orjson_dumps
    assert real is not None
    spy = _Spy()
    spy.real = real

    def dumps(value: object) -> bytes:
        spy.append(real(value))
        return spy[-1]

    modeljson._orjson_dumps = dumps
    return spy


def _read_back(data: bytes) -> Rich | list[object]:
    """The model the supervisor makes of ``data``, or its errors (pydantic writes an infinity in
    a dict as null, which does not read back as a float, whichever way it was written)."""
    try:
        return Rich.model_validate_json(data)
    except ValidationError as exc:
        return [(error["loc"], error["type"]) for error in exc.errors()]


def test_large_events_take_orjson_and_small_ones_go_back() -> None:
    model_json(_INNER)
    assert Inner not in modeljson._fast
    _route_to_orjson(Inner, _INNER.model_copy(update={"tags": [_BIG]}))
    model_json(_INNER)
    assert Inner not in modeljson._fast


class Metrics(BaseModel):
    values: dict[str, float]


def test_large_events_of_many_short_values_keep_pydantic_writing() -> None:
    """orjson's path makes a Python object of every value first: slower for these."""
    metrics = Metrics(values={f"metric_{i}": i / 7 for i in range(200)})
    for _ in range(2):
        assert len(model_json(metrics)) >= LARGE
    assert Metrics not in modeljson._fast


@pytest.mark.parametrize("cls", [Constants, HoldsConstants])
def test_infinities_as_constants_keep_pydantic_writing(cls: type[BaseModel]) -> None:
    """orjson would write null where the model, or a model inside it, asks for ``Infinity``."""
    constants = Constants(ratio=math.inf, text=_BIG)
    event = constants if cls is Constants else HoldsConstants(inner=constants, text=_BIG)
    for _ in range(2):
        assert b'"ratio":Infinity' in model_json(event)
    assert cls not in modeljson._fast


class Strings(BaseModel):
    """A model that writes infinities and NaN as strings."""

    model_config = ConfigDict(ser_json_inf_nan="strings")
    ratio: float


class Open(BaseModel):
    """Fields whose values' models are chosen at run time: the schema cannot say how they write
    their infinities."""

    text: str
    detail: Any = None
    base: SerializeAsAny[BaseModel] | None = None
    shown: object = None

    @field_serializer("shown")
    def _shown(self, value: object) -> object:  # no declared return type: anything
        return value


@pytest.mark.parametrize(
    "field", ["detail", "base", "shown"], ids=["Any", "SerializeAsAny", "serializer"]
)
def test_infinities_of_a_model_chosen_at_run_time_keep_pydantic_writing(field: str) -> None:
    """A class routed to orjson hands an event with a null back to pydantic, and stays there."""
    _route_to_orjson(Open, Open(text=_BIG))
    inner = Strings(ratio=math.nan) if field == "base" else Constants(ratio=math.inf, text="")
    event = Open.model_validate({"text": _BIG, field: inner})
    expected = event.__pydantic_serializer__.to_json(event)
    assert b"Infinity" in expected or b'"NaN"' in expected
    assert model_json(event) == expected
    assert Open not in modeljson._fast
    assert model_json(Open(text=_BIG)) == Open(text=_BIG).model_dump_json().encode()
    assert Open not in modeljson._fast


def test_a_class_with_run_time_models_takes_orjson_while_its_events_hold_no_null() -> None:
    _route_to_orjson(Open, Open(text=_BIG))
    orjson_wrote = _spy_on_orjson()
    try:
        event = Open(text=_BIG, detail=_INNER, base=_INNER, shown=["x"])
        written = model_json(event)
    finally:
        modeljson._orjson_dumps = orjson_wrote.real
    assert orjson_wrote == [written]
    assert Open in modeljson._fast
    assert json.loads(written) == json.loads(event.model_dump_json())


def test_an_integer_beyond_64_bits_in_a_large_event_is_written_whole() -> None:
    class Wide(BaseModel):
        n: int
        text: str

    _route_to_orjson(Wide, Wide(n=1, text=_BIG))
    assert json.loads(model_json(Wide(n=2**70, text=_BIG)))["n"] == 2**70


def test_an_undecodable_file_name_in_a_large_event_is_written_as_python_prints_it() -> None:
    class FileDone(BaseModel):
        path: str
        text: str

    _route_to_orjson(FileDone, FileDone(path="a", text=_BIG))
    name = os.fsdecode(b"shard-\xff.bin")
    assert json.loads(model_json(FileDone(path=name, text=_BIG)))["path"] == "shard-\\udcff.bin"
