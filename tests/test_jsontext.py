"""`crashsight.jsontext` writes exactly what ``json.dumps`` writes, without importing json."""

from __future__ import annotations

import enum
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crashsight import jsontext
from crashsight.jsontext import dumps, quote

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and the infinities included: json writes NaN and Infinity
    | st.text()  # lone surrogates included: undecodable file names reach the runner as those
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(st.text(), inner),
    max_leaves=30,
)


@given(_VALUES)
def test_plain_values_are_written_as_json_dumps_writes_them(value: object) -> None:
    """By the fast path itself: `dumps` would pass even if it handed everything to json."""
    assert jsontext._plain(value) == json.dumps(value, separators=(",", ":"))
    assert dumps(value) == json.dumps(value, separators=(",", ":"))


class _Kind(enum.IntEnum):
    READY = 1


def test_what_is_not_plain_json_is_left_to_json() -> None:
    """Keys that are not strings and subclasses of the plain types keep json's own rules."""
    value = {"a": [1, {2: _Kind.READY, None: True}], "b": (1.5,)}
    assert dumps(value) == json.dumps(value, separators=(",", ":"))


def test_a_cycle_is_refused_as_json_refuses_it() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps(cycle)


def test_a_quoted_string_is_ascii_and_reads_back() -> None:
    text = 'naïve \udcff "quoted" \n'
    assert quote(text).isascii()
    assert json.loads(quote(text)) == text
