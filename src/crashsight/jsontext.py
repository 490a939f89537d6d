r"""Compact JSON text for plain values, without importing ``json`` in every worker.

A runner writes its own messages (`Ready`, heartbeats, progress, tasks, its last words in a
`RunnerTerminationError`) as JSON without pydantic. ``import json`` loads ``re`` and compiles
json's own patterns: about a third of the runner's import (5-8 ms of 24 under ``-X importtime``,
measured), paid by every worker at start. Strings, the only part that needs care, are quoted by the same C
function ``json`` itself uses; anything that is not a plain JSON value goes to ``json`` after all.

One difference from ``json``: a lone surrogate (an undecodable byte of a file name, as
``os.fsdecode`` gives it) travels as a backslash and its code, the text ``\udcff``, as Python
prints it on stderr. ``json`` writes an escape that decodes back to the surrogate, and strict
parsers refuse it, the supervisor's (pydantic's) among them: the whole message, often a worker's
last, would be lost.
"""

from __future__ import annotations

try:  # the C accelerator behind json.encoder, importable without json and its use of re
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - an interpreter without it
    from json.encoder import encode_basestring_ascii as _quote

__all__ = ["dumps", "quote"]

_FLOAT_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


class _NotPlain(Exception):
    """A value the fast path does not write: ``json`` writes it instead."""


def quote(text: str) -> str:
    """``text`` as an ASCII JSON string; lone surrogates as Python prints them (see above)."""
    if not text.isascii():  # a flag CPython keeps on every string: free for ASCII text
        try:
            text.encode()
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode()
    return _quote(text)


def dumps(value: object) -> str:
    """``json.dumps(value, separators=(",", ":"))``, but for lone surrogates (see above)."""
    try:
        return _plain(value)
    except (_NotPlain, RecursionError):
        import json  # keys that are not strings, subclasses, other types, cycles: json's rules

        return json.dumps(value, separators=(",", ":"))


def _plain(value: object) -> str:
    # Exact types only: a subclass (an IntEnum, a str subclass) may have its own JSON in json.
    if type(value) is str:
        return quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float:
        text = float.__repr__(value)
        return _FLOAT_NAMES.get(text, text)
    if type(value) is dict:
        if not all(type(key) is str for key in value):
            raise _NotPlain
        return "{" + ",".join(f"{quote(k)}:{_plain(v)}" for k, v in value.items()) + "}"
    if type(value) is list or type(value) is tuple:
        return "[" + ",".join(map(_plain, value)) + "]"
    raise _NotPlain
