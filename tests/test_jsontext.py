"""`crashsight.jsontext` writes what ``json.dumps`` writes, without importing json, and what the
supervisor's strict parser reads back even from an undecodable file name."""

from __future__ import annotations

import enum
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue, TypeAdapter
from tests.strategies import TEXTS

from crashsight import jsontext
from crashsight.jsontext import dumps, quote

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and the infinities included: json writes NaN and Infinity
    | TEXTS
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(TEXTS, inner),
    max_leaves=30,
)


def _as_python_prints(value: object) -> object:
    """``value`` with each lone surrogate of its strings replaced by a backslash and its code."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, list | tuple):
        return [_as_python_prints(item) for item in value]
    if isinstance(value, dict):
        return {_as_python_prints(k): _as_python_prints(v) for k, v in value.items()}
    return value


@given(_VALUES)
def test_plain_values_are_written_as_json_dumps_writes_them(value: object) -> None:
    """By the fast path itself: `dumps` would pass even if it handed everything to json."""
    expected = json.dumps(_as_python_prints(value), separators=(",", ":"))
    assert jsontext._plain(value) == expected
    assert dumps(value) == expected


_STRICT = TypeAdapter(JsonValue)


@given(_VALUES.filter(lambda value: "NaN" not in dumps(value) and "Infinity" not in dumps(value)))
def test_what_is_written_reads_back_in_the_supervisors_strict_parser(value: object) -> None:
    """pydantic's JSON parser (the supervisor's) refuses the escape of a lone surrogate."""
    assert _STRICT.validate_json(dumps(value)) == json.loads(json.dumps(_as_python_prints(value)))


class _Kind(enum.IntEnum):
    READY = 1


def test_what_is_not_plain_json_is_left_to_json() -> None:
    """Keys that are not strings and subclasses of the plain types keep json's own rules."""
    value = {"a": [1, {2: _Kind.READY, None: True}], "b": (1.5,)}
    assert dumps(value) == json.dumps(value, separators=(",", ":"))


class _Text(str):
    """A str subclass, as a StrEnum member or numpy.str_ is."""


class _Ratio(float):
    pass


def test_subclasses_are_written_as_json_writes_them_by_the_fast_path() -> None:
    """Subclasses of str, int and float are their values to json; the fast path writes them too,
    so a subclass holding a lone surrogate (``progress(StrEnum member)``) still reads back."""
    value = {"a": _Text("shard-\udcff"), "b": _Kind.READY, "c": [_Ratio(0.5)]}
    assert jsontext._plain(value) == json.dumps(_as_python_prints(value), separators=(",", ":"))
    assert _STRICT.validate_json(dumps(value)) == {"a": "shard-\\udcff", "b": 1, "c": [0.5]}


def test_a_cycle_is_refused_as_json_refuses_it() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps(cycle)


def test_a_quoted_string_is_ascii_and_reads_back() -> None:
    text = 'naïve "quoted" \n \U0001f600'
    assert quote(text).isascii()
    assert json.loads(quote(text)) == _STRICT.validate_json(quote(text)) == text


def test_a_lone_surrogate_reads_back_as_python_prints_it() -> None:
    """``os.fsdecode(b"shard-\\xff.bin")`` arrives as Python's traceback shows that name."""
    text = "shard-\udcff.bin \ud83d\ude00"
    assert quote(text).isascii()
    assert _STRICT.validate_json(quote(text)) == "shard-\\udcff.bin \\ud83d\\ude00"
    assert _STRICT.validate_json(quote(text)) == repr(text)[1:-1]
