"""A user's event model as JSON bytes, by the faster of two writers for that kind of event.

pydantic's ``to_json`` escapes strings at about 1.6 GB/s: 6.2 us of a 10 KiB string, most of
what a runner spends on such an event (measured). orjson writes the same text in 0.9 us from
``to_python(mode="json")``, which is pydantic's own conversion of every field, custom serialisers
and ``ser_json_*`` settings included. But that conversion makes a Python object of every value,
which costs more than the faster writer saves when the values are many and short: ten fields
(147 bytes) take 0.85 us in ``to_json`` and 1.32 in orjson's path, a dict of 100 floats (1.7 KiB)
6.6 and 11.2, forty small nested models (1.9 KiB) 12.3 and 14.6 (all measured side by side). So
orjson writes a class's events when they are at least `LARGE` bytes and its values are long:
`BYTES_PER_VALUE` or more per comma-separated value on average, judged once, from the class's
first large event (counting commas in 10 KiB takes 2.9 us, too long to do for every event).
A class whose events shrink below `LARGE` goes back to ``to_json`` until they grow again.

The two write the same JSON (a test holds it for the types pydantic writes), except:

- a model set to write infinities and NaN as constants or strings (``ser_json_inf_nan``, its own
  or a nested model's): ``to_python`` gives floats, which orjson writes as null. Such classes
  always take ``to_json``. A class whose schema cannot tell, because a value's model is chosen
  at run time (a field typed ``Any``, ``SerializeAsAny``, a serialiser with no declared return
  type), keeps orjson's JSON only when it holds no null; the first event that does goes to
  ``to_json``, and so do all the class's events after it;
- what orjson refuses (an integer outside -2**63 to 2**64 - 1, a lone surrogate, a key that is
  not a string): that event takes ``to_json``.

A lone surrogate (an undecodable file name, as ``os.fsdecode`` gives it) fails in ``to_json`` too,
and is written as Python prints it (see `crashsight.jsontext`). An event that goes from orjson's
path back to ``to_json`` has its model's own serialisers called twice.
"""

from __future__ import annotations

from ..jsontext import dumps

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import BaseModel

__all__ = ["BYTES_PER_VALUE", "LARGE", "model_json"]

#: From this many bytes of JSON, an event of a class that suits orjson is written by it.
LARGE = 1024
#: The average length of a value (bytes per comma-separated item) from which orjson's path is
#: the faster: it saves about 0.5 ns a byte of string and costs about 50 ns more a value.
BYTES_PER_VALUE = 128

#: The classes whose next event goes to orjson: their last one was large, and they suit it.
_fast: set[type] = set()
#: Per class: whether orjson writes its large events (see the module docstring).
_suits: dict[type, bool] = {}
#: The classes that suit orjson as far as their schema tells: models chosen at run time may
#: want their infinities written as constants or strings.
_unsure: set[type] = set()
#: orjson's writer, imported with the first class that suits it (1.6 ms in a worker that has
#: pydantic, measured).
_orjson_dumps: Callable[[object], bytes] | None = None


def model_json(event: BaseModel) -> bytes:
    """The JSON of ``event``, as pydantic's ``to_json`` writes it (see the module docstring).

    The small event's path is kept to one set lookup and one comparison: it is most events.
    """
    serializer = event.__pydantic_serializer__
    cls = type(event)
    if cls in _fast:
        try:
            data: bytes = _orjson_dumps(serializer.to_python(event, mode="json"))  # type: ignore[misc]  # set with _fast
        except TypeError:  # orjson.JSONEncodeError: see the module docstring
            pass
        else:
            if cls not in _unsure or b"null" not in data:
                if len(data) < LARGE:
                    _fast.discard(cls)
                return data
            # Perhaps an infinity that a model chosen at run time wants written otherwise.
            _fast.discard(cls)
            _suits[cls] = False
    try:
        data = serializer.to_json(event)
    except ValueError:  # pydantic's PydanticSerializationError, raised for lone surrogates
        # Any other failure to serialise raises again, here.
        data = dumps(serializer.to_python(event, mode="json")).encode()
    if len(data) >= LARGE and _suits_orjson(cls, data):
        _fast.add(cls)
    return data


def _suits_orjson(cls: type[BaseModel], data: bytes) -> bool:
    """Whether orjson should write ``cls``'s large events, judged once from the first, ``data``."""
    suits = _suits.get(cls)
    if suits is None:
        long_values = len(data) >= BYTES_PER_VALUE * (data.count(b",") + 1)
        infinities = _infinities_as_null(cls) if long_values else False
        suits = _suits[cls] = infinities is not False
        if infinities is None:
            _unsure.add(cls)
        if suits:
            global _orjson_dumps
            from orjson import dumps as orjson_dumps

            _orjson_dumps = orjson_dumps
    return suits


#: Schemas whose values' own models are only known at run time.
_OPEN_SCHEMAS = frozenset({"any", "is-instance", "function-plain", "function-wrap"})


def _infinities_as_null(cls: type[BaseModel]) -> bool | None:
    """Whether every schema in ``cls`` writes infinities and NaN as null, as orjson does.

    None when the schema cannot tell: somewhere a value's model is chosen at run time (a field
    typed ``Any``, ``SerializeAsAny``, a plain or wrap function whose return type is not declared).
    """
    answer: bool | None = True
    pending: list[object] = [cls.__pydantic_core_schema__]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("ser_json_inf_nan", "null") != "null":
                return False
            kind = node.get("type")  # a field of that name maps to its schema, not a string
            if isinstance(kind, str) and kind in _OPEN_SCHEMAS and "return_schema" not in node:
                answer = None
            pending.extend(node.values())
        elif isinstance(node, list | tuple):
            pending.extend(node)
    return answer
