r"""Compact JSON text for plain values, without importing ``json`` in every worker.

A runner writes its own messages (`Ready`, heartbeats, progress, tasks, its last words in a
`RunnerTerminationError`) as JSON without pydantic. ``import json`` loads ``re`` and compiles
json's own patterns: about a third of the runner's import (5-8 ms of 24 under ``-X importtime``,
measured), paid by every worker at start. Strings, the only part that needs care, are quoted by
the same C function ``json`` itself uses; anything else (keys that are not strings, values json
cannot write) goes to ``json`` after all.

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

__all__ = ["dumps", "printable", "quote"]

_FLOAT_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


class _NotPlain(Exception):
    """A value the fast path does not write: ``json`` writes it instead."""


def printable(text: str) -> str:
    """``text`` with each lone surrogate as Python prints it (see above): valid UTF-8 text."""
    if text.isascii():  # a flag CPython keeps on every string: free for ASCII text
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def quote(text: str) -> str:
    """``text`` as an ASCII JSON string; lone surrogates as Python prints them (see above)."""
    return _quote(printable(text))


def dumps(value: object) -> str:
    """``json.dumps(value, separators=(",", ":"))``, but for lone surrogates (see above)."""
    try:
        return _plain(value)
    except (_NotPlain, RecursionError):
        import json  # keys that are not strings, other types, cycles: json's rules

        return json.dumps(value, separators=(",", ":"))


def _plain(value: object) -> str:
    # json's own checks, in its order: a subclass of str, int or float is written as its value
    # (an IntEnum as its number, a StrEnum or numpy.str_ as its text), as json writes it.
    if isinstance(value, str):
        return quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        text = float.__repr__(value)
        return _FLOAT_NAMES.get(text, text)
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_plain, value)) + "]"
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise _NotPlain  # json turns numbers, booleans and None into strings: its rules
        return "{" + ",".join(f"{quote(k)}:{_plain(v)}" for k, v in value.items()) + "}"
    raise _NotPlain
